"""BestWeightsPerModality: each encoder restored at its own best validation epoch."""

import keras
import numpy as np
import pytest
from dgl_test_utils import imbalanced_task, make_fusion

import keras_dgl

EPOCHS = 4


def _values(layer):
    return [np.array(keras.ops.convert_to_numpy(w)) for w in layer.weights]


def _encoder():
    # Batch normalization: its moving statistics must be restored too.
    return keras.Sequential(
        [
            keras.layers.Dense(6),
            keras.layers.BatchNormalization(),
            keras.layers.Activation("tanh"),
        ]
    )


def _model(unimodal_head="separate", fusion="concat"):
    encoders = {"strong": _encoder(), "weak": _encoder()}
    model = keras_dgl.DGLModel(
        encoders, make_fusion(fusion, unimodal_head=unimodal_head)
    )
    model.compile(optimizer=keras.optimizers.Adam(0.05), metrics=["accuracy"])
    model.build({"strong": (None, 8), "weak": (None, 8)})
    return model


class _EveryEpoch(keras.callbacks.Callback):
    """Copies every weight of the model at each epoch end."""

    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        model = self.model
        self.epochs.append(
            {
                "encoders": {n: _values(e) for n, e in model.encoders.items()},
                "fused_path": [
                    _values_of(v) for v in model.fusion.fused_path_variables()
                ],
                "heads": {
                    n: _values(h) for n, h in model.fusion.unimodal_heads.items()
                },
            }
        )


def _assert_same(actual, expected):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_array_equal(a, e)


def _fit(model, callbacks):
    x, y = imbalanced_task(num_examples=224, num_classes=3)
    val_x = {name: value[160:] for name, value in x.items()}
    val_y, x, y = y[160:], {name: value[:160] for name, value in x.items()}, y[:160]
    return model.fit(
        x, y, validation_data=(val_x, val_y), epochs=EPOCHS, batch_size=32,
        shuffle=False, callbacks=callbacks, verbose=0,
    )


@pytest.mark.parametrize(
    "monitor, unimodal_head, restore",
    [("loss", "separate", False), ("accuracy", "separate", True),
     ("loss", "shared", True)],
)
def test_restores_each_encoder_and_the_fused_path_at_its_best_epoch(
    monitor, unimodal_head, restore
):
    model = _model(unimodal_head)
    record = _EveryEpoch()
    best = keras_dgl.callbacks.BestWeightsPerModality(
        monitor=monitor, restore=restore
    )
    # The recorder runs first: it sees each epoch's weights before any restore.
    logs = _fit(model, [record, best]).history
    if not restore:
        # Left at the last epoch until asked.
        last = record.epochs[-1]["encoders"]["weak"]
        _assert_same(_values(model.encoders["weak"]), last)
        best.restore_best_weights()
    choose = np.argmax if monitor == "accuracy" else np.argmin
    fused_key = "val_accuracy" if monitor == "accuracy" else "val_multimodal_loss"
    expected = {"fused": int(choose(logs[fused_key]))}
    for name in ("strong", "weak"):
        # First best epoch: ties keep the earlier one.
        expected[name] = int(choose(logs[f"val_{name}_{monitor}"]))
    assert best.best_epochs == expected
    if unimodal_head == "separate":
        # Not a trivial restore: the modalities' epochs differ (with this
        # data and seed on every backend; the shared case checks the path
        # without heads).
        assert len(set(expected.values())) > 1, expected
    for name in ("strong", "weak"):
        chosen = record.epochs[expected[name]]
        _assert_same(_values(model.encoders[name]), chosen["encoders"][name])
        if unimodal_head == "separate":
            head = model.fusion.unimodal_heads[name]
            _assert_same(_values(head), chosen["heads"][name])
    _assert_same(
        [_values_of(v) for v in model.fusion.fused_path_variables()],
        record.epochs[expected["fused"]]["fused_path"],
    )
    # The chosen values are the logged ones.
    for name, epoch in expected.items():
        key = fused_key if name == "fused" else f"val_{name}_{monitor}"
        assert best.best_values[name] == pytest.approx(logs[key][epoch])


def _values_of(variable):
    return np.array(keras.ops.convert_to_numpy(variable))


