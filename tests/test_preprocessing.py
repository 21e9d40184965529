"""Device-side preprocessing layers: numbers, bounds and saving, every backend."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_dgl import preprocessing


def _roundtrip(layer, x, tmp_path):
    """Saves a model holding `layer` and checks the reload's inference output."""
    inputs = keras.Input(x.shape[1:], dtype=str(x.dtype))
    model = keras.Model(inputs, layer(inputs))
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(loaded(x, training=False)),
        keras.ops.convert_to_numpy(model(x, training=False)),
        atol=1e-5,
    )
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def _np(x):
    return keras.ops.convert_to_numpy(x)


# --------------------------------------------------------------------------
# RandomResizedCrop


@pytest.mark.parametrize("ratio", [(3 / 4, 4 / 3), (0.5, 3.0), None])
def test_training_boxes_stay_within_scale_and_ratio(ratio):
    layer = preprocessing.RandomResizedCrop(32, 32, scale=(0.08, 1.0),
                                            ratio=ratio, seed=3)
    height, width = 60, 80
    top, left, box_h, box_w = (_np(t) for t in
                               layer.sample_boxes(2000, height, width))
    area = box_h * box_w / (height * width)
    aspect = box_w / box_h
    low, high = ratio or (width / height, width / height)
    assert area.min() >= 0.08 - 1e-5 and area.max() <= 1 + 1e-5
    assert aspect.min() >= low * (1 - 1e-5) and aspect.max() <= high * (1 + 1e-5)
    assert top.min() >= -1e-4 and left.min() >= -1e-4
    assert (top + box_h).max() <= height + 1e-3
    assert (left + box_w).max() <= width + 1e-3
    # The draws spread over the range (not one fixed box).
    assert area.std() > 0.1 and len(np.unique(np.round(left, 3))) > 1000


def test_training_output_is_the_drawn_box():
    """On an image whose channels are its pixel coordinates, each output
    row / column samples inside one box of the documented bounds."""
    height, width = 60, 80
    yy, xx = np.mgrid[0:height, 0:width].astype("float32") + 0.5
    image = np.stack([yy, xx], -1)[None].repeat(256, 0)
    layer = preprocessing.RandomResizedCrop(96, 96, seed=1,
                                            horizontal_flip=True)
    out = _np(layer(image, training=True))
    x_first, x_last = out[:, 0, 0, 1], out[:, 0, -1, 1]
    y_first, y_last = out[:, 0, 0, 0], out[:, -1, 0, 0]
    flipped = x_last < x_first
    assert 0.3 < flipped.mean() < 0.7
    # Output pixel centres span (n - 1) / n of the box; edges clamp by at
    # most half a pixel.
    box_w = np.abs(x_last - x_first) * 96 / 95
    box_h = (y_last - y_first) * 96 / 95
    area = box_w * box_h / (height * width)
    assert area.min() > 0.08 * 0.8 and area.max() <= 1.0 + 1e-4
    aspect = box_w / box_h
    assert aspect.min() > 0.75 * 0.9 and aspect.max() < 4 / 3 / 0.9
    assert out[..., 1].min() >= 0.5 - 1e-4 and out[..., 1].max() <= 79.5 + 1e-4


def test_clip_frames_share_one_box_and_flip():
    height, width = 40, 50
    xx = np.mgrid[0:height, 0:width][1].astype("float32")
    clip = np.stack([xx, xx + 100.0, xx + 200.0])[None, ..., None].repeat(16, 0)
    layer = preprocessing.RandomResizedCrop(24, 24, seed=0,
                                            horizontal_flip=True)
    out = _np(layer(clip, training=True))  # (16, 3, 24, 24, 1)
    assert out.shape == (16, 3, 24, 24, 1)
    np.testing.assert_allclose(out[:, 1] - out[:, 0], 100.0, atol=1e-3)
    np.testing.assert_allclose(out[:, 2] - out[:, 0], 200.0, atol=1e-3)


