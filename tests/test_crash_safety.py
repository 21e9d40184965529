"""A run killed at any moment resumes to the same numbers as an uninterrupted one.

Each kill is a real SIGKILL of a worker process (`experiment_worker.py`)
at a chosen point of a tiny synthetic experiment: halfway through writing
a checkpoint file (its folder not yet committed), while an old checkpoint
is removed, and just before the run's result is written (every other file
is written the same way). Each rerun resumes from what the kill left; the
last one finishes, and its results equal those of the same experiment run
without interruption. The encoders have dropout, so the random state is
part of what a resume must restore. A corrupt checkpoint falls back to the
one before it, or is an error naming the folder to remove.
"""

import json
import os
import subprocess
import sys

import keras
import pytest

from keras_dgl.experiments import runner
from keras_dgl.experiments.config import ExperimentConfig
from keras_dgl.experiments.errors import ExperimentError
from keras_dgl.experiments.presets import PRESETS

WORKER = os.path.join(os.path.dirname(__file__), "experiment_worker.py")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DROPOUT = 0.3
CONFIG = {
    "dataset": "synthetic",
    "data_options": {"num_train": 192, "num_validation": 64, "num_test": 64},
    "methods": ["joint"],
    "epochs": 3,
    "batch_size": 32,
    "seeds": 1,
    "learning_rate": 0.01,
    # Scoring's own determinism is tested in test_reproducibility.py.
    "probe": False,
    "refit": False,
}
# In the order a run meets them; each rerun resumes and meets the next.
# (Every other file is written like result.json, through the same atomic
# write.) One process per kill: the processes' start-up is most of the
# test's time.
KILLS = [
    # Epoch 2's second archive, cut short (model.npz, optimizer.npz, and on
    # torch rng.npz per epoch): the rerun resumes after epoch 1, with the
    # random state of then.
    ["savez", 4],
    ["replace", r"epoch-0001\.removing$"],  # epoch 3 committed; epoch 1 pruned
    ["replace", r"result\.json$"],  # trained and scored; the record not written
]


def _comparable(results):
    """What must not change: every run's numbers, not its wall time."""
    runs = []
    for record in results["runs"]:
        record = dict(record)
        record.pop("train_seconds")
        if "refit" in record:
            record["refit"] = {k: v for k, v in record["refit"].items()
                               if k != "seconds"}
        runs.append(record)
    return runs, results["table"]


@pytest.fixture(autouse=True)
def _dropout(monkeypatch):
    monkeypatch.setitem(PRESETS["synthetic"]["encoder"]["config"], "dropout", DROPOUT)


@pytest.fixture(scope="module")
def expected(tmp_path_factory):
    """The uninterrupted run's numbers."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(PRESETS["synthetic"]["encoder"]["config"], "dropout", DROPOUT)
        keras.utils.clear_session(free_memory=False)
        results = runner.run_experiment(
            ExperimentConfig(**CONFIG, out=str(tmp_path_factory.mktemp("reference"))),
            verbose=0, log=lambda line: None,
        )
    return _comparable(results)


def _worker(out, kill):
    spec = {"config": {**CONFIG, "out": str(out)}, "dropout": DROPOUT, "kill": kill}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join(
                   p for p in (REPO, os.environ.get("PYTHONPATH")) if p))
    return subprocess.run([sys.executable, WORKER, json.dumps(spec)],
                          capture_output=True, text=True, env=env, timeout=600)


def test_sigkill_at_every_stage_resumes_to_the_uninterrupted_result(tmp_path, expected):
    out = tmp_path / "killed"
    logs = []
    for kill in KILLS:
        done = _worker(out, kill)
        assert done.returncode == -9, (kill, done.returncode, done.stderr[-3000:])
        logs.append(done.stdout)
    assert "joint-seed0: resuming after epoch 1 of 3" in logs[1], logs
    done = _worker(out, None)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    # The last kill came just before the run's record: the rerun scores it.
    assert "joint-seed0: all 3 epochs done; scoring" in done.stdout
    results = json.loads((out / "results.json").read_text())
    assert _comparable(results) == expected
    leftovers = [p for p in out.rglob("*")
                 if p.name.startswith(".partial-") or p.suffix in (".partial", ".removing")
                 or p.name == "checkpoints"]
    assert leftovers == []


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def _interrupted(out, epoch):
    config = ExperimentConfig(**CONFIG, out=str(out))
    with pytest.raises(KeyboardInterrupt):
        runner.run_experiment(config, verbose=0, log=lambda line: None,
                              callbacks=[_Interrupt(epoch)])
    return out / "runs" / "joint-seed0" / "checkpoints"


def test_a_corrupt_checkpoint_falls_back_to_the_one_before(tmp_path, expected):
    out = tmp_path / "corrupt"
    folder = _interrupted(out, epoch=1)
    assert sorted(p.name for p in folder.iterdir()) == ["epoch-0001", "epoch-0002"]
    newest = folder / "epoch-0002" / "model.npz"
    newest.write_bytes(newest.read_bytes()[:100])
    lines = []
    results = runner.run_experiment(ExperimentConfig(**CONFIG, out=str(out)),
                                    verbose=0, log=lines.append)
    assert any("epoch-0002 is unreadable" in line for line in lines), lines
    assert any("resuming after epoch 1 of 3" in line for line in lines), lines
    assert _comparable(results) == expected


def test_no_readable_checkpoint_names_the_folder_to_remove(tmp_path):
    out = tmp_path / "broken"
    folder = _interrupted(out, epoch=1)
    for checkpoint in folder.iterdir():
        (checkpoint / "state.json").write_text("{not json")
    with pytest.raises(ExperimentError) as error:
        runner.run_experiment(ExperimentConfig(**CONFIG, out=str(out)),
                              verbose=0, log=lambda line: None)
    message = str(error.value)
    assert "cannot resume joint-seed0" in message
    assert f"remove {folder} to train this run afresh" in message