def test_dgl_with_separate_heads_trains_each_encoder_as_if_alone():
    """The premise of choosing per-modality epochs: under DGL with separate
    heads and Adam, an encoder + its head follow the same trajectory as the
    same encoder + head trained alone on the same batches."""
    x, y = imbalanced_task(num_examples=96, num_classes=3, seed=0)
    model = _model()
    init = {
        "encoder": _values(model.encoders["weak"]),
        "head": _values(model.fusion.unimodal_heads["weak"]),
    }
    model.fit(x, y, epochs=3, batch_size=32, shuffle=False, verbose=0)

    encoder = _encoder()
    head = keras.layers.Dense(3)
    inputs = keras.Input((8,))
    alone = keras.Model(inputs, head(encoder(inputs)))
    encoder.set_weights(init["encoder"])
    head.set_weights(init["head"])
    alone.compile(
        optimizer=keras.optimizers.Adam(0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    alone.fit(x["weak"], y, epochs=3, batch_size=32, shuffle=False, verbose=0)
    for a, e in zip(_values(model.encoders["weak"]), _values(encoder)):
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5)
    for a, e in zip(_values(model.fusion.unimodal_heads["weak"]), _values(head)):
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5)


def test_errors_name_what_is_missing():
    with pytest.raises(ValueError, match="monitor"):
        keras_dgl.callbacks.BestWeightsPerModality(monitor="auc")
    model = _model()
    x, y = imbalanced_task(num_examples=32, num_classes=3)
    best = keras_dgl.callbacks.BestWeightsPerModality()
    with pytest.raises(ValueError, match="val_strong_accuracy.*validation_data"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[best])
    plain = keras.Sequential([keras.Input((8,)), keras.layers.Dense(3)])
    plain.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(TypeError, match="DGLModel"):
        plain.fit(x["weak"], y, epochs=1, verbose=0, callbacks=[best])


def test_a_resumed_fit_chooses_among_all_epochs(tmp_path):
    """With `directory`, a new callback continues an interrupted training."""
    x, y = imbalanced_task(num_examples=224, num_classes=3)
    val = ({n: v[160:] for n, v in x.items()}, y[160:])
    x, y = {n: v[:160] for n, v in x.items()}, y[:160]
    model = _model()
    record = _EveryEpoch()
    logs = {}
    for start in (0, 2):
        if start:
            # Wreck the second fit, so that the first one's epochs, known
            # only from the copies on disk, stay the best.
            model.optimizer.learning_rate.assign(50.0)
        # A fresh callback per fit, as after a restart.
        best = keras_dgl.callbacks.BestWeightsPerModality(
            directory=tmp_path
        )
        part = model.fit(
            x, y, validation_data=val, epochs=start + 2, initial_epoch=start,
            batch_size=32, shuffle=False, callbacks=[record, best], verbose=0,
        ).history
        for key, values in part.items():
            logs.setdefault(key, []).extend(values)
    # First best epoch over all four: ties keep the earlier one.
    expected = {"fused": int(np.argmax(logs["val_accuracy"]))}
    for name in ("strong", "weak"):
        expected[name] = int(np.argmax(logs[f"val_{name}_accuracy"]))
    assert best.best_epochs == expected
    # Only the copies on disk know an epoch of the first fit.
    assert min(expected.values()) < 2, expected
    for name in ("strong", "weak"):
        chosen = record.epochs[expected[name]]
        _assert_same(_values(model.encoders[name]), chosen["encoders"][name])
        _assert_same(
            _values(model.fusion.unimodal_heads[name]), chosen["heads"][name]
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "fused.npz", "strong.npz", "weak.npz"
    ]


def test_unreadable_or_foreign_copies_name_the_file(tmp_path):
    model = _model()
    x, y = imbalanced_task(num_examples=64, num_classes=3)
    val = (x, y)
    (tmp_path / "weak.npz").write_bytes(b"truncated")
    best = keras_dgl.callbacks.BestWeightsPerModality(directory=tmp_path)
    with pytest.raises(ValueError, match=r"weak\.npz.*remove it"):
        model.fit(x, y, validation_data=val, epochs=1, verbose=0, callbacks=[best])
    (tmp_path / "weak.npz").unlink()
    by_loss = keras_dgl.callbacks.BestWeightsPerModality(
        monitor="loss", directory=tmp_path
    )
    model.fit(x, y, validation_data=val, epochs=1, verbose=0, callbacks=[by_loss])
    with pytest.raises(ValueError, match=r"validation loss.*monitors accuracy"):
        model.fit(x, y, validation_data=val, epochs=1, verbose=0, callbacks=[best])
