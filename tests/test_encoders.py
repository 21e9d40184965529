"""Tests for `keras_dgl.encoders`, run on whichever backend KERAS_BACKEND names.

Speed note: on JAX every eager op and every weight initializer is compiled
once per shape, so the tests share one encoder configuration and one batch
size (4) per encoder wherever they can; videos of 2 frames with batch 2 fold
into that same batch of 4 images.
"""

import re

import keras
import numpy as np
import pytest
from keras import ops
from keras_dgl_test_case import run_layer_test, run_model_saving_test

from keras_dgl.encoders import Conv1DEncoder, MLPEncoder, ResNet18

BATCH = 4
TINY_RESNET = {"base_filters": 4}
# name: (encoder factory, example input shape with batch, output_dim).
ENCODER_CASES = {
    "resnet18": (lambda: ResNet18(**TINY_RESNET), (BATCH, 32, 32, 3), 32),
    "conv1d": (
        lambda: Conv1DEncoder(filters=(8, 16), kernel_size=3, dropout=0.1),
        (BATCH, 7, 6),
        16,
    ),
    "mlp": (
        lambda: MLPEncoder(hidden_units=(16, 8), dropout=0.1, use_batch_norm=True),
        (BATCH, 10),
        8,
    ),
}


@pytest.fixture
def mixed_bfloat16():
    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


def _random(shape, seed=0):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def _numpy(x):
    # NumPy has no bfloat16, so go through float32.
    return ops.convert_to_numpy(ops.cast(x, "float32"))


# --- Output shapes ---------------------------------------------------------


@pytest.mark.parametrize("name", list(ENCODER_CASES))
def test_output_shape(name):
    make_encoder, shape, output_dim = ENCODER_CASES[name]
    encoder = make_encoder()
    assert tuple(encoder(_random(shape)).shape) == (BATCH, output_dim)
    assert encoder.compute_output_shape(shape) == (BATCH, output_dim)
    symbolic = encoder(keras.Input(shape[1:]))
    assert symbolic.shape == (None, output_dim)


@pytest.mark.parametrize(
    "shape, input_channels",
    [
        ((1, 8, 8, 3), 3),  # smaller than the total stride of 32
        ((1, 257, 188, 1), 1),  # an audio spectrogram (odd height)
    ],
)
def test_resnet18_other_image_sizes(shape, input_channels):
    encoder = ResNet18(input_channels=input_channels, **TINY_RESNET)
    assert tuple(encoder(_random(shape)).shape) == (1, 32)


def test_resnet18_default_width_is_512():
    assert ResNet18().compute_output_shape((None, 224, 224, 3)) == (None, 512)
    assert ResNet18(base_filters=16).compute_output_shape((5, 3, 64, 64, 3)) == (5, 128)
    assert ResNet18().output_dim == 512


def _resnet18_trainable_params(base_filters, input_channels=3):
    def conv(size, filters_in, filters_out):
        return size * size * filters_in * filters_out

    def bn(filters):  # gamma and beta; the moving statistics do not train
        return 2 * filters

    total = conv(7, input_channels, base_filters) + bn(base_filters)
    filters_in = base_filters
    for filters in (base_filters, 2 * base_filters, 4 * base_filters, 8 * base_filters):
        for _ in range(2):
            total += conv(3, filters_in, filters) + conv(3, filters, filters) + 2 * bn(filters)
            if filters_in != filters:
                total += conv(1, filters_in, filters) + bn(filters)
            filters_in = filters
    return total


def test_resnet18_parameter_count():
    # torchvision's resnet18 has 11,689,512 parameters, 513,000 of them in
    # its 1000-class head, which this encoder leaves out.
    assert _resnet18_trainable_params(64) == 11_689_512 - 513_000
    encoder = ResNet18(**TINY_RESNET)
    encoder.build((None, 32, 32, 3))
    trainable = sum(int(np.prod(w.shape)) for w in encoder.trainable_weights)
    assert trainable == _resnet18_trainable_params(TINY_RESNET["base_filters"])


