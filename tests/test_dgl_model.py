"""DGLModel: training, predictions, logs, saving and bad input on every backend."""

import os
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest
from dgl_test_utils import (
    FUSION_CLASSES,
    METHODS,
    imbalanced_task,
    make_encoder,
    make_fusion,
    make_model,
    random_batch,
)
from keras_dgl_test_case import run_model_saving_test

import keras_dgl


def _model(fusion="concat", method="dgl", alpha=1.0, **fusion_kwargs):
    encoders = {"strong": make_encoder(16), "weak": make_encoder(16)}
    return keras_dgl.DGLModel(
        encoders, make_fusion(fusion, **fusion_kwargs), alpha=alpha, method=method
    )


def _predict_modalities(model, x):
    return model.predict_modalities(x, verbose=0)


def _fused_loss_and_accuracy(model, x, y):
    logits = model(x, training=False)["fused"]
    loss = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    hits = np.argmax(keras.ops.convert_to_numpy(logits), axis=-1) == y
    return float(np.mean(keras.ops.convert_to_numpy(loss))), float(np.mean(hits))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("fusion", sorted(FUSION_CLASSES))
def test_every_fusion_and_method_lowers_the_loss(fusion, method):
    x, y = imbalanced_task(num_examples=256)
    model = _model(fusion, method)
    model.compile(
        optimizer=keras.optimizers.SGD(0.05, momentum=0.9), metrics=["accuracy"]
    )
    loss_before, _ = _fused_loss_and_accuracy(model, x, y)
    history = model.fit(x, y, epochs=4, batch_size=32, verbose=0)
    loss_after, accuracy_after = _fused_loss_and_accuracy(model, x, y)
    assert loss_after < 0.8 * loss_before
    assert accuracy_after > 0.6
    expected_logs = {
        "loss",
        "accuracy",
        "multimodal_loss",
        "strong_loss",
        "weak_loss",
        "strong_accuracy",
        "weak_accuracy",
    }
    assert expected_logs <= set(history.history)


def test_validation_logs_and_unimodal_accuracy():
    x, y = imbalanced_task()
    model = _model()
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    history = model.fit(
        x, y, validation_data=(x, y), epochs=3, batch_size=64, verbose=0
    )
    for name in ("val_loss", "val_multimodal_loss", "val_strong_accuracy"):
        assert name in history.history
    # The strong modality alone classifies well; the weak one much less so.
    assert history.history["val_strong_accuracy"][-1] > 0.8
    assert history.history["val_weak_accuracy"][-1] < history.history[
        "val_strong_accuracy"
    ][-1]


def test_loss_is_the_weighted_sum_of_the_logged_terms():
    x, y = random_batch(batch=32)
    model = make_model("concat", "dgl", alpha={"audio": 2.0, "visual": 0.5})
    logs = model.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    expected = (
        logs["multimodal_loss"] + 2.0 * logs["audio_loss"] + 0.5 * logs["visual_loss"]
    )
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-5)
    joint = make_model("concat", "joint")
    logs = joint.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["loss"], logs["multimodal_loss"], rtol=1e-5)


def test_predict_returns_fused_logits_and_predict_modalities_all():
    x, y = random_batch(batch=10)
    model = make_model("gated", "dgl")
    fused = model.predict(x, batch_size=4, verbose=0)
    assert fused.shape == (10, 3)
    everything = model.predict_modalities(x, batch_size=4, verbose=0)
    assert set(everything) == {"fused", "audio", "visual"}
    np.testing.assert_allclose(everything["fused"], fused, rtol=1e-6)
    direct = model(x, training=False)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(direct["unimodal"]["audio"]),
        everything["audio"],
        rtol=1e-5,
        atol=1e-6,
    )
    assert keras.ops.convert_to_numpy(direct["fused"]).dtype == np.float32
    np.testing.assert_allclose(
        model.predict_on_batch(x), fused, rtol=1e-5, atol=1e-6
    )


