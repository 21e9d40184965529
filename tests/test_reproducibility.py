"""The same command gives the same table: each run's randomness is its own.

A run's data order, initial weights, dropout masks and refit shuffles
start from its seed, whatever ran before it in the process; resumed runs
equal uninterrupted ones (tests/test_crash_safety.py); and the command,
its deterministic modes on by default, prints in a new process what the
same experiment gives in this one.
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
    keras.utils.clear_session()
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


def test_the_command_in_a_new_process_prints_the_same_table(tmp_path):
    # The command (deterministic modes on) in a fresh process, and the same
    # experiment in this one (modes off: they cannot be undone in-process):
    # the same numbers, so neither the process nor the mode changes them on
    # this machine.
    options = {"num_train": 192, "num_validation": 64, "num_test": 64}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    out = tmp_path / "command"
    done = subprocess.run(
        [sys.executable, "-m", "keras_dgl.cli", "train", "--dataset", "synthetic",
         "--methods", "dgl", "--epochs", "1", "--seeds", "1", "--no-refit",
         *(f"--data-option={k}={v}" for k, v in options.items()),
         "-q", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    command = json.loads((out / "results.json").read_text())
    assert command["deterministic"] is True
    keras.utils.clear_session()
    here = runner.run_experiment(
        ExperimentConfig(dataset="synthetic", data_options=options, methods=("dgl",),
                         epochs=1, seeds=1, refit=False, out=str(tmp_path / "here")),
        verbose=0, log=lambda line: None,
    )
    assert here["deterministic"] is False
    for results in (command, here):
        results["runs"][0].pop("train_seconds")
    assert command["runs"] == here["runs"]
    assert (out / "table.txt").read_text() == here["table"] + "\n"
