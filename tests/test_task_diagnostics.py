"""Diagnostics, refit, G-Blending and the gradient monitor on other tasks (issue 12).

Each either works for multi-label and regression models, scoring with the
task's own measure (per-label accuracy, R²), or refuses with the task it
needs.
"""

import keras
import numpy as np
import pytest
from dgl_test_utils import make_encoder, make_fusion

import keras_dgl
from keras_dgl import diagnostics
from keras_dgl.datasets import synthetic

MODALITIES = {"strong": 0.9, "weak": 0.3}
TASKS = {
    "multilabel": ({"task": "multilabel", "num_classes": 3}, "binary_crossentropy"),
    "regression": ({"task": "regression", "num_targets": 2}, "mse"),
}


def _splits(task):
    return synthetic(modalities=MODALITIES, num_train=384, num_validation=64,
                     num_test=256, **TASKS[task][0])


def _model(task, method="dgl", epochs=3, loss=None, **kwargs):
    splits = _splits(task)
    model = keras_dgl.DGLModel(
        {name: make_encoder(16) for name in MODALITIES},
        make_fusion("concat", None, units=splits.num_classes),
        method=method, **kwargs,
    )
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss or TASKS[task][1])
    if epochs:
        model.fit(*splits.numpy("train"), epochs=epochs, batch_size=32, verbose=0)
    return model, splits


def _r2(outputs, y):
    residual = ((y - outputs) ** 2).sum(0)
    return float(np.mean(1 - residual / ((y - y.mean(0)) ** 2).sum(0)))


def _label_accuracy(outputs, y):
    return float(np.mean((outputs > 0) == (y > 0.5)))


SCORES = {"regression": _r2, "multilabel": _label_accuracy}


@pytest.mark.parametrize("task", sorted(TASKS))
def test_linear_probe_and_contribution_score_with_the_task_measure(task):
    model, splits = _model(task)
    test = splits.numpy("test")
    predictions = model.predict_modalities(test[0], verbose=0)
    score = SCORES[task]
    probe = diagnostics.linear_probe(model, splits.numpy("train"), test)
    assert probe["fused"] == pytest.approx(score(predictions["fused"], test[1]), abs=1e-6)
    for name in MODALITIES:
        assert probe["unimodal_head"][name] == pytest.approx(
            score(predictions[name], test[1]), abs=1e-6
        )
    # The ridge / one-vs-rest probes read the strong modality's features best.
    assert probe["linear_probe"]["strong"] > probe["linear_probe"]["weak"]
    assert probe["linear_probe"]["strong"] > (0.8 if task == "regression" else 0.9)
    contribution = diagnostics.modality_contribution(model, test)
    assert contribution["fused"] == pytest.approx(probe["fused"], abs=1e-6)
    zeroed = {**test[0], "strong": np.zeros_like(test[0]["strong"])}
    assert contribution["ablated"]["strong"] == pytest.approx(
        score(model.predict(zeroed, verbose=0), test[1]), abs=1e-6
    )
    assert contribution["drop"]["strong"] > contribution["drop"]["weak"]


@pytest.mark.parametrize("task", sorted(TASKS))
def test_gradient_monitor_measures_the_task_loss(task):
    model, splits = _model(task, method="joint", epochs=0)
    x, y = splits.numpy("validation")
    monitor = keras_dgl.callbacks.GradientMonitor((x, y))
    history = model.fit(*splits.numpy("train"), epochs=2, batch_size=64,
                        callbacks=[monitor], verbose=0).history
    for name in MODALITIES:
        ratios = history[f"{name}_grad_ratio"]
        assert len(ratios) == 2 and all(np.isfinite(r) and r > 0 for r in ratios)
    # The unimodal gradient it reports is that of the task's loss.
    loss = keras.losses.get(TASKS[task][1]) if task == "regression" else (
        keras.losses.BinaryCrossentropy(from_logits=True))
    variables = model.encoders["weak"].trainable_variables

    def unimodal():
        features = {n: model.encoders[n](x[n]) for n in MODALITIES}
        out = model.fusion(features, unimodal=True)["weak"]
        return keras.ops.mean(loss(y, out))

    _, grads = keras_dgl.backend.value_and_gradients(unimodal, variables)
    expected = np.sqrt(sum(float(np.sum(g ** 2)) for g in grads))
    assert monitor.measure()["weak_grad_unimodal"] == pytest.approx(expected, rel=1e-4)


def test_gblend_weights_and_refit_work_for_regression():
    splits = _splits("regression")

    def build(**kwargs):
        return _model("regression", epochs=0, **kwargs)[0]

    blend = keras_dgl.gblend_weights(build, splits.numpy("train"),
                                     splits.numpy("validation"), epochs=2)
    assert set(blend["weights"]) == {"fused", "strong", "weak"}
    assert sum(blend["weights"].values()) == pytest.approx(1.0)
    model, _ = _model("regression", method="joint", epochs=2)
    result = model.refit_fusion(splits.numpy("train"), splits.numpy("validation"),
                                epochs=5)
    assert result["after"]["val_loss"] <= result["before"]["val_loss"]
    assert result["before"]["val_accuracy"] is None
    with pytest.raises(ValueError, match=r"monitor='accuracy'.*'regression' model"):
        model.refit_fusion(splits.numpy("train"), monitor="accuracy")


def test_refit_scores_multilabel_by_label_accuracy():
    model, splits = _model("multilabel", method="joint", epochs=2)
    x, y = splits.numpy("validation")
    result = model.refit_fusion(splits.numpy("train"), (x, y), epochs=3)
    assert result["after"]["val_accuracy"] == pytest.approx(
        _label_accuracy(model.predict(x, verbose=0), y), abs=1e-5
    )


def test_a_task_the_diagnostics_cannot_score_is_named():
    model, splits = _model("regression", epochs=0,
                           loss=keras.losses.CosineSimilarity())
    assert model.task == "custom"
    with pytest.raises(ValueError, match=r"linear_probe scores .*'custom' task"):
        diagnostics.linear_probe(model, splits.numpy("train"), splits.numpy("test"))
    with pytest.raises(ValueError, match=r"modality_contribution scores"):
        diagnostics.modality_contribution(model, splits.numpy("test"))


def test_shapley_contribution_needs_classification():
    model, splits = _model("regression", epochs=0)
    with pytest.raises(ValueError, match=r"shapley_contribution scores "
                       r"classification.*'regression' task"):
        diagnostics.shapley_contribution(model, splits.numpy("test"))


def test_keras_dgl_train_refuses_a_task_it_cannot_score():
    from keras_dgl.experiments import config as experiment_config
    from keras_dgl.experiments import factories

    config = experiment_config.ExperimentConfig(
        dataset="synthetic", data_options={"task": "regression"}
    ).resolved()
    with pytest.raises(experiment_config.ExperimentError, match=r"task='regression'"):
        factories.load_splits(config, seed=0)
