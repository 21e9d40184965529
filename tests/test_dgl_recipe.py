"""The dgl runs of `keras-dgl train`: separate heads (the default) and the shared head.

With `unimodal_head="separate"` (and `epoch_choice="per-modality"`) a dgl
run's scored model is: each encoder and its head at its own best unimodal
validation epoch, the fused path the sum of the heads' logits, then the
usual refit. The numbers of the run's record are rebuilt here from weights
copied at every epoch end by a test callback, not by the recipe's code. The
separate run is interrupted and resumed, so epochs chosen before the
interruption must come from the run folder's copies.
"""

import json

import keras
import numpy as np
import pytest

from keras_dgl.experiments import factories
from keras_dgl.experiments import runner
from keras_dgl.experiments.config import ExperimentConfig
from keras_dgl.experiments.dgl_recipe import PER_MODALITY_DIR
from keras_dgl.experiments.run import Run
from keras_dgl.utils import accuracy

EPOCHS = 4
TINY = {
    "dataset": "synthetic",
    "data_options": {"num_train": 256, "num_validation": 128, "num_test": 256},
    "methods": ("dgl",),
    "epochs": EPOCHS,
    "batch_size": 64,
    "learning_rate": 0.01,
    "seeds": 1,
    "refit_epochs": 2,
}


class _CopyEveryEpoch(keras.callbacks.Callback):
    """Copies each encoder's and separate head's weights at every epoch end."""

    def __init__(self, copies):
        super().__init__()
        self.copies = copies

    def on_epoch_end(self, epoch, logs=None):
        model = self.model
        self.copies[epoch] = {
            name: (
                [keras.ops.convert_to_numpy(w) for w in model.encoders[name].weights],
                [keras.ops.convert_to_numpy(w)
                 for w in model.fusion.unimodal_heads[name].weights],
            )
            for name in model.modality_names
        }