def test_resnet18_symbolic_unknown_sizes():
    encoder = ResNet18(**TINY_RESNET)
    assert encoder(keras.Input((None, None, 3))).shape == (None, 32)
    assert encoder(keras.Input((None, None, None, 3))).shape == (None, 32)


def test_resnet18_video_is_mean_of_frame_features():
    encoder = ResNet18(**TINY_RESNET)
    videos = _random((2, 2, 32, 32, 3))
    # The same frames as one image batch, frame-major: (frames * batch, ...).
    frames = np.reshape(np.swapaxes(videos, 0, 1), (BATCH, 32, 32, 3))
    frame_features = _numpy(encoder(frames, training=False)).reshape(2, 2, 32)
    expected = frame_features.mean(axis=0)
    # Frames are encoded separately, not mixed before pooling.
    assert not np.allclose(frame_features[0], frame_features[1])

    eager = _numpy(encoder(videos, training=False))
    np.testing.assert_allclose(eager, expected, rtol=1e-4, atol=1e-5)
    # Unknown frames, height and width: the fold into the batch must also
    # work on dynamic shapes in compiled (graph / jit) execution.
    inputs = keras.Input((None, None, None, 3))
    model = keras.Model(inputs, encoder(inputs))
    compiled = model.predict(videos, verbose=0)
    np.testing.assert_allclose(compiled, expected, rtol=1e-4, atol=1e-5)


def test_resnet18_channels_first_matches_channels_last():
    last = ResNet18(data_format="channels_last", **TINY_RESNET)
    first = ResNet18(data_format="channels_first", **TINY_RESNET)
    images = _random((BATCH, 32, 32, 3))
    videos = _random((2, 2, 32, 32, 3))
    last.build(images.shape)
    first.build((None, 3, 32, 32))
    # Kernels and BN weights do not depend on the layout.
    first.set_weights(last.get_weights())
    np.testing.assert_allclose(
        _numpy(first(np.transpose(images, (0, 3, 1, 2)), training=False)),
        _numpy(last(images, training=False)),
        rtol=1e-4,
        atol=1e-5,
    )
    np.testing.assert_allclose(
        _numpy(first(np.transpose(videos, (0, 1, 4, 2, 3)), training=False)),
        _numpy(last(videos, training=False)),
        rtol=1e-4,
        atol=1e-5,
    )
    assert first.compute_output_shape((2, 3, 32, 32)) == (2, 32)
    assert first(keras.Input((3, None, None))).shape == (None, 32)


def test_resnet18_data_format_defaults_to_global_setting():
    original = keras.config.image_data_format()
    try:
        keras.config.set_image_data_format("channels_first")
        encoder = ResNet18()
        assert encoder.data_format == "channels_first"
        # The resolved value is saved, so loading does not depend on the
        # global setting.
        assert encoder.get_config()["data_format"] == "channels_first"
    finally:
        keras.config.set_image_data_format(original)
    assert ResNet18().data_format == original
    with pytest.raises(ValueError, match="data_format"):
        ResNet18(data_format="NHWC")


def test_conv1d_encoder_single_time_step():
    # Pooling between blocks uses "same" padding, so one step survives.
    make_encoder, _, output_dim = ENCODER_CASES["conv1d"]
    assert tuple(make_encoder()(_random((BATCH, 1, 6))).shape) == (BATCH, output_dim)


def test_default_output_sizes():
    # Shape inference only: building the defaults would cost JAX compiles.
    assert Conv1DEncoder().compute_output_shape((2, 50, 3)) == (2, 128)
    assert Conv1DEncoder().compute_output_shape((None, None, 3)) == (None, 128)
    assert MLPEncoder().compute_output_shape((2, 10)) == (2, 64)


@pytest.mark.parametrize("use_batch_norm", [False, True])
def test_mlp_encoder_batch_norm_replaces_dense_bias(use_batch_norm):
    encoder = MLPEncoder(hidden_units=(16, 8), use_batch_norm=use_batch_norm)
    encoder.build((None, 10))
    paths = [w.path for w in encoder.weights]
    assert sum(p.endswith("bias") for p in paths) == (0 if use_batch_norm else 2)
    assert any("bn" in p for p in paths) == use_batch_norm


