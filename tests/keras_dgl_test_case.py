"""Shared checks for keras_dgl layers and models, in the spirit of keras-hub's `TestCase`.

The layer, encoder, preprocessing and model tests call these instead of writing their
own config, serialization and `.keras` round trips, so every layer gets the same checks.
Plain functions, for the suite's function-style pytest tests.
"""

import json
import os

import keras
import numpy as np
from keras import tree


def to_numpy(x):
    """`x` as a NumPy array; bfloat16 goes through float32 (NumPy has no bfloat16).

    Args:
        x: a backend tensor, NumPy array or scalar.

    Example:
        >>> to_numpy(keras.ops.ones((2,))).tolist()
        [1.0, 1.0]
    """
    if keras.backend.standardize_dtype(getattr(x, "dtype", "float32")) == "bfloat16":
        x = keras.ops.cast(x, "float32")
    return keras.ops.convert_to_numpy(x)


def assert_all_close(actual, expected, rtol=1e-6, atol=0.0, what="outputs"):
    """Asserts two nested structures (dicts, lists, tensors) match leaf by leaf.

    Args:
        actual: the structure to check.
        expected: the reference structure; it must have the same nesting and keys.
        rtol: relative tolerance, as in `np.testing.assert_allclose`.
        atol: absolute tolerance.
        what: a name for the failure message.

    Example:
        >>> assert_all_close({"a": np.ones(2)}, {"a": np.ones(2)})
    """
    tree.assert_same_structure(actual, expected)
    paths = [p for p, _ in tree.flatten_with_path(expected)]
    for path, got, want in zip(paths, tree.flatten(actual), tree.flatten(expected)):
        np.testing.assert_allclose(
            to_numpy(got), to_numpy(want), rtol=rtol, atol=atol,
            err_msg=f"{what} differ at {path}",
        )


def config_differences(actual, expected, path="config"):
    """The paths where two nested configs differ, for readable failure messages.

    Args:
        actual: a config (nested dicts, lists and values).
        expected: the reference config.
        path: the name of the root in the returned paths.

    Returns:
        A list of `"path: actual != expected"` strings, empty when the configs are equal.

    Example:
        >>> config_differences({"units": 3}, {"units": 4})
        ['config/units: 3 != 4']
    """
    if isinstance(actual, dict) and isinstance(expected, dict):
        keys = sorted(set(actual) | set(expected), key=str)
        return [
            d for k in keys
            for d in config_differences(
                actual.get(k, "<missing>"), expected.get(k, "<missing>"), f"{path}/{k}"
            )
        ]
    if (
        isinstance(actual, (list, tuple)) and isinstance(expected, (list, tuple))
        and len(actual) == len(expected)
    ):
        return [
            d for i, (a, e) in enumerate(zip(actual, expected))
            for d in config_differences(a, e, f"{path}[{i}]")
        ]
    return [] if actual == expected else [f"{path}: {actual!r} != {expected!r}"]


def assert_same_config(actual, expected, what="config"):
    """Asserts two configs are equal (a tuple equals the same list), naming differences.

    Args:
        actual: the config to check.
        expected: the reference config.
        what: a name for the failure message.

    Example:
        >>> assert_same_config(layer.get_config(), clone.get_config())
    """
    # Tuples and lists are one thing once a config is written as JSON.
    actual, expected = _lists(actual), _lists(expected)
    assert actual == expected, config_differences(actual, expected, what)[:10]


def _lists(config):
    if isinstance(config, dict):
        return {k: _lists(v) for k, v in config.items()}
    if isinstance(config, (list, tuple)):
        return [_lists(v) for v in config]
    return config


def _shapes(outputs):
    return tree.map_structure(lambda x: tuple(x.shape), outputs)


def _symbolic(input_data):
    return tree.map_structure(
        lambda x: keras.KerasTensor(x.shape, dtype=keras.backend.standardize_dtype(x.dtype)),
        input_data,
    )


