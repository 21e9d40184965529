"""Fusion refit: only the fused path moves, and the epoch is chosen on validation."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from dgl_test_utils import FUSION_CLASSES, imbalanced_task, make_fusion

import keras_dgl
from keras_dgl.refit import refit_fusion


def _encoder(batch_norm=False):
    layers = [keras.layers.Dense(8)]
    if batch_norm:
        layers.append(keras.layers.BatchNormalization())
    layers.append(keras.layers.Activation("tanh"))
    return keras.Sequential(layers)


def _model(fusion="concat", method="dgl", **fusion_kwargs):
    # One encoder with batch norm, whose moving statistics must not move.
    encoders = {"strong": _encoder(batch_norm=True), "weak": _encoder()}
    model = keras_dgl.DGLModel(
        encoders, make_fusion(fusion, **fusion_kwargs), method=method
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2), metrics=["accuracy"])
    model.build({"strong": (None, 8), "weak": (None, 8)})
    return model


def _values(variables):
    return [np.array(keras.ops.convert_to_numpy(v)) for v in variables]


def _all_equal(before, variables):
    after = _values(variables)
    return len(before) == len(after) and all(
        a.dtype == b.dtype and np.array_equal(a, b) for a, b in zip(before, after)
    )


def _fused_loss_and_accuracy(model, x, y):
    """What the model itself predicts, in inference mode."""
    logits = model(x, training=False)["fused"]
    loss = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    hits = np.argmax(keras.ops.convert_to_numpy(logits), axis=-1) == y
    return float(np.mean(keras.ops.convert_to_numpy(loss))), float(np.mean(hits))


@pytest.mark.parametrize("fusion", sorted(FUSION_CLASSES))
def test_refit_trains_only_the_fused_path(fusion):
    x, y = imbalanced_task(num_examples=192)
    model = _model(fusion)
    # Stats away from their initial values, as after real training.
    bn = model.encoders["strong"].layers[1]
    bn.moving_mean.assign(np.full((8,), 0.3, "float32"))
    bn.moving_variance.assign(np.full((8,), 2.0, "float32"))
    model.optimizer.build(model.trainable_variables)
    encoder_state = {n: _values(e.weights) for n, e in model.encoders.items()}
    optimizer_state = _values(model.optimizer.variables)
    fused_before = _values(model.fusion.fused_path_variables())
    loss_before, _ = _fused_loss_and_accuracy(model, x, y)

    result = model.refit_fusion((x, y), epochs=3, batch_size=96, patience=None)

    for name, encoder in model.encoders.items():
        assert _all_equal(encoder_state[name], encoder.weights), name
    assert _all_equal(optimizer_state, model.optimizer.variables)
    assert not _all_equal(fused_before, model.fusion.fused_path_variables())
    loss_after, accuracy_after = _fused_loss_and_accuracy(model, x, y)
    assert loss_after <= loss_before
    # The refit scored the model's own inference-mode predictions.
    np.testing.assert_allclose(result["before"]["train_loss"], loss_before, rtol=1e-4)
    np.testing.assert_allclose(result["after"]["train_loss"], loss_after, rtol=1e-4)
    np.testing.assert_allclose(
        result["after"]["train_accuracy"], accuracy_after, atol=1e-6
    )
    assert result["monitored_on"] == "train"
    assert result["after"]["val_loss"] is None


def test_separate_heads_stay_put_and_trainable():
    x, y = imbalanced_task(num_examples=128)
    model = _model("concat", unimodal_head="separate")
    heads = [v for h in model.fusion.unimodal_heads.values() for v in h.weights]
    head_values = _values(heads)
    trainable_before = len(model.trainable_variables)

    model.refit_fusion((x, y), epochs=2, batch_size=64, patience=None)

    assert _all_equal(head_values, heads)
    # The heads are frozen only during the refit.
    assert all(v.trainable for v in heads)
    assert len(model.trainable_variables) == trainable_before


def test_refit_recovers_a_stale_fusion_head():
    x, y = imbalanced_task(num_examples=600, seed=0)
    train = ({k: v[:400] for k, v in x.items()}, y[:400])
    val = ({k: v[400:] for k, v in x.items()}, y[400:])
    model = _model("concat")
    model.fit(*train, epochs=3, batch_size=50, verbose=0)
    _, trained_accuracy = _fused_loss_and_accuracy(model, *val)
    # A stale head: the fusion weights of another, untrained model.
    stale = make_fusion("concat")
    stale({"strong": np.zeros((1, 8)), "weak": np.zeros((1, 8))})
    for variable, value in zip(model.fusion.weights, stale.weights):
        variable.assign(value.value)
    _, stale_accuracy = _fused_loss_and_accuracy(model, *val)
    assert stale_accuracy < trained_accuracy - 0.1

    result = model.refit_fusion(
        train, val, epochs=25, batch_size=200, patience=5,
        optimizer=keras.optimizers.Adam(0.05),
    )

    _, refit_accuracy = _fused_loss_and_accuracy(model, *val)
    assert refit_accuracy >= trained_accuracy - 0.02
    assert refit_accuracy > stale_accuracy
    np.testing.assert_allclose(
        result["after"]["val_accuracy"], refit_accuracy, atol=1e-6
    )
    assert result["after"]["val_loss"] < result["before"]["val_loss"]


def test_epoch_choice_restores_the_best_monitored_epoch():
    x, y = imbalanced_task(num_examples=300, seed=1)
    train = ({k: v[:200] for k, v in x.items()}, y[:200])
    val = ({k: v[200:] for k, v in x.items()}, y[200:])
    model = _model("gated")

    result = refit_fusion(
        model, train, val, epochs=6, batch_size=100, patience=None,
        optimizer=keras.optimizers.Adam(0.05), reinitialize=True,
    )

    candidates = [result["before"]["val_loss"]] + result["history"]["monitored_loss"]
    assert result["epochs_run"] == 6 and len(candidates) == 7
    assert result["best_epoch"] == int(np.argmin(candidates))
    np.testing.assert_allclose(result["after"]["val_loss"], min(candidates), rtol=1e-5)
    np.testing.assert_allclose(
        _fused_loss_and_accuracy(model, *val)[0], min(candidates), rtol=1e-4
    )


def test_nothing_better_keeps_the_original_weights_and_stops_early():
    x, y = imbalanced_task(num_examples=200, seed=2)
    model = _model("sum")
    model.fit(x, y, epochs=3, batch_size=50, verbose=0)
    fused_before = _values(model.fusion.fused_path_variables())
    # Validation labels shifted by one class: learning the task only hurts.
    wrong = ((y + 1) % 3).astype("int32")

    result = model.refit_fusion(
        (x, y), (x, wrong), epochs=20, batch_size=50, patience=2
    )

    assert result["best_epoch"] == 0
    assert result["epochs_run"] == 2
    assert _all_equal(fused_before, model.fusion.fused_path_variables())
    assert result["after"] == result["before"]


class _EncoderSnapshot(keras.callbacks.Callback):
    """Encoder weights as the training loop left them."""

    def on_train_end(self, logs=None):
        self.state = {n: _values(e.weights) for n, e in self.model.encoders.items()}


def test_callback_refits_after_fit_from_a_tf_data_pipeline():
    x, y = imbalanced_task(num_examples=256)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(64)
    model = _model("concat")
    snapshot = _EncoderSnapshot()
    refit = keras_dgl.callbacks.FusionRefit(dataset, dataset, epochs=3, batch_size=128)

    # Callbacks run in list order: the snapshot sees the encoders first.
    model.fit(dataset, epochs=2, verbose=0, callbacks=[snapshot, refit])

    assert refit.result["num_train"] == 256
    assert refit.result["monitored_on"] == "validation"
    assert refit.result["after"]["val_loss"] <= refit.result["before"]["val_loss"]
    np.testing.assert_allclose(
        refit.result["after"]["val_loss"],
        _fused_loss_and_accuracy(model, x, y)[0],
        rtol=1e-4,
    )
    for name, encoder in model.encoders.items():
        assert _all_equal(snapshot.state[name], encoder.weights), name


def test_bad_arguments_are_rejected():
    x, y = imbalanced_task(num_examples=32)
    model = _model("concat")
    with pytest.raises(ValueError, match="not the model's own"):
        model.refit_fusion((x, y), optimizer=model.optimizer)
    with pytest.raises(ValueError, match="monitor"):
        model.refit_fusion((x, y), monitor="val_loss")
    with pytest.raises(TypeError, match="DGLModel"):
        refit_fusion(keras.Sequential([keras.layers.Dense(2)]), (x, y))
    with pytest.raises(ValueError, match="sample weights"):
        model.refit_fusion([(x, y, np.ones(32))])