# --- Bad shapes ------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, shape",
    [
        ({}, (2, 32, 32)),  # rank 3
        ({}, (2, 1, 2, 8, 8, 3)),  # rank 6
        ({}, (2, 32, 32, 1)),  # wrong channels
        ({"input_channels": 1}, (2, 3, 32, 32, 3)),  # wrong channels, video
        ({"data_format": "channels_first"}, (2, 32, 32, 3)),  # channels last
    ],
)
def test_resnet18_rejects_bad_shapes(kwargs, shape):
    encoder = ResNet18(**TINY_RESNET, **kwargs)
    with pytest.raises(ValueError, match=re.escape(str(shape))):
        encoder(np.zeros(shape, "float32"))


def test_resnet18_rejects_bad_shape_after_build():
    encoder = ResNet18(**TINY_RESNET)
    encoder.build((None, 32, 32, 3))
    with pytest.raises(ValueError, match=re.escape("(None, 32, 32, 5)")):
        encoder(keras.Input((32, 32, 5)))
    with pytest.raises(ValueError, match=re.escape("(2, 32, 32, 5)")):
        encoder(np.zeros((2, 32, 32, 5), "float32"))


@pytest.mark.parametrize("shape", [(None, 6), (None, 2, 10, 6), (None, 10, None)])
def test_conv1d_encoder_rejects_bad_shapes(shape):
    encoder = Conv1DEncoder(filters=(8,))
    with pytest.raises(ValueError, match=re.escape(str(shape))):
        encoder(keras.Input(shape[1:]))


@pytest.mark.parametrize("shape", [(4, 2, 5), (4,), (4, 3, 32, 32)])
def test_mlp_encoder_rejects_bad_shapes_without_flattening(shape):
    make_encoder, good_shape, _ = ENCODER_CASES["mlp"]
    encoder = make_encoder()
    with pytest.raises(ValueError, match=re.escape(str(shape))):
        encoder(np.zeros(shape, "float32"))
    # Also once built for the right rank.
    encoder.build(good_shape)
    with pytest.raises(ValueError, match=re.escape(str(shape))):
        encoder(np.zeros(shape, "float32"))
    with pytest.raises(ValueError, match=re.escape(str((None,) + shape[1:]))):
        encoder(keras.Input(shape[1:]))


# --- Serialization ---------------------------------------------------------


@pytest.mark.parametrize(
    "encoder_cls, init_kwargs, input_shape, output_dim",
    [
        (
            ResNet18,
            {"input_channels": 1, "base_filters": 8, "data_format": "channels_first",
             "name": "audio"},
            None,  # config only: new shapes cost compiles; the saving test runs a ResNet18
            64,
        ),
        (Conv1DEncoder, {"filters": (4, 5), "kernel_size": 7, "dropout": 0.3}, (BATCH, 7, 6), 5),
        (
            MLPEncoder,
            {"hidden_units": (7,), "activation": "gelu", "dropout": 0.5, "use_batch_norm": True},
            (BATCH, 10),
            7,
        ),
        (MLPEncoder, {"activation": keras.activations.silu}, (BATCH, 10), 64),
    ],
    ids=["resnet18", "conv1d", "mlp", "mlp_callable_activation"],
)
def test_layer_harness_config_and_serialization(encoder_cls, init_kwargs, input_shape, output_dim):
    # Registered under the package name, so generic deserialization works; the
    # deserialized copy, given the weights, encodes in inference mode alike.
    run_layer_test(
        encoder_cls,
        init_kwargs,
        None if input_shape is None else _random(input_shape),
        expected_output_shape=None if input_shape is None else (input_shape[0], output_dim),
        call_kwargs={"training": False},
        rtol=1e-5,
        atol=1e-6,
    )