def test_shared_concat_unimodal_prediction_is_the_kernel_slice():
    x, _ = random_batch()
    model = make_model("concat", "dgl")
    out = model(x, training=False)
    features = model.encoders["audio"](x["audio"])
    kernel = keras.ops.convert_to_numpy(model.fusion.kernel)
    bias = keras.ops.convert_to_numpy(model.fusion.bias)
    dim = features.shape[-1]
    expected = keras.ops.convert_to_numpy(features) @ kernel[:dim] + bias
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(out["unimodal"]["audio"]), expected, rtol=1e-5,
        atol=1e-6,
    )


def test_tf_data_input_and_sample_weights():
    import tensorflow as tf

    x, y = imbalanced_task(num_examples=128)
    weights = np.ones_like(y, dtype="float32")
    ds = tf.data.Dataset.from_tensor_slices((x, y, weights)).batch(32)
    model = _model("sum", "dgl")
    model.compile(optimizer="adam", metrics=["accuracy"])
    history = model.fit(ds, epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_one_hot_labels_with_categorical_loss():
    x, y = random_batch(batch=16)
    one_hot = keras.ops.convert_to_numpy(keras.ops.one_hot(y, 3))
    model = make_model("concat", "dgl")
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    sparse_model = make_model("concat", "dgl")
    sparse_model.set_weights(model.get_weights())
    dense_logs = model.evaluate(x, one_hot, verbose=0, return_dict=True)
    sparse_logs = sparse_model.evaluate(x, y, verbose=0, return_dict=True)
    np.testing.assert_allclose(dense_logs["loss"], sparse_logs["loss"], rtol=1e-5)
    np.testing.assert_allclose(
        dense_logs["audio_accuracy"], sparse_logs["audio_accuracy"]
    )


@pytest.mark.parametrize("unimodal_head", ["shared", "separate"])
def test_save_and_load_give_identical_predictions(tmp_path, unimodal_head):
    x, y = imbalanced_task(num_examples=64)
    for fusion in sorted(FUSION_CLASSES):
        model = _model(
            fusion, "dgl", alpha={"strong": 2.0, "weak": 3.0}, unimodal_head=unimodal_head
        )
        model.compile(optimizer=keras.optimizers.SGD(0.01), metrics=["accuracy"])
        # Every head's predictions, the config, weights and compile config.
        loaded = run_model_saving_test(model, x, tmp_path, outputs=_predict_modalities)
        assert isinstance(loaded, keras_dgl.DGLModel)
        assert loaded.method == "dgl" and loaded.alpha == {"strong": 2.0, "weak": 3.0}
        assert loaded.fusion.unimodal_head == unimodal_head


def test_loaded_model_keeps_its_compiled_state_and_trains(tmp_path):
    x, y = imbalanced_task(num_examples=64)
    model = _model("concat", "joint_aux", alpha=0.5)
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
        loss="categorical_crossentropy",
        metrics=["accuracy"],
    )
    one_hot = keras.ops.convert_to_numpy(keras.ops.one_hot(y, 3))
    model.fit(x, one_hot, epochs=1, batch_size=32, verbose=0)
    # Also the optimizer's step count and momenta, exactly.
    loaded = run_model_saving_test(
        model, x, tmp_path, outputs=lambda m, x: m.predict(x, verbose=0)
    )
    assert isinstance(loaded.optimizer, keras.optimizers.SGD)
    assert isinstance(loaded._term_loss, keras.losses.CategoricalCrossentropy)
    logs = loaded.fit(x, one_hot, epochs=1, batch_size=32, verbose=0).history
    assert {"accuracy", "strong_accuracy", "multimodal_loss"} <= set(logs)


def _save_trained_model(folder):
    """A model with two steps of Adam state, saved with its data and predictions."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = {"audio": rng.normal(size=(16, 5)).astype("float32"),
         "visual": rng.normal(size=(16, 4)).astype("float32")}
    y = rng.integers(0, 3, size=16)
    encoders = {name: keras.Sequential([keras.layers.Dense(6, activation="tanh")])
                for name in x}
    model = keras_dgl.DGLModel(encoders, keras_dgl.layers.AttentionFusion(
        num_classes=3, embed_dim=8, num_heads=2), alpha=2.0)
    model.compile(optimizer=keras.optimizers.Adam(0.01), metrics=["accuracy"])
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)  # two steps of Adam state
    expected = model.predict(x, verbose=0)
    model.save(os.path.join(folder, "model.keras"))
    np.savez(os.path.join(folder, "data.npz"), expected=expected, y=y, **x)


# Loads the model where the backend that saved it cannot be imported, as on
# a machine without it, then checks predictions, optimizer state and a step.
LOAD_SCRIPT = """
import sys