def run_serialization_test(layer):
    """Checks a layer's config and `keras.layers` serialization round trips.

    `from_config(get_config())` must rebuild the same config; the layer must be registered
    as `keras_dgl>ClassName`, so generic deserialization needs no `custom_objects`; and the
    serialized form must survive JSON, as it does inside a `.keras` file.

    Args:
        layer: a layer instance (built or not).

    Returns:
        The layer deserialized from JSON, unbuilt.

    Example:
        >>> run_serialization_test(keras_dgl.layers.SumFusion(num_classes=3))
    """
    cls = type(layer)
    config = layer.get_config()
    restored = cls.from_config(config)
    assert type(restored) is cls
    assert_same_config(restored.get_config(), config)
    serialized = keras.layers.serialize(layer)
    assert serialized["registered_name"] == f"keras_dgl>{cls.__name__}", serialized[
        "registered_name"
    ]
    revived = keras.layers.deserialize(json.loads(json.dumps(serialized)))
    assert type(revived) is cls
    assert_same_config(revived.get_config(), config)
    return revived


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_data=None,
    expected_output_shape=None,
    *,
    expected_output_dtype=None,
    call_kwargs=None,
    run_saving_check=False,
    tmp_path=None,
    rtol=1e-6,
    atol=0.0,
):
    """Builds a layer and checks its outputs, config, serialization and (optionally) saving.

    1. `run_serialization_test` on the fresh layer.
    2. With `input_data`: the eager call's output shapes equal `expected_output_shape` (a
       tuple, or a structure of tuples matching the output's nesting), every floating
       output has `expected_output_dtype` (default: the layer's compute dtype), and a
       symbolic call on `keras.KerasTensor`s of the same shapes gives the same shapes.
    3. The layer deserialized from JSON, given the original's weights, returns the same
       outputs (within `rtol`/`atol`).
    4. With `run_saving_check`: the layer inside a functional model is saved to
       `tmp_path` as `.keras`, loaded with `keras.saving.load_model` (no custom objects),
       and gives the same inference outputs; the loaded layer has the same config.

    Args:
        layer_cls: the layer class.
        init_kwargs: dict of constructor arguments.
        input_data: an array or a dict of arrays (one positional input); None checks the
            config and serialization only.
        expected_output_shape: the output shapes, batch included.
        expected_output_dtype: the dtype of floating outputs; default the compute dtype.
        call_kwargs: extra call arguments, e.g. `{"training": False}` for layers with
            randomness, so that two calls can be compared.
        run_saving_check: whether to run the `.keras` save and load (needs `tmp_path`).
        tmp_path: a folder for the saved file.
        rtol: relative tolerance of output comparisons.
        atol: absolute tolerance of output comparisons.

    Returns:
        The built layer, called once on `input_data`.

    Example:
        >>> run_layer_test(
        ...     keras_dgl.layers.SumFusion, {"num_classes": 3},
        ...     {"a": np.ones((2, 4), "float32"), "b": np.ones((2, 5), "float32")},
        ...     expected_output_shape=(2, 3),
        ... )
    """
    call_kwargs = call_kwargs or {}
    layer = layer_cls(**init_kwargs)
    revived = run_serialization_test(layer)
    if input_data is None:
        return layer

    outputs = layer(input_data, **call_kwargs)
    assert _shapes(outputs) == expected_output_shape, (_shapes(outputs), expected_output_shape)
    dtype = expected_output_dtype or layer.compute_dtype
    for tensor in tree.flatten(outputs):
        got = keras.backend.standardize_dtype(tensor.dtype)
        if "float" in got:
            assert got == dtype, (got, dtype)
    symbolic = layer(_symbolic(input_data), **call_kwargs)
    assert _shapes(symbolic) == expected_output_shape, (_shapes(symbolic), expected_output_shape)

    revived(input_data, **call_kwargs)
    revived.set_weights(layer.get_weights())
    assert_all_close(
        revived(input_data, **call_kwargs), outputs, rtol, atol, "deserialized layer's outputs"
    )

    if run_saving_check:
        assert tmp_path is not None, "the saving check needs `tmp_path`"
        inputs = tree.map_structure(
            lambda x: keras.Input(x.shape[1:], dtype=keras.backend.standardize_dtype(x.dtype)),
            input_data,
        )
        # The model's own `training` argument picks the mode, as in deployment.
        graph_kwargs = {k: v for k, v in call_kwargs.items() if k != "training"}
        model = keras.Model(inputs, layer(inputs, **graph_kwargs))
        path = os.path.join(tmp_path, f"{layer_cls.__name__}.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        restored = [sub for sub in loaded.layers if type(sub) is layer_cls]
        assert len(restored) == 1
        assert_same_config(restored[0].get_config(), layer.get_config())
        assert_all_close(
            loaded(input_data, training=False), model(input_data, training=False),
            rtol, atol, "reloaded model's outputs",
        )
    return layer


def _default_outputs(model, input_data):
    return model(input_data, training=False)


def run_model_saving_test(
    model,
    input_data,
    tmp_path,
    *,
    load=keras.saving.load_model,
    outputs=_default_outputs,
    rtol=1e-5,
    atol=1e-6,
):
    """Saves `model` as `.keras`, loads it, and checks it is the same model.

    The loaded model must have the same class and config, the same top-level layers (class
    and config each), exactly the same trainable and non-trainable weights, the same
    outputs on `input_data`, and, if `model` was compiled, the same compile config, and
    once its optimizer is built, the same optimizer class and variables (the step count,
    momenta, ...).

    Args:
        model: a built `keras.Model`.
        input_data: inputs for `outputs`.
        tmp_path: a folder for the saved file.
        load: the loader, `keras.saving.load_model` or `keras_dgl.load_model`.
        outputs: `outputs(model, input_data)` returns the structure to compare; default
            the inference call `model(input_data, training=False)`.
        rtol: relative tolerance of the output comparison.
        atol: absolute tolerance of the output comparison.

    Returns:
        The loaded model.

    Example:
        >>> loaded = run_model_saving_test(model, x, tmp_path, load=keras_dgl.load_model)
    """
    expected = outputs(model, input_data)
    path = os.path.join(tmp_path, f"{model.name}.keras")
    model.save(path)
    loaded = load(path)
    assert type(loaded) is type(model), (type(loaded), type(model))
    assert_same_config(loaded.get_config(), model.get_config())
    assert len(loaded.layers) == len(model.layers)
    for original, restored in zip(model.layers, loaded.layers):
        assert type(restored) is type(original), (type(restored), type(original))
        assert_same_config(restored.get_config(), original.get_config(), original.name)
    for kind in ("trainable_weights", "non_trainable_weights"):
        want, got = getattr(model, kind), getattr(loaded, kind)
        assert len(got) == len(want), (kind, len(got), len(want))
        for w, g in zip(want, got):
            np.testing.assert_array_equal(to_numpy(g), to_numpy(w), err_msg=f"{kind} {w.path}")
    if model.compiled:
        assert loaded.compiled
        assert_same_config(loaded.get_compile_config(), model.get_compile_config(), "compile")
        assert type(loaded.optimizer) is type(model.optimizer)
        if model.optimizer.built:
            want, got = model.optimizer.variables, loaded.optimizer.variables
            assert len(got) == len(want) > 0
            for w, g in zip(want, got):
                np.testing.assert_array_equal(
                    to_numpy(g), to_numpy(w), err_msg=f"optimizer {w.path}"
                )
    assert_all_close(outputs(loaded, input_data), expected, rtol, atol, "loaded model's outputs")
    return loaded