def _multimodal_model(names=tuple(ENCODER_CASES)):
    # Encoders under one Dense head: one compiled train step instead of one
    # per encoder keeps the file fast on the XLA backends (JAX, TensorFlow).
    inputs = {name: keras.Input(ENCODER_CASES[name][1][1:], name=name) for name in names}
    features = [ENCODER_CASES[name][0]()(inputs[name]) for name in names]
    # Logits in float32, for a numerically safe loss under mixed precision.
    logits = keras.layers.Dense(3, dtype="float32")(keras.layers.Concatenate()(features))
    model = keras.Model(inputs, logits)
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def _multimodal_data(batch, names=tuple(ENCODER_CASES)):
    x = {
        name: _random((batch,) + ENCODER_CASES[name][1][1:], seed=i)
        for i, name in enumerate(names)
    }
    return x, np.arange(batch) % 3


def _encoders(model):
    encoder_types = (ResNet18, Conv1DEncoder, MLPEncoder)
    return [layer for layer in model.layers if isinstance(layer, encoder_types)]


def test_fit_then_keras_save_and_load(tmp_path):
    model = _multimodal_model()
    assert model.output_shape == (None, 3)
    x, y = _multimodal_data(2 * BATCH)
    history = model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))

    # The encoders are registered, so no custom_objects are needed. Inference
    # mode: dropout off, BN uses the moving statistics fit set.
    x = {name: value[:BATCH] for name, value in x.items()}
    loaded = run_model_saving_test(model, x, tmp_path, rtol=1e-5, atol=1e-5)
    assert [type(e) for e in _encoders(loaded)] == [type(e) for e in _encoders(model)]


# --- Mixed precision -------------------------------------------------------


