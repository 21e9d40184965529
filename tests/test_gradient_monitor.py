"""GradientMonitor: what it measures, that it changes nothing, where it logs."""

import glob

import keras
import numpy as np
import pytest
import tensorflow as tf
from dgl_test_utils import imbalanced_task, make_encoder, make_fusion

import keras_dgl
from keras_dgl import backend as dgl_backend


def _model(method="joint", encoder=None, jit_compile="auto"):
    encoder = encoder or (lambda: make_encoder(16))
    model = keras_dgl.DGLModel(
        {"strong": encoder(), "weak": encoder()}, make_fusion("concat"), method=method
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9), jit_compile=jit_compile
    )
    return model


def _probe(x, y, size=128):
    return {name: value[:size] for name, value in x.items()}, y[:size]


def test_ratio_falls_below_one_under_joint_training():
    """The paper's claim: fusion shrinks the gradient each encoder receives."""
    x, y = imbalanced_task(num_examples=512)
    model = _model("joint")
    monitor = keras_dgl.callbacks.GradientMonitor(_probe(x, y), every_n_steps=4)
    history = model.fit(
        x, y, epochs=2, batch_size=64, callbacks=[monitor], verbose=0
    ).history
    series = monitor.history
    assert series["step"] == [0, 4, 8, 12, 16]
    assert series["epoch"] == [0, 0, 0, 1, 1]
    for name in ("strong", "weak"):
        ratios = series[f"{name}_grad_ratio"]
        print(keras.backend.backend(), name, "ratio:", np.round(ratios, 4).tolist())
        # At initialization fusion hardly changes the residual (p - y)...
        assert 0.5 < ratios[0] < 2.0
        # ... then the encoder gets less than it would alone, and it stays so.
        assert ratios[-1] < 1.0 and ratios[-1] < ratios[0]
        assert max(ratios[-2:]) < 1.0
        np.testing.assert_allclose(
            ratios,
            np.array(series[f"{name}_grad_multimodal"])
            / np.array(series[f"{name}_grad_unimodal"]),
            rtol=1e-6,
        )
        # History gets the epoch-end measurements.
        np.testing.assert_allclose(
            history[f"{name}_grad_ratio"], [ratios[2], ratios[4]]
        )
    # The weak modality is the one starved most.
    assert series["weak_grad_ratio"][-1] < series["strong_grad_ratio"][-1]


def test_norms_match_the_separate_gradients():
    x, y = imbalanced_task(num_examples=64)
    model = _model("dgl")
    model.build({name: (None, 8) for name in x})
    monitor = keras_dgl.callbacks.GradientMonitor((x, y))
    monitor.set_model(model)
    values = monitor.measure()

    def features():
        return {n: model.encoders[n](x[n], training=False) for n in x}

    def cross_entropy(logits):
        return keras.ops.mean(
            keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
        )

    for name in x:
        variables = model.encoders[name].trainable_variables
        multimodal = dgl_backend.value_and_gradients(
            lambda: cross_entropy(model.fusion(features())), variables
        )[1]
        unimodal = dgl_backend.value_and_gradients(
            lambda: cross_entropy(model.fusion(features(), unimodal=True)[name]),
            variables,
        )[1]
        for key, grads in (("multimodal", multimodal), ("unimodal", unimodal)):
            expected = np.sqrt(sum(np.sum(g**2) for g in grads))
            np.testing.assert_allclose(
                values[f"{name}_grad_{key}"], expected, rtol=1e-5
            )


def test_monitoring_changes_nothing():
    """Same weights with and without the monitor, dropout and batch norm included."""

    def encoder():
        return keras.Sequential(
            [
                keras.layers.Dense(16),
                keras.layers.BatchNormalization(),
                keras.layers.Activation("tanh"),
                keras.layers.Dropout(0.3),
            ]
        )

    x, y = imbalanced_task(num_examples=64)
    monitor = keras_dgl.callbacks.GradientMonitor(
        _probe(x, y, 32), every_n_steps=1, training=True
    )
    weights = []
    for callbacks in ([], [monitor]):
        keras.utils.set_random_seed(3)
        # Two steps only: compiling them would cost more than it saves.
        model = _model("joint", encoder, jit_compile=False)
        model.fit(
            x, y, epochs=1, batch_size=32, shuffle=False, callbacks=callbacks, verbose=0
        )
        weights.append([keras.ops.convert_to_numpy(v) for v in model.weights])
    assert monitor.history["step"] == [0, 1, 2]
    for without, with_monitor in zip(*weights):
        np.testing.assert_allclose(with_monitor, without, rtol=1e-6, atol=1e-7)


def test_tensorboard_scalars_and_tf_data_probe(tmp_path):
    x, y = imbalanced_task(num_examples=128)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    model = _model("dgl")
    monitor = keras_dgl.callbacks.GradientMonitor(
        dataset, every_n_steps=2, log_dir=str(tmp_path)
    )
    assert monitor._y.shape == (32,)  # the first batch is the probe
    model.fit(dataset, epochs=1, callbacks=[monitor], shuffle=False, verbose=0)
    tags = {}
    for path in glob.glob(str(tmp_path / "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                tags.setdefault(value.tag, []).append(event.step)
    for name in ("strong", "weak"):
        for quantity in ("ratio", "multimodal", "unimodal"):
            assert tags[f"grad_{quantity}/{name}"] == [0, 2, 4]


def test_config_and_bad_arguments():
    x, y = imbalanced_task(num_examples=8)
    monitor = keras_dgl.callbacks.GradientMonitor((x, y), every_n_steps=5)
    assert monitor.get_config() == {
        "every_n_steps": 5,
        "log_dir": None,
        "training": False,
    }
    with pytest.raises(ValueError, match="every_n_steps"):
        keras_dgl.callbacks.GradientMonitor((x, y), every_n_steps=0)
    with pytest.raises(ValueError, match="no batch"):
        keras_dgl.callbacks.GradientMonitor([])
