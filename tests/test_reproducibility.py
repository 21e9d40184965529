"""The same command gives the same table: each run's randomness is its own.

A run's data order, initial weights, dropout masks and refit shuffles
start from its seed, whatever ran before it in the process; resumed runs
equal uninterrupted ones (tests/test_crash_safety.py); and the command,
its deterministic modes on by default, prints the same numbers in two
processes.
"""

import json
import os
import subprocess
import sys

import keras

from keras_dgl import cli
from keras_dgl.experiments import runner
from keras_dgl.experiments.config import ExperimentConfig
from keras_dgl.experiments.presets import PRESETS

CONFIG = {
    "dataset": "synthetic",
    "data_options": {"num_train": 192, "num_validation": 64, "num_test": 64},
    "epochs": 2,
    "batch_size": 32,
    "seeds": 1,
    "learning_rate": 0.01,
    "refit_epochs": 2,
}


def _numbers(record):
    record = dict(record)
    record.pop("train_seconds")
    record["refit"] = {k: v for k, v in record["refit"].items() if k != "seconds"}
    return record


def _joint(out, methods):
    keras.utils.clear_session(free_memory=False)
    results = runner.run_experiment(
        ExperimentConfig(**CONFIG, methods=methods, out=str(out)),
        verbose=0, log=lambda line: None,
    )
    return next(_numbers(r) for r in results["runs"] if r["method"] == "joint")


def test_a_run_does_not_depend_on_the_runs_before_it(tmp_path, monkeypatch):
    # Dropout makes the random masks part of what must not depend on order.
    monkeypatch.setitem(PRESETS["synthetic"]["encoder"]["config"], "dropout", 0.3)
    after_dgl = _joint(tmp_path / "both", ("dgl", "joint"))
    alone = _joint(tmp_path / "alone", ("joint",))
    assert alone == after_dgl


def test_deterministic_mode_is_on_by_default():
    parser = cli.build_parser()
    assert parser.parse_args(["train"]).deterministic is True
    assert parser.parse_args(["train", "--no-deterministic"]).deterministic is False


def test_the_same_command_in_two_processes_prints_the_same_numbers(tmp_path):
    # Two fresh processes, deterministic modes on (the default). Not compared
    # with a run in this process, where the modes are off (they cannot be
    # undone in a process): TensorFlow's op determinism changes the last
    # digits of the numbers on CPUs, though not the table.
    records = []
    for name in ("first", "second"):
        out = tmp_path / name
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        done = subprocess.run(
            [sys.executable, "-m", "keras_dgl.cli", "train", "--dataset", "synthetic",
             "--methods", "dgl", "--epochs", "1", "--seeds", "1", "--no-refit",
             "--data-option", "num_train=192", "--data-option", "num_validation=64",
             "--data-option", "num_test=64", "-q", "--out", str(out)],
            capture_output=True, text=True, env=env, timeout=600,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        results = json.loads((out / "results.json").read_text())
        assert results["deterministic"] is True
        record = results["runs"][0]
        record.pop("train_seconds")
        records.append(((out / "table.txt").read_text(), record))
    assert records[0] == records[1]