def test_mixed_bfloat16_fit(mixed_bfloat16):
    # ResNet18 is left out of this fit: compiling its train step a second
    # time (in bfloat16) would double the file's run time on JAX and
    # TensorFlow. Its bfloat16 training-mode forward pass is checked in the
    # next test.
    names = ("conv1d", "mlp")
    model = _multimodal_model(names)
    for encoder in _encoders(model):
        assert encoder.compute_dtype == "bfloat16"
        assert encoder.output.dtype == "bfloat16"
        # Variables stay float32 under a mixed policy.
        assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in encoder.weights)
    history = model.fit(*_multimodal_data(BATCH, names), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_dtype_argument_reaches_sublayers():
    # No global policy here: the layer's own `dtype` must reach every sublayer.
    encoder = ResNet18(dtype="mixed_bfloat16", **TINY_RESNET)
    outputs = encoder(_random((BATCH, 32, 32, 3)), training=True)
    assert keras.backend.standardize_dtype(outputs.dtype) == "bfloat16"
    assert np.all(np.isfinite(_numpy(outputs)))
    assert all(keras.backend.standardize_dtype(w.dtype) == "float32" for w in encoder.weights)
    conv1d = Conv1DEncoder(filters=(8, 16), kernel_size=3, dtype="mixed_bfloat16")
    mlp = MLPEncoder(hidden_units=(16, 8), use_batch_norm=True, dtype="mixed_bfloat16")
    sublayers = [
        encoder.stem_conv,
        encoder.stem_bn,
        encoder.blocks[-1].conv2,
        encoder.blocks[-2].shortcut_bn,  # first block of stage 4
        encoder.global_pool,
        conv1d.blocks[-1][1],  # pool, conv, ... in the second block
        conv1d.global_pool,
        mlp.blocks[0][0],
        mlp.blocks[-1][1],
    ]
    assert all(layer.dtype_policy.name == "mixed_bfloat16" for layer in sublayers)


def _native_and_layer_runs(encoder, inputs):
    """Forward, gradients, moving statistics and inference, per torch path."""
    import torch

    initial = [w.numpy().copy() for w in encoder.weights]
    runs = {}
    for native in (True, False):
        for variable, value in zip(encoder.weights, initial):
            variable.assign(value)
        encoder.torch_native_forward = native
        x = torch.as_tensor(inputs)
        features = encoder(x, training=True)
        loss = (features.float() * torch.linspace(-1, 1, features.shape[-1])).sum()
        grads = torch.autograd.grad(loss, [w.value for w in encoder.trainable_weights])
        runs[native] = {
            "features": features.detach().float().numpy(),
            "grads": [g.numpy() for g in grads],
            "moving": [w.numpy() for w in encoder.non_trainable_weights],
            "inference": encoder(x, training=False).detach().float().numpy(),
        }
    encoder.torch_native_forward = True
    return runs[True], runs[False]


@pytest.mark.skipif(
    keras.backend.backend() != "torch",
    reason="the native PyTorch forward exists only on the torch backend; "
    "JAX and TensorFlow compile the Keras-layer graph, which every other "
    "ResNet18 test covers",
)
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_resnet18_torch_native_forward_matches_keras_layers(data_format):
    # Same variables, same maths: features, every weight's gradient, the BN
    # moving statistics after a training call, and the inference output.
    encoder = ResNet18(input_channels=2, data_format=data_format, **TINY_RESNET)
    shape = (BATCH, 33, 24, 2) if data_format == "channels_last" else (BATCH, 2, 33, 24)
    encoder.build(shape)
    inputs = np.random.default_rng(0).standard_normal(shape).astype("float32")
    native, layers = _native_and_layer_runs(encoder, inputs)
    for key in ("features", "inference"):
        np.testing.assert_allclose(
            native[key], layers[key], rtol=1e-4, atol=1e-4 * np.abs(layers[key]).max()
        )
    for key in ("grads", "moving"):
        assert len(native[key]) == len(layers[key]) > 0
        for got, want in zip(native[key], layers[key]):
            np.testing.assert_allclose(
                got, want, rtol=1e-4, atol=1e-4 * (np.abs(want).max() + 1e-6)
            )
    # The training call moved the statistics away from their initial values.
    assert not np.allclose(native["moving"][0], 0.0)


def _relative_error(got, want):
    got = np.concatenate([np.ravel(g) for g in got])
    want = np.concatenate([np.ravel(w) for w in want])
    return np.linalg.norm(got - want) / np.linalg.norm(want)


@pytest.mark.skipif(
    keras.backend.backend() != "torch",
    reason="the native PyTorch forward exists only on the torch backend",
)
def test_resnet18_torch_native_forward_mixed_bfloat16_no_worse_than_layers():
    # In bfloat16, batch norm's backward pass amplifies rounding so much that
    # two correct implementations disagree elementwise (both are ~30% off
    # float32 in single gradient entries of this tiny net). So measure each
    # path's error against the float32 computation on the same weights: the
    # native path must be as accurate as Keras' own layers.
    shape = (BATCH, 2, 33, 24)
    inputs = np.random.default_rng(0).standard_normal(shape).astype("float32")
    reference = ResNet18(input_channels=2, data_format="channels_first", **TINY_RESNET)
    reference.build(shape)
    mixed = ResNet18(
        input_channels=2,
        data_format="channels_first",
        dtype="mixed_bfloat16",
        **TINY_RESNET,
    )
    mixed.build(shape)
    mixed.set_weights(reference.get_weights())
    exact, _ = _native_and_layer_runs(reference, inputs)
    native, layers = _native_and_layer_runs(mixed, inputs)
    for key in ("features", "inference", "grads", "moving"):
        native_error = _relative_error(_as_list(native[key]), _as_list(exact[key]))
        layers_error = _relative_error(_as_list(layers[key]), _as_list(exact[key]))
        assert native_error <= 1.25 * layers_error + 1e-3, (key, native_error, layers_error)
        assert native_error < 0.5, (key, native_error)


def _as_list(value):
    return value if isinstance(value, list) else [value]


@pytest.mark.skipif(
    keras.backend.backend() != "torch",
    reason="the native PyTorch forward exists only on the torch backend",
)
def test_resnet18_torch_native_forward_respects_frozen_batch_norm():
    encoder = ResNet18(**TINY_RESNET)
    encoder.build((BATCH, 32, 32, 3))
    encoder.stem_bn.trainable = False
    before = encoder.stem_bn.moving_mean.numpy().copy()
    frozen_out = _numpy(encoder(_random((BATCH, 32, 32, 3)), training=True))
    np.testing.assert_array_equal(encoder.stem_bn.moving_mean.numpy(), before)
    encoder.torch_native_forward = False
    layer_out = _numpy(encoder(_random((BATCH, 32, 32, 3)), training=True))
    np.testing.assert_allclose(frozen_out, layer_out, rtol=1e-3, atol=1e-4)
