"""Beyond single-label classification (issue 12), on every backend.

Multi-label tagging (binary cross-entropy on 0/1 targets) and regression
(squared error, Huber) train under DGL and joint training, log every
compiled metric for the fused output and per modality, keep their task when
saved, refuse labels that do not suit the loss, and work with the
diagnostics (or refuse them with the task they need).
"""

import keras
import numpy as np
import pytest
from dgl_test_utils import make_encoder, make_fusion

import keras_dgl
from keras_dgl.datasets import synthetic

MODALITIES = {"strong": 0.9, "weak": 0.4}
# Per task: synthetic options, compiled loss and metrics, fusion units.
TASKS = {
    "multilabel": {
        "data": {"task": "multilabel", "num_classes": 4},
        "loss": lambda: keras.losses.BinaryCrossentropy(from_logits=True),
        "metrics": ["accuracy", "binary_crossentropy"],
        "units": 4,
    },
    "regression": {
        "data": {"task": "regression", "num_targets": 2},
        "loss": lambda: "mse",
        "metrics": ["mae"],
        "units": 2,
    },
    "regression_huber_1d": {
        "data": {"task": "regression", "num_targets": 1},
        "loss": lambda: keras.losses.Huber(),
        "metrics": ["mse"],
        "units": 1,
    },
}


def _data(task, seed=0):
    splits = synthetic(
        modalities=MODALITIES, num_train=256, num_validation=64, num_test=64,
        seed=seed, **TASKS[task]["data"],
    )
    return splits


def _model(task, method="dgl", fusion="concat"):
    spec = TASKS[task]
    model = keras_dgl.DGLModel(
        {name: make_encoder(16) for name in MODALITIES},
        make_fusion(fusion, num_classes=None, units=spec["units"]),
        method=method,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=spec["loss"](),
        metrics=list(spec["metrics"]),
    )
    return model


def _hand_metric(name, outputs, y):
    """The metric computed with NumPy from predictions."""
    outputs = np.asarray(outputs, "float64")
    y = np.asarray(y, "float64").reshape(outputs.shape)
    if name == "mae":
        return np.mean(np.abs(outputs - y))
    if name == "mse":
        return np.mean((outputs - y) ** 2)
    if name == "accuracy":  # multi-label: per-label accuracy at logit 0
        return np.mean((outputs > 0) == (y > 0.5))
    if name == "binary_crossentropy":
        log_p = -np.logaddexp(0, -outputs)
        log_not_p = -np.logaddexp(0, outputs)
        return np.mean(-(y * log_p + (1 - y) * log_not_p))
    raise KeyError(name)


@pytest.mark.parametrize("method", ["dgl", "joint", "joint_aux"])
@pytest.mark.parametrize("task", sorted(TASKS))
def test_task_trains_and_lowers_its_loss(task, method):
    splits = _data(task)
    x, y = splits.numpy("train")
    model = _model(task, method)
    assert model.task == ("multilabel" if task == "multilabel" else "regression")
    before = model.evaluate(x, y, verbose=0, return_dict=True)
    history = model.fit(
        x, y, validation_data=splits.numpy("validation"), epochs=6,
        batch_size=32, verbose=0,
    ).history
    after = model.evaluate(x, y, verbose=0, return_dict=True)
    assert after["multimodal_loss"] < 0.8 * before["multimodal_loss"]
    # The strong modality's own prediction learns too (under joint training
    # its shared head is only read off detached features, but still moves).
    assert after["strong_loss"] < before["strong_loss"]
    metric = TASKS[task]["metrics"][-1]
    expected = {"loss", "multimodal_loss", metric}
    for name in MODALITIES:
        expected |= {f"{name}_loss", f"{name}_{metric}"}
    expected |= {f"val_{key}" for key in expected}
    assert expected <= set(history)
    if task != "multilabel":
        assert not any(key.endswith("accuracy") for key in history)