@pytest.mark.parametrize("size", [(24, 30), (72, 90)])
def test_inference_matches_tf_antialiased_resize(size):
    """Evaluation: the whole frame resized as the loaders resize it."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 2, 40, 52, 3), dtype=np.uint8)
    layer = preprocessing.RandomResizedCrop(*size)
    out = _np(layer(frames, training=False))
    expected = tf.image.resize(frames.reshape(6, 40, 52, 3), size,
                               antialias=True).numpy()
    np.testing.assert_allclose(out.reshape(expected.shape), expected,
                               atol=2e-3)


def test_random_resized_crop_saves_and_rejects_bad_arguments(tmp_path):
    frames = np.random.default_rng(1).integers(
        0, 256, (2, 1, 20, 24, 3), dtype=np.uint8)
    _roundtrip(preprocessing.RandomResizedCrop(16, 16, horizontal_flip=True),
               frames, tmp_path)
    with pytest.raises(ValueError, match="scale"):
        preprocessing.RandomResizedCrop(8, 8, scale=(0.5, 2.0))
    with pytest.raises(ValueError, match="ratio"):
        preprocessing.RandomResizedCrop(8, 8, ratio=(2.0, 1.0))
    with pytest.raises(ValueError, match="expects"):
        preprocessing.RandomResizedCrop(8, 8)(np.zeros((2, 3), "float32"))


# --------------------------------------------------------------------------
# RandomAudioCrop, LogSpectrogram, SpecAugment


def test_random_audio_crop_windows(tmp_path):
    waves = np.tile(np.arange(100, dtype="float32"), (64, 1))
    layer = preprocessing.RandomAudioCrop(40, seed=2)
    out = _np(layer(waves, training=True))
    starts = out[:, 0]
    np.testing.assert_array_equal(
        out - starts[:, None], np.broadcast_to(np.arange(40.0), out.shape))
    assert starts.min() >= 0 and starts.max() <= 60 and len(set(starts)) > 10
    centred = _np(layer(waves, training=False))
    np.testing.assert_array_equal(centred[:, 0], 30.0)
    fixed = preprocessing.RandomAudioCrop(40, random=False, scale=0.5)
    np.testing.assert_array_equal(_np(fixed(waves, training=True))[:, 0], 15.0)
    _roundtrip(layer, waves[:2], tmp_path)
    with pytest.raises(ValueError, match="shorter"):
        preprocessing.RandomAudioCrop(200)(waves)


def _reference_log_spectrogram(signal, n_fft, hop):
    padded = np.pad(signal, n_fft // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)
    starts = np.arange(0, len(padded) - n_fft + 1, hop)
    frames = np.stack([padded[s:s + n_fft] * window for s in starts])
    return np.log(np.abs(np.fft.rfft(frames, axis=1)) + 1e-7).T


def test_log_spectrogram_matches_the_recipe(tmp_path):
    rng = np.random.default_rng(0)
    t = np.arange(8000) / 8000
    signal = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(8000)
    layer = preprocessing.LogSpectrogram(n_fft=256, hop_length=100)
    out = _np(layer(signal[None].astype("float32")))
    expected = _reference_log_spectrogram(signal, 256, 100)
    assert out.shape == (1,) + expected.shape + (1,)
    loud = expected > -3  # float32 rounding is negligible there
    np.testing.assert_allclose(out[0, ..., 0][loud], expected[loud], atol=2e-3)
    resized = preprocessing.LogSpectrogram(n_fft=256, hop_length=100,
                                           output_size=(32, 40))
    got = _np(resized(signal[None].astype("float32")))
    want = tf.image.resize(out, (32, 40)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-2)
    _roundtrip(resized, signal[None, :4000].astype("float32"), tmp_path)


def test_spec_augment_masks_with_the_mean(tmp_path):
    rng = np.random.default_rng(0)
    spec = (rng.normal(size=(32, 40, 30, 1)) + 5).astype("float32")
    layer = preprocessing.SpecAugment(8, 6, num_masks=2, seed=4)
    out = _np(layer(spec, training=True))
    changed = out != spec
    assert changed.any()
    means = spec.mean(axis=(1, 2, 3))
    for i in range(len(spec)):
        np.testing.assert_allclose(out[i][changed[i]], means[i], rtol=1e-5)
        rows = changed[i, :, :, 0].all(axis=1).sum()
        cols = changed[i, :, :, 0].all(axis=0).sum()
        assert rows <= 2 * 7 and cols <= 2 * 5
    np.testing.assert_array_equal(_np(layer(spec, training=False)), spec)
    _roundtrip(layer, spec[:2], tmp_path)


def test_attach_wraps_encoders_and_names_bad_keys():
    encoders = {"audio": keras.layers.Dense(2), "visual": keras.layers.Dense(2)}
    attached = preprocessing.attach(
        encoders, {"audio": preprocessing.SpecAugment(2, 2)})
    assert isinstance(attached["audio"], keras.Sequential)
    assert attached["visual"] is encoders["visual"]
    with pytest.raises(ValueError, match="depth"):
        preprocessing.attach(encoders, {"depth": keras.layers.Identity()})