import importlib.abc
import importlib.machinery

BLOCKED = sys.argv[2]


class _NotInstalled(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    # Importing the blocked package fails as on a machine without it; probes
    # of its spec (torch's, scipy's) see a package with no files.
    def find_spec(self, name, path=None, target=None):
        if name == BLOCKED or name.startswith(BLOCKED + "."):
            return importlib.machinery.ModuleSpec(name, self)
        return None

    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r} (test)",
                                  name=spec.name)

    def exec_module(self, module):
        pass


sys.meta_path.insert(0, _NotInstalled())
import numpy as np
import keras
import keras_dgl
data = np.load(sys.argv[1] + "/data.npz")
x = {"audio": data["audio"], "visual": data["visual"]}
model = keras_dgl.load_model(sys.argv[1] + "/model.keras")
np.testing.assert_allclose(
    model.predict(x, verbose=0), data["expected"], rtol=1e-4, atol=1e-5
)
assert type(model.optimizer).__name__ == "Adam", type(model.optimizer)
assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 2
logs = model.fit(x, data["y"], batch_size=8, epochs=1, verbose=0).history
assert {"accuracy", "audio_accuracy"} <= set(logs), sorted(logs)
print("LOADED", keras.backend.backend(), BLOCKED in sys.modules)
"""

# Each backend's model is loaded under the next backend of this cycle, where
# the saving one cannot be imported, so that across the three test runs
# every backend both saves and loads: torch -> jax -> tensorflow -> torch.
LOADED_UNDER = {"torch": "jax", "jax": "tensorflow", "tensorflow": "torch"}


def test_model_saved_under_another_backend_loads_without_it(tmp_path):
    # Under torch, Keras saved optimizers under a torch-only module path, so
    # such a model did not load where torch is not installed (issue 10.4).
    # Saved here; loaded in a fresh process of the other backend.
    backend = keras.backend.backend()
    loader = LOADED_UNDER[backend]
    _save_trained_model(str(tmp_path))
    done = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(tmp_path), backend],
        env=dict(os.environ, KERAS_BACKEND=loader, TF_CPP_MIN_LOG_LEVEL="3"),
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-3:] == ["LOADED", loader, "False"]


def test_optimizer_config_is_saved_backend_neutral():
    model = make_model("concat")
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    config = model.get_compile_config()["optimizer"]
    assert config["module"] == "keras.optimizers" and config["class_name"] == "SGD"
    # A file written before this fix, by the torch backend, still loads.
    old = dict(config, module="keras.src.backend.torch.optimizers.torch_sgd")
    fresh = make_model("concat")
    fresh.compile_from_config({"optimizer": old, "loss": None, "metrics": None})
    assert type(fresh.optimizer).__name__ == "SGD"
    if keras.backend.backend() != "torch":
        assert "torch" not in type(fresh.optimizer).__module__
    np.testing.assert_allclose(float(fresh.optimizer.momentum), 0.9)


@pytest.mark.parametrize("damage", ["empty", "truncated", "bit flip", "missing"])
def test_damaged_model_file_is_named_as_corrupt(tmp_path, damage):
    path = tmp_path / "model.keras"
    make_model("concat").save(str(path))
    data = path.read_bytes()
    if damage == "empty":
        path.write_bytes(b"")
        error, pattern = ValueError, r"model.keras' is empty \(0 bytes\)"
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
        error, pattern = ValueError, r"model.keras' is corrupt: it is not a complete"
    elif damage == "bit flip":
        # Inside the stored weights file, away from the archive's headers.
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("model.weights.h5")
        start = info.header_offset + 30 + len(info.filename) + len(info.extra)
        middle = start + info.compress_size // 2
        path.write_bytes(data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1 :])
        error, pattern = ValueError, r"member 'model.weights.h5' fails its checksum"
    else:
        path.unlink()
        error, pattern = FileNotFoundError, r"No model file at .*model.keras"
    with pytest.raises(error, match=pattern):
        keras_dgl.load_model(str(path))


# Bad input ---------------------------------------------------------------


def test_needs_two_encoders():
    with pytest.raises(ValueError, match="at least two modalities"):
        keras_dgl.DGLModel({"audio": make_encoder()}, make_fusion("concat"))
    with pytest.raises(TypeError, match="dict"):
        keras_dgl.DGLModel([make_encoder(), make_encoder()], make_fusion("concat"))


def test_rejects_bad_encoder_fusion_and_names():
    with pytest.raises(TypeError, match="'visual'"):
        keras_dgl.DGLModel(
            {"audio": make_encoder(), "visual": lambda x: x}, make_fusion("concat")
        )
    with pytest.raises(TypeError, match="FusionLayer"):
        keras_dgl.DGLModel(
            {"audio": make_encoder(), "visual": make_encoder()},
            keras.layers.Dense(3),
        )
    with pytest.raises(ValueError, match="reserved"):
        keras_dgl.DGLModel(
            {"fused": make_encoder(), "visual": make_encoder()}, make_fusion("concat")
        )


@pytest.mark.parametrize(
    "alpha, error, pattern",
    [
        (-1.0, ValueError, "'audio' must be non-negative"),
        ({"audio": 1.0, "video": 2.0}, ValueError, r"unknown modalities \['video'\]"),
        ({"audio": 1.0}, ValueError, r"missing: \['visual'\]"),
        ("big", TypeError, "must be a number"),
    ],
)
def test_rejects_bad_alpha(alpha, error, pattern):
    with pytest.raises(error, match=pattern):
        keras_dgl.DGLModel(
            {"audio": make_encoder(), "visual": make_encoder()},
            make_fusion("concat"),
            alpha=alpha,
        )


def test_rejects_unknown_method():
    with pytest.raises(ValueError, match="Unknown `method` 'dlg'"):
        keras_dgl.DGLModel(
            {"audio": make_encoder(), "visual": make_encoder()},
            make_fusion("concat"),
            method="dlg",
        )


def test_input_keys_must_match_encoders():
    model = make_model("concat")
    x, y = random_batch()
    with pytest.raises(ValueError, match=r"Missing: \['visual'\]"):
        model.fit({"audio": x["audio"]}, y, verbose=0)
    extra = dict(x, depth=x["visual"])
    with pytest.raises(ValueError, match=r"unexpected: \['depth'\]"):
        model.predict(extra, verbose=0)
    with pytest.raises(TypeError, match="dict keyed by modality"):
        model.predict(x["audio"], verbose=0)


def test_encoder_must_return_one_vector_per_example():
    encoders = {
        "audio": keras.Sequential([keras.layers.Dense(4)]),  # keeps the time axis
        "visual": make_encoder(),
    }
    model = keras_dgl.DGLModel(encoders, make_fusion("concat"))
    model.compile(optimizer="sgd")
    x = {"audio": np.zeros((4, 7, 3), "float32"), "visual": np.zeros((4, 4), "float32")}
    with pytest.raises(ValueError, match=r"modality 'audio'.*\(4, 7, 4\)|modality 'audio'.*\(None, 7, 4\)"):
        model.fit(x, np.zeros(4, "int32"), verbose=0)


def test_labels_must_be_class_ids():
    model = make_model("concat")
    x, y = random_batch()
    with pytest.raises(ValueError, match=r"labels of shape \((8|None), 3, 2\)"):
        model.fit(x, np.zeros((8, 3, 2), "int32"), verbose=0)
    out = model(x)
    with pytest.raises(ValueError, match="batch size 5"):
        model.compute_loss(x, np.zeros(5, "int32"), out)


def test_loss_expecting_probabilities_is_rejected():
    model = make_model("concat")
    with pytest.raises(ValueError, match="from_logits=True"):
        model.compile(
            optimizer="sgd",
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=False),
        )
    with pytest.raises(ValueError, match="alpha"):
        model.compile(optimizer="sgd", loss_weights={"fused": 1.0})