@pytest.mark.parametrize("task", sorted(TASKS))
def test_modality_metrics_equal_the_metric_on_predict_modalities(task):
    splits = _data(task)
    x, y = splits.numpy("train")
    model = _model(task)
    model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    x_test, y_test = splits.numpy("test")
    logs = model.evaluate(x_test, y_test, batch_size=16, verbose=0, return_dict=True)
    predictions = model.predict_modalities(x_test, verbose=0)
    for metric in TASKS[task]["metrics"]:
        np.testing.assert_allclose(
            logs[metric], _hand_metric(metric, predictions["fused"], y_test),
            rtol=1e-4, atol=1e-6,
        )
        for name in MODALITIES:
            np.testing.assert_allclose(
                logs[f"{name}_{metric}"],
                _hand_metric(metric, predictions[name], y_test),
                rtol=1e-4, atol=1e-6, err_msg=f"{name}_{metric}",
            )


def test_classification_logs_every_compiled_metric_per_modality():
    splits = synthetic(modalities=MODALITIES, num_classes=4, num_train=128,
                       num_validation=0, num_test=64)
    model = keras_dgl.DGLModel(
        {name: make_encoder(16) for name in MODALITIES}, make_fusion("concat", 4)
    )
    top2 = keras.metrics.SparseTopKCategoricalAccuracy(k=2, name="top2")
    model.compile(optimizer="adam", metrics=["accuracy", top2])
    x, y = splits.numpy("train")
    model.fit(x, y, epochs=1, verbose=0)
    logs = model.evaluate(*splits.numpy("test"), verbose=0, return_dict=True)
    predictions = model.predict_modalities(splits.numpy("test")[0], verbose=0)
    y_test = splits.numpy("test")[1]
    for name in ("fused",) + tuple(MODALITIES):
        key = "top2" if name == "fused" else f"{name}_top2"
        ranks = np.argsort(-predictions[name], axis=-1)[:, :2]
        np.testing.assert_allclose(logs[key], np.mean((ranks == y_test[:, None]).any(1)),
                                   atol=1e-6)
        key = "accuracy" if name == "fused" else f"{name}_accuracy"
        np.testing.assert_allclose(
            logs[key], np.mean(predictions[name].argmax(-1) == y_test), atol=1e-6
        )


@pytest.mark.parametrize("task", ["multilabel", "regression"])
def test_save_and_load_keep_the_task(task, tmp_path):
    splits = _data(task)
    x, y = splits.numpy("train")
    model = _model(task, "dgl", fusion="gated")
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras_dgl.load_model(path)
    assert loaded.task == model.task and loaded.fusion.units == TASKS[task]["units"]
    assert type(loaded._term_loss) is type(model._term_loss)
    expected = model.predict_modalities(x, verbose=0)
    actual = loaded.predict_modalities(x, verbose=0)
    for name in expected:
        np.testing.assert_allclose(actual[name], expected[name], rtol=1e-5, atol=1e-6)
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    loaded_logs = loaded.evaluate(x, y, verbose=0, return_dict=True)
    assert set(loaded_logs) == set(logs)
    for key in logs:
        np.testing.assert_allclose(loaded_logs[key], logs[key], rtol=1e-5, atol=1e-6)
    loaded.fit(x, y, epochs=1, batch_size=64, verbose=0)