class _InterruptAfter(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def _quiet(line):
    pass


def _rebuilt(config, out, run):
    """The run's model with its best fused epoch's weights, and its data."""
    splits = factories.load_splits(config, run.seed)
    keras.utils.clear_session(free_memory=False)
    model, _ = factories.build_model(config, run, splits)
    model.load_weights(str(out / "runs" / run.name / "best.weights.h5"))
    return model, splits


def test_separate_heads_score_each_encoder_at_its_own_best_epoch(tmp_path):
    config = ExperimentConfig(**TINY, out=str(tmp_path))
    copies = {}
    with pytest.raises(KeyboardInterrupt):
        runner.run_experiment(
            config, verbose=0, log=_quiet,
            callbacks=lambda run: [_CopyEveryEpoch(copies), _InterruptAfter(1)],
        )
    run_dir = tmp_path / "runs" / "dgl-seed0"
    on_disk = sorted(p.name for p in (run_dir / PER_MODALITY_DIR).iterdir())
    assert on_disk == ["fused.npz", "strong.npz", "weak.npz"]
    messages = []
    results = runner.run_experiment(
        config, verbose=0, log=messages.append,
        callbacks=lambda run: [_CopyEveryEpoch(copies)],
    )
    assert sorted(copies) == list(range(EPOCHS))
    record = results["runs"][0]
    history = record["history"]
    assert len(history["val_accuracy"]) == EPOCHS
    assert record["unimodal_head"] == "separate"
    assert record["epoch_choice"] == "per-modality"
    assert record["fused_path"] == "logit-sum"
    # Each modality's epoch is its first best validation accuracy, over the
    # epochs before and after the interruption.
    expected_epochs = {
        name: 1 + int(np.argmax(history[f"val_{name}_accuracy"]))
        for name in ("strong", "weak")
    }
    assert record["modality_epochs"] == expected_epochs
    assert any("encoders at epochs strong" in m for m in messages)
    # The on-disk copies are those epochs' weights.
    for name, epoch in expected_epochs.items():
        with np.load(run_dir / PER_MODALITY_DIR / f"{name}.npz") as saved:
            assert int(saved["epoch"]) == epoch - 1
            encoder, head = copies[epoch - 1][name]
            for i, weight in enumerate(encoder):
                np.testing.assert_array_equal(saved[f"encoder_{i}"], weight)
            for i, weight in enumerate(head):
                np.testing.assert_array_equal(saved[f"head_{i}"], weight)

    # The record's test accuracies: each head on its own encoder, both at
    # the modality's epoch, and fused = argmax of the heads' summed logits.
    resolved = config.resolved()
    model, splits = _rebuilt(resolved, tmp_path, Run("dgl", 0))
    assert model.fusion.unimodal_head == "separate"
    for name, epoch in expected_epochs.items():
        encoder, head = copies[epoch - 1][name]
        model.encoders[name].set_weights(encoder)
        model.fusion.unimodal_heads[name].set_weights(head)
    predictions = model.predict_modalities(splits.test, verbose=0)
    labels = splits.numpy("test")[1]
    expected = {name: accuracy(predictions[name], labels) for name in ("strong", "weak")}
    expected["fused"] = accuracy(predictions["strong"] + predictions["weak"], labels)
    assert record["test_accuracy"] == pytest.approx(expected, abs=1e-9)
    # The refit starts from that sum: keeping its epoch 0 keeps the accuracy.
    if record["refit"]["best_epoch"] == 0:
        assert record["refit"]["test_accuracy"]["fused"] == pytest.approx(
            expected["fused"], abs=1e-9)
    table = results["table"]
    assert "dgl: a linear head per modality" in table
    assert "own best validation epoch" in table


def test_shared_head_is_the_published_form(tmp_path):
    config = ExperimentConfig(**TINY, unimodal_head="shared", out=str(tmp_path))
    results = runner.run_experiment(config, verbose=0, log=_quiet)
    record = results["runs"][0]
    assert (record["unimodal_head"], record["epoch_choice"], record["fused_path"]) == (
        "shared", "fused", "trained")
    assert "modality_epochs" not in record
    assert not (tmp_path / "runs" / "dgl-seed0" / PER_MODALITY_DIR).exists()
    saved = json.loads((tmp_path / "experiment.json").read_text())
    assert (saved["unimodal_head"], saved["epoch_choice"]) == ("shared", "fused")
    # The scored model is the best fused epoch's, as for every other method.
    model, splits = _rebuilt(config.resolved(), tmp_path, Run("dgl", 0))
    assert model.fusion.unimodal_head == "shared" and not model.fusion.unimodal_heads
    predictions = model.predict_modalities(splits.test, verbose=0)
    labels = splits.numpy("test")[1]
    scored = {name: accuracy(logits, labels) for name, logits in predictions.items()}
    assert record["test_accuracy"] == pytest.approx(scored, abs=1e-9)
    assert record["best_epoch"] == 1 + int(np.argmax(record["history"]["val_accuracy"]))
    assert "dgl: a linear head per modality" not in results["table"]


def test_separate_heads_with_the_fused_epoch(tmp_path):
    # `--epoch-choice fused`: the whole model at its best fused epoch, then
    # the heads' logit sum.
    config = ExperimentConfig(**TINY, epoch_choice="fused", out=str(tmp_path))
    results = runner.run_experiment(config, verbose=0, log=_quiet)
    record = results["runs"][0]
    assert (record["epoch_choice"], record["fused_path"]) == ("fused", "logit-sum")
    assert "modality_epochs" not in record
    assert not (tmp_path / "runs" / "dgl-seed0" / PER_MODALITY_DIR).exists()
    model, splits = _rebuilt(config.resolved(), tmp_path, Run("dgl", 0))
    predictions = model.predict_modalities(splits.test, verbose=0)
    labels = splits.numpy("test")[1]
    expected = {name: accuracy(predictions[name], labels) for name in ("strong", "weak")}
    expected["fused"] = accuracy(predictions["strong"] + predictions["weak"], labels)
    assert record["test_accuracy"] == pytest.approx(expected, abs=1e-9)
