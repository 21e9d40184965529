"""Bad data gets a clear error before any step, on every backend (issue 10.5).

Each case names the array, key or shape at fault. The errors are raised
before Keras starts a step, so a trained model survives them: on JAX an
error inside the first step of a call used to leave its weights freed.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from dgl_test_utils import make_encoder, make_fusion, make_model, random_batch

import keras_dgl


def _batch(batch=16):
    return random_batch(batch=batch)


def _with(x, name, value):
    return {**x, name: value}


def _nan_at(array, index, value=np.nan):
    array = array.copy()
    array[index, 0] = value
    return array


# Each case: (call, arguments builder, error type, message pattern).
def _cases():
    x, y = _batch()
    one_hot = np.eye(3, dtype="float32")[y]
    return {
        "label above num_classes": ("fit", (x, np.where(y == 0, 3, y)), ValueError,
                                    r"class id 3 \(example \d+\), outside \[0, 3\)"),
        "negative label": ("evaluate", (x, np.where(y == 0, -1, y)), ValueError,
                           r"class id -1 .*outside \[0, 3\)"),
        "fractional label": ("fit", (x, y + 0.5), ValueError,
                             r"non-integer class id 0?\.5|non-integer class id [12]\.5"),
        "nan label": ("fit", (x, np.where(y == 0, np.nan, y)), ValueError,
                      r"y holds NaN or infinite"),
        "labels with a class axis": ("fit", (x, one_hot), ValueError,
                                     r"integer class ids.*\(16, 3\)"),
        "nan input": ("fit", (_with(x, "audio", _nan_at(x["audio"], 5)), y),
                      ValueError, r"x\['audio'\] holds NaN or infinite values .*index 5"),
        "inf input in predict": ("predict", (_with(x, "visual", _nan_at(x["visual"], 2, np.inf)),),
                                 ValueError, r"x\['visual'\] holds NaN or infinite"),
        "empty fit": ("fit", ({k: v[:0] for k, v in x.items()}, y[:0]), ValueError,
                      r"x\['audio'\] holds no examples"),
        "empty predict": ("predict", ({k: v[:0] for k, v in x.items()},), ValueError,
                          r"x\['audio'\] holds no examples"),
        "different lengths in predict": (
            "predict", (_with(x, "visual", x["visual"][:10]),), ValueError,
            r"different numbers of examples \(x\['audio'\]: 16, x\['visual'\]: 10\)"),
        "labels of another length": ("fit", (x, y[:12]), ValueError,
                                     r"different numbers of examples.*y: 12"),
        "sample weights with a class axis": (
            "fit", (x, y, np.ones((16, 3), "float32")), ValueError,
            r"sample_weight must hold one weight per example.*\(16, 3\)"),
        "sample weights of another length": (
            "fit", (x, y, np.ones(10, "float32")), ValueError,
            r"sample_weight: 10"),
        "negative sample weight": ("fit", (x, y, -np.ones(16, "float32")), ValueError,
                                   r"negative weight -1"),
        "nan sample weight": ("evaluate", (x, y, np.full(16, np.nan, "float32")),
                              ValueError, r"sample_weight holds NaN"),
        "string input": ("fit", (_with(x, "audio", x["audio"].astype(str)), y), TypeError,
                         r"x\['audio'\] holds strings"),
        "string labels": ("fit", (x, np.array(["cat"] * 16)), TypeError, r"y holds strings"),
        "object input": ("predict", (_with(x, "audio", x["audio"].astype(object)),),
                         TypeError, r"x\['audio'\] holds Python objects"),
        "wrongly shaped modality": (
            "fit", (_with(x, "audio", x["audio"][:, :3]), y), ValueError,
            r"x\['audio'\] has per-example shape \(3,\), but modality 'audio' was "
            r"built for per-example shape \(5,\).*\(num_examples, 5\)"),
        "extra axis in predict": (
            "predict", (_with(x, "visual", np.stack([x["visual"]] * 2, -1)),),
            ValueError, r"x\['visual'\] has per-example shape \(4, 2\)"),
    }


def _call(model, call, args):
    if call == "fit":
        x, y, *weights = args
        return model.fit(x, y, sample_weight=weights[0] if weights else None,
                         batch_size=8, verbose=0)
    if call == "evaluate":
        x, y, *weights = args
        return model.evaluate(x, y, sample_weight=weights[0] if weights else None,
                              verbose=0)
    return model.predict(args[0], verbose=0)


@pytest.mark.parametrize("case", sorted(_cases()))
def test_bad_arrays_get_a_clear_error_and_leave_the_model_intact(case):
    call, args, error, pattern = _cases()[case]
    model = make_model("concat")
    x, y = _batch()
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    before = model.predict(x, verbose=0)
    with pytest.raises(error, match=pattern):
        _call(model, call, args)
    np.testing.assert_allclose(model.predict(x, verbose=0), before, rtol=1e-6)


def _dataset(x, y, batch=4):
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)


@pytest.mark.parametrize(
    "case",
    ["wrong shape", "unbatched", "strings", "labels with a class axis", "empty"],
)
def test_bad_datasets_are_caught_from_their_element_spec(case):
    model = make_model("concat")
    x, y = _batch()
    if case == "wrong shape":
        data, pattern = _dataset(_with(x, "audio", x["audio"][:, :3]), y), (
            r"the dataset's 'audio' input has per-example shape \(3,\)")
    elif case == "unbatched":
        data = tf.data.Dataset.from_tensor_slices((x, y))
        pattern = r"per-example shape \(\).*call `dataset.batch\(batch_size\)`"
    elif case == "strings":
        data = _dataset(_with(x, "audio", x["audio"].astype(str)), y)
        pattern = r"the dataset's 'audio' input holds strings"
    elif case == "labels with a class axis":
        data = _dataset(x, np.eye(3, dtype="float32")[y])
        pattern = r"integer class ids.*\(None, 3\)"
    else:
        data, pattern = _dataset(x, y).take(0), r"the dataset holds no batches"
    error = TypeError if case == "strings" else ValueError
    with pytest.raises(error, match=pattern):
        model.fit(data, verbose=0)


def test_validation_data_is_checked_too():
    model = make_model("concat")
    x, y = _batch()
    with pytest.raises(ValueError, match=r"class id 5"):
        model.fit(x, y, validation_data=(x, np.full(16, 5)), verbose=0)


def test_per_step_calls_check_shapes_and_labels():
    model = make_model("concat")
    x, y = _batch()
    with pytest.raises(ValueError, match=r"class id 9"):
        model.train_on_batch(x, np.full(16, 9))
    with pytest.raises(ValueError, match=r"x\['audio'\] has per-example shape"):
        model.test_on_batch(_with(x, "audio", x["audio"][:, :2]), y)
    with pytest.raises(ValueError, match=r"x\['visual'\] has per-example shape"):
        model.predict_on_batch(_with(x, "visual", x["visual"][:, :1]))


def test_one_hot_labels_must_match_the_outputs_and_sum_to_one():
    model = make_model("concat")
    model.compile(optimizer="sgd", loss="categorical_crossentropy")
    x, y = _batch()
    with pytest.raises(ValueError, match=r"shape \(batch, 3\).*received \(16, 4\)"):
        model.fit(x, np.eye(4, dtype="float32")[y], verbose=0)
    multi_hot = np.eye(3, dtype="float32")[y]
    multi_hot[3] = 1.0
    with pytest.raises(ValueError, match=r"row 3 sums to 3.*BinaryCrossentropy"):
        model.fit(x, multi_hot, verbose=0)


def test_a_failing_first_step_keeps_the_trained_weights():
    # A generator's batches are checked only inside Keras' step: a wrongly
    # shaped one fails there (on JAX after the weights were detached).
    model = make_model("concat")
    x, y = _batch()
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    before = [np.array(keras.ops.convert_to_numpy(v)) for v in model.variables]
    expected = model.predict(x, verbose=0)

    def batches():
        while True:
            yield _with(x, "audio", x["audio"][:, :3]), y

    calls = {
        "fit": lambda: model.fit(batches(), steps_per_epoch=2, verbose=0),
        "evaluate": lambda: model.evaluate(batches(), steps=2, verbose=0),
        "predict": lambda: model.predict(batches(), steps=2, verbose=0),
    }
    for name, call in calls.items():
        # ValueError when traced (JAX, torch); TF's InvalidArgumentError.
        with pytest.raises(Exception, match="(?i)incompatible|size"):
            call()
        np.testing.assert_allclose(
            model.predict(x, verbose=0), expected, rtol=1e-6, err_msg=name
        )
    # Training goes on from the kept weights (not from a fresh initialisation).
    after = [np.array(keras.ops.convert_to_numpy(v)) for v in model.variables]
    for old, new in zip(before, after):
        np.testing.assert_array_equal(old, new)
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"alpha": float("nan")}, r"`alpha` for modality 'audio' must be a finite"),
        ({"alpha": {"audio": 1.0, "visual": float("inf")}},
         r"`alpha` for modality 'visual' must be a finite"),
        ({"fused_weight": float("inf")}, r"`fused_weight` must be a finite"),
        ({"ogm_alpha": float("nan")}, r"`ogm_alpha` must be a finite"),
        ({"alpha": np.bool_(True)}, r"must be a number"),
    ],
)
def test_non_finite_settings_are_refused(kwargs, pattern):
    error = TypeError if "number" in pattern else ValueError
    with pytest.raises(error, match=pattern):
        keras_dgl.DGLModel(
            {"audio": make_encoder(), "visual": make_encoder()},
            make_fusion("concat"),
            **kwargs,
        )


def test_numpy_scalars_are_accepted_and_saved(tmp_path):
    model = keras_dgl.DGLModel(
        {"audio": make_encoder(), "visual": make_encoder()},
        make_fusion("concat"),
        alpha={"audio": np.float32(2.0), "visual": np.int64(3)},
        fused_weight=np.float64(0.5),
    )
    assert model.alpha == {"audio": 2.0, "visual": 3.0}
    assert type(model.alpha["audio"]) is float and model.fused_weight == 0.5
    model.compile(optimizer="sgd")
    x, y = _batch()
    model.fit(x, y, verbose=0)
    model.save(str(tmp_path / "m.keras"))
    loaded = keras_dgl.load_model(str(tmp_path / "m.keras"))
    assert loaded.alpha == {"audio": 2.0, "visual": 3.0}
    single = keras_dgl.DGLModel(
        {"audio": make_encoder(), "visual": make_encoder()},
        make_fusion("concat"),
        alpha=np.float32(4.0),
    )
    assert single.alpha == 4.0 and type(single.alpha) is float