def _bad_labels():
    x, y = _data("multilabel").numpy("train")
    _, targets = _data("regression").numpy("train")
    return {
        "multilabel: a 2": ("multilabel", np.where(y == 1, 2.0, y), ValueError,
                            r"must be 0 or 1 .*holds 2"),
        "multilabel: negative": ("multilabel", -y, ValueError, r"holds -1"),
        "multilabel: class ids": ("multilabel", y.argmax(1), ValueError,
                                  r"multi-label targets .*shape \(batch, 4\).*\(256,\)"),
        "multilabel: wrong width": ("multilabel", y[:, :3], ValueError,
                                    r"shape \(batch, 4\).*received \(256, 3\)"),
        "multilabel: nan": ("multilabel", np.where(y == 1, np.nan, y), ValueError,
                            r"y holds NaN"),
        "regression: wrong width": ("regression", targets[:, :1], ValueError,
                                    r"regression targets .*\(batch, 2\).*\(256, 1\)"),
        "regression: one column": ("regression", targets[:, 0], ValueError,
                                   r"regression targets .*\(batch, 2\).*\(256,\)"),
        "regression: inf": ("regression", np.where(targets > 2, np.inf, targets),
                            ValueError, r"y holds NaN or infinite"),
        "regression: strings": ("regression", targets.astype(str), TypeError,
                                r"y holds strings"),
    }


@pytest.mark.parametrize("case", sorted(_bad_labels()))
def test_bad_labels_for_the_loss_get_a_clear_error(case):
    task, labels, error, pattern = _bad_labels()[case]
    x, _ = _data(task).numpy("train")
    model = _model(task)
    with pytest.raises(error, match=pattern):
        model.fit(x, labels, verbose=0)


def test_one_target_takes_a_flat_label_vector():
    x, y = _data("regression_huber_1d").numpy("train")
    model = _model("regression_huber_1d")
    flat = model.fit(x, y[:, 0], epochs=1, batch_size=64, verbose=0).history
    assert np.isfinite(flat["loss"]).all()


@pytest.mark.parametrize(
    "build, pattern",
    [
        (lambda m: m.compile(loss="mse", metrics=["accuracy"]),
         r"'accuracy' needs class labels.*regression"),
        (lambda m: m.compile(loss=keras.losses.binary_crossentropy),
         r"loss function binary_crossentropy reads probabilities"),
        (lambda m: m.compile(loss=keras.losses.BinaryCrossentropy()),
         r"expects probabilities"),
        (lambda m: m.compile(metrics={"fused": "mae"}, loss="mse"),
         r"pass a list of metrics"),
    ],
)
def test_compile_refuses_what_does_not_suit_logits_or_the_task(build, pattern):
    model = keras_dgl.DGLModel(
        {name: make_encoder(4) for name in MODALITIES}, make_fusion("concat", 2)
    )
    with pytest.raises(ValueError, match=pattern):
        build(model)


def test_classification_needs_two_outputs():
    encoders = {name: make_encoder(4) for name in MODALITIES}
    model = keras_dgl.DGLModel(encoders, make_fusion("concat", None, units=1))
    with pytest.raises(ValueError, match=r"at least 2 outputs.*units=1"):
        model.compile(optimizer="sgd")


# Methods that read class probabilities, and a word of why they need them.
CLASS_METHODS = {
    "ogm": "softmax probability", "ogm_ge": "softmax probability",
    "agm": "softmax probabilities", "inforeg": "Fisher trace",
    "pmr": "class means", "mla": "entropies", "reconboost": "KL divergence",
}


@pytest.mark.parametrize("loss, task", [("binary_crossentropy", "multilabel"),
                                        ("mse", "regression")])
def test_methods_that_read_class_probabilities_refuse_other_tasks(loss, task):
    from keras_dgl.models import methods

    generic = {name for name, cls in methods.REGISTRY.items()
               if cls.needs_class_labels is None}
    assert generic == {"dgl", "joint", "joint_aux", "gblend", "mmpareto"}
    assert set(methods.REGISTRY) - generic == set(CLASS_METHODS)
    for method, why in CLASS_METHODS.items():
        model = keras_dgl.DGLModel(
            {name: make_encoder(4) for name in MODALITIES},
            make_fusion("concat", 3), method=method,
        )
        with pytest.raises(ValueError, match=rf"method='{method}' needs a "
                           rf"classification loss.*{why}.*a {task} task"):
            model.compile(optimizer="sgd", loss=loss)
        assert model.task is None
