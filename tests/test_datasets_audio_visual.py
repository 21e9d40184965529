"""Tests of the audio-visual pipelines (crema_d, kinetics_sounds, ave)."""

import csv
import logging
import os
import wave

import numpy as np
import pytest
import tensorflow as tf

from av_test_utils import jpeg_segment, make_tree, tone, write_jpeg, write_wav
from keras_dgl.datasets import audio_visual, ave, crema_d, kinetics_sounds
from keras_dgl.datasets.ave import AVE_CLASSES
from keras_dgl.datasets.crema_d import CREMA_D_CLASSES

# The loaders are tf.data pipelines whatever the Keras backend (see conftest).
pytestmark = pytest.mark.backend_independent

SMALL = dict(image_size=32, batch_size=4)
GENERIC = dict(name="custom", sample_rate=8000, clip_seconds=1.0, n_fft=128,
               hop_length=64, frames=2, validation_fraction=0.0, **SMALL)
MEAN_ = np.array([0.485, 0.456, 0.406])
STD_ = np.array([0.229, 0.224, 0.225])


def _append_row(root, split, clip, label):
    with open(os.path.join(root, f"{split}.csv"), "a", newline="") as h:
        csv.writer(h).writerow([clip, label])


@pytest.fixture(scope="module")
def crema_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("crema"))
    make_tree(root, CREMA_D_CLASSES, clips_per_class=4)
    return root


def _fresh_crema(tmp_path, **kwargs):
    root = str(tmp_path / "crema")
    rows = make_tree(root, CREMA_D_CLASSES, clips_per_class=2, test_every=2,
                     **kwargs)
    return root, rows


# --------------------------------------------------------------------------
# Shapes, dtypes, splits.


def test_crema_d_shapes_dtypes_and_splits(crema_root):
    splits = crema_d(crema_root, **SMALL)
    assert splits.class_names == list(CREMA_D_CLASSES)
    assert splits.num_classes == 6
    assert splits.input_shapes == {"audio": (257, 188, 1),
                                   "visual": (1, 32, 32, 3)}
    counts = splits.info["counts"]
    assert counts["test"] == 6
    assert counts["train"] + counts["validation"] == 18
    assert counts["validation"] >= 1
    train_clips = set(splits.info["validation_clips"])
    assert len(train_clips) == counts["validation"]
    for split in ("train", "validation", "test"):
        features, labels = next(iter(getattr(splits, split)))
        assert features["audio"].dtype == tf.float32
        assert features["visual"].dtype == tf.float32
        assert labels.dtype == tf.int32
        assert features["audio"].shape[1:] == (257, 188, 1)
        assert features["visual"].shape[1:] == (1, 32, 32, 3)
        assert np.all(np.isfinite(features["audio"].numpy()))
    x, y = splits.numpy("test")
    assert x["audio"].shape == (6, 257, 188, 1) and y.dtype == np.int32
    np.testing.assert_array_equal(np.sort(y), np.arange(6))
    # Test split: last partial batch kept (6 = 4 + 2).
    assert [int(l.shape[0]) for _, l in splits.test] == [4, 2]
    # ImageNet normalisation: uniform noise images give values around 0.
    assert -3.0 < float(x["visual"].min()) and float(x["visual"].max()) < 3.0


def test_validation_carve_is_seeded_and_stratified(crema_root):
    a = crema_d(crema_root, split_seed=0, validation_fraction=0.25, **SMALL)
    b = crema_d(crema_root, split_seed=0, validation_fraction=0.25, **SMALL)
    c = crema_d(crema_root, split_seed=5, validation_fraction=0.25, **SMALL)
    assert a.info["validation_clips"] == b.info["validation_clips"]
    assert a.info["validation_clips"] != c.info["validation_clips"]
    # 3 training clips per class, a quarter each -> 1 per class.
    assert a.info["class_counts"]["validation"] == [1] * 6
    no_validation = crema_d(crema_root, validation_fraction=0.0, **SMALL)
    assert no_validation.validation is None
    assert no_validation.info["counts"]["train"] == 18


def test_evaluation_spectrogram_matches_numpy_reference(tmp_path):
    """No resampling (file at 22,050 Hz): tile to 3 s, centred STFT, log."""
    root = str(tmp_path / "ref")
    make_tree(root, CREMA_D_CLASSES, clips_per_class=1, test_every=1,
              rate=22050, seconds=1.3, frames=1)
    splits = crema_d(root, validation_fraction=0.0, test_csv="test.csv",
                     train_csv="test.csv", **SMALL)
    x, y = splits.numpy("test")
    with wave.open(os.path.join(root, "audio", "clip000.wav")) as handle:
        pcm = np.frombuffer(handle.readframes(handle.getnframes()), "<i2")
    signal = np.tile(pcm / 32768.0, 3)[:66150]
    padded = np.pad(signal, 256, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(512) / 512)
    starts = np.arange(0, len(padded) - 512 + 1, 353)
    frames = np.stack([padded[s:s + 512] * window for s in starts])
    expected = np.log(np.abs(np.fft.rfft(frames, axis=1)) + 1e-7).T
    assert expected.shape == (257, 188)
    got = x["audio"][list(y).index(0), :, :, 0]
    loud = expected > -3  # compare where float32 rounding is negligible
    np.testing.assert_allclose(got[loud], expected[loud], atol=2e-3)


def test_resampling_moves_a_tone_to_the_right_bin(tmp_path):
    """16 kHz file -> 22,050 Hz: a 1 kHz tone stays at 1 kHz."""
    root = str(tmp_path / "rs")
    os.makedirs(root)
    write_wav(os.path.join(root, "audio", "a.wav"), tone(16000, 1.0, 1000),
               16000)
    write_jpeg(os.path.join(root, "visual", "a", "1.jpg"), 0)
    with open(os.path.join(root, "list.csv"), "w") as handle:
        handle.write("a,NEU\n")
    splits = crema_d(root, train_csv="list.csv", test_csv="list.csv",
                     validation_fraction=0.0, **SMALL)
    assert splits.validation is None
    assert splits.info["audio_rates"] == {16000: 2}
    spectrum = splits.numpy("test")[0]["audio"][0, :, :, 0].mean(axis=1)
    peak_hz = spectrum.argmax() * 22050 / 512
    assert abs(peak_hz - 1000) < 22050 / 512


def test_stereo_and_headerless_csv_and_extension(tmp_path):
    root = str(tmp_path / "st")
    os.makedirs(root)
    write_wav(os.path.join(root, "audio", "sub", "b.wav"),
               tone(22050, 0.5, 440, channels=2), 22050, channels=2)
    write_jpeg(os.path.join(root, "visual", "sub", "b", "frame_10.jpg"), 1,
                fill=220)
    write_jpeg(os.path.join(root, "visual", "sub", "b", "frame_9.jpg"), 2,
                fill=30)
    with open(os.path.join(root, "l.csv"), "w") as handle:
        handle.write("sub/b.flv,HAP\n")
    splits = audio_visual(root, train_csv="l.csv", test_csv="l.csv",
                          known_classes=CREMA_D_CLASSES, **GENERIC)
    x, y = splits.numpy("train")
    assert x["visual"].shape == (1, 2, 32, 32, 3) and y.tolist() == [1]
    # Natural frame order: frame_9 comes before frame_10.
    pixels = (x["visual"][0] * STD_ + MEAN_) * 255
    np.testing.assert_allclose(pixels.mean(axis=(1, 2, 3)), [30, 220], atol=3)


def test_kinetics_sounds_classes_from_csv_and_shapes(tmp_path, caplog):
    root = str(tmp_path / "ks")
    classes = ["playing drums", "barking", "tapping guitar"]
    make_tree(root, classes, clips_per_class=3, test_every=3, frames=5)
    with caplog.at_level(logging.WARNING, logger="keras_dgl.datasets"):
        splits = kinetics_sounds(root, cache=True, **SMALL)
    assert splits.class_names == sorted(classes)
    assert "31" in caplog.text  # fewer classes than the common list: warned
    assert splits.input_shapes == {"audio": (129, 626, 1),
                                   "visual": (3, 32, 32, 3)}
    for _ in range(2):  # the second epoch reads the in-memory cache
        batches = list(splits.train)
    features = batches[0][0]
    assert features["audio"].shape[1:] == (129, 626, 1)
    assert features["visual"].shape[1:] == (3, 32, 32, 3)
    assert sum(int(l.shape[0]) for _, l in batches) == splits.info["counts"]["train"]
    # A given class list is enforced.
    with pytest.raises(ValueError, match="barking"):
        kinetics_sounds(root, class_names=["playing drums", "tapping guitar"],
                        **SMALL)


def test_ave_shapes_and_quoted_labels(tmp_path):
    root = str(tmp_path / "ave")
    make_tree(root, list(AVE_CLASSES[:3]), clips_per_class=2, test_every=2,
              quote=True, seconds=0.3)
    splits = ave(root, validation_fraction=0.0, **SMALL)
    assert splits.num_classes == 28
    assert splits.class_names[1] == "Male speech, man speaking"
    assert splits.input_shapes == {"audio": (224, 224, 1),
                                   "visual": (3, 32, 32, 3)}
    x, y = splits.numpy("test")
    assert x["audio"].shape == (3, 224, 224, 1)
    assert sorted(y.tolist()) == [0, 1, 2]


def test_validation_csv_replaces_the_carve(tmp_path):
    root, rows = _fresh_crema(tmp_path)
    splits = crema_d(root, validation_csv="test.csv", **SMALL)
    assert splits.info["counts"]["validation"] == len(rows["test"])
    assert splits.info["counts"]["train"] == len(rows["train"])
    assert splits.info["validation_clips"] == [clip for clip, _ in rows["test"]]


def test_file_cache_and_spec_augment(tmp_path):
    root, _ = _fresh_crema(tmp_path)
    cache_dir = tmp_path / "cache"
    splits = crema_d(root, cache=str(cache_dir), spec_augment=True, **SMALL)
    for _ in range(2):  # the second epoch reads the cache files
        batches = list(splits.train)
    assert sum(int(l.shape[0]) for _, l in batches) == splits.info["counts"]["train"]
    assert batches[0][0]["audio"].shape[1:] == (257, 188, 1)
    list(splits.test)
    names = os.listdir(cache_dir)
    assert any(name.startswith("crema_d-train") for name in names)
    assert any(name.startswith("crema_d-test") for name in names)


def test_spec_augment_masks_bands():
    from keras_dgl.datasets._av_config import _Config
    from keras_dgl.datasets._pipelines import _Transforms

    config = _Config("t", 8000, 1.0, 1.0, False, 64, 32, None, 1, 8, False,
                     {"implementation": "tf", "num_masks": 1,
                      "freq_mask_param": 10, "time_mask_param": 10})
    transforms = _Transforms(config)
    spec = tf.random.normal(transforms.audio_shape, seed=1) + 5.0
    fill = float(tf.reduce_mean(spec))
    masked_any = False
    for _ in range(10):
        out = transforms.maybe_spec_augment(spec).numpy()[..., 0]
        changed = out != spec.numpy()[..., 0]
        np.testing.assert_allclose(out[changed], fill, rtol=1e-5)
        masked_any |= bool(changed.any())
    assert masked_any


def test_spec_augment_tfio_when_it_imports():
    from keras_dgl.datasets._av_config import _Config
    from keras_dgl.datasets._pipelines import _Transforms, _tfio_audio

    if _tfio_audio() is None:
        pytest.skip("tensorflow_io does not import here")
    config = _Config("t", 8000, 1.0, 1.0, False, 64, 32, None, 1, 8, False,
                     {"implementation": "tfio", "num_masks": 1,
                      "freq_mask_param": 10, "time_mask_param": 10})
    transforms = _Transforms(config)
    spec = tf.random.normal(transforms.audio_shape, seed=1)
    out = transforms.maybe_spec_augment(spec)
    assert out.shape == transforms.audio_shape


# --------------------------------------------------------------------------
# Bad data: the error names the file or label; on_error="skip" counts it.


def _truncate(path):
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])


def test_missing_wav_is_named(tmp_path):
    root, rows = _fresh_crema(tmp_path)
    clip = rows["train"][0][0]
    os.remove(os.path.join(root, "audio", clip + ".wav"))
    with pytest.raises(FileNotFoundError, match=f"{clip}.wav"):
        crema_d(root, **SMALL)


def test_truncated_wav_is_named(tmp_path):
    root, rows = _fresh_crema(tmp_path)
    clip = rows["train"][1][0]
    _truncate(os.path.join(root, "audio", clip + ".wav"))
    with pytest.raises(ValueError, match=rf"Truncated WAV.*{clip}\.wav"):
        crema_d(root, **SMALL)


def test_non_pcm16_wav_is_named(tmp_path):
    root, rows = _fresh_crema(tmp_path)
    clip = rows["test"][0][0]
    write_wav(os.path.join(root, "audio", clip + ".wav"),
               np.zeros(800, np.uint8), 8000, sample_width=1)
    with pytest.raises(ValueError, match=rf"16-bit PCM.*{clip}\.wav"):
        crema_d(root, **SMALL)


def test_garbage_and_truncated_jpeg_are_named(tmp_path):
    root, rows = _fresh_crema(tmp_path)
    clip = rows["train"][2][0]
    bad = os.path.join(root, "visual", clip, "2.jpg")
    open(bad, "wb").write(b"this is not a jpeg" * 20)
    with pytest.raises(ValueError, match=rf"Corrupt JPEG.*{clip}.2\.jpg"):
        crema_d(root, **SMALL)
    write_jpeg(bad, 3)
    _truncate(bad)
    with pytest.raises(ValueError, match=rf"Truncated JPEG.*{clip}.2\.jpg"):
        crema_d(root, **SMALL)


@pytest.mark.parametrize(
    "damage, reason",
    [
        ("markers", "no scan"),
        ("frame_height", "bad frame header"),
        ("huffman", "bad Huffman table"),
        ("scan_component", "bad scan header"),
    ],
)
def test_damage_inside_a_jpeg_header_is_named(tmp_path, damage, reason):
    """Damage between SOI and the scan makes TensorFlow's decoder fail
    (an anonymous traceback inside fit); the default check names it."""
    root, rows = _fresh_crema(tmp_path)
    clip = rows["test"][1][0]
    path = os.path.join(root, "visual", clip, "1.jpg")
    data = bytearray(open(path, "rb").read())
    if damage == "markers":  # keep SOI and EOI, wreck everything between
        data[2:len(data) - 2] = b"\xff\x01" * ((len(data) - 4) // 2) + (
            b"\x00" if len(data) % 2 else b"")
    elif damage == "frame_height":
        sof = jpeg_segment(data, 0xC0)
        data[sof + 5:sof + 7] = b"\x00\x00"
    elif damage == "huffman":
        dht = jpeg_segment(data, 0xC4)
        data[dht + 5:dht + 21] = b"\xff" * 16
    else:
        sos = jpeg_segment(data, 0xDA)
        data[sos + 5] = 0x77
    open(path, "wb").write(bytes(data))
    with pytest.raises(tf.errors.InvalidArgumentError):
        tf.io.decode_jpeg(bytes(data))
    with pytest.raises(ValueError, match=rf"{reason}.*{clip}.1\.jpg.*line"):
        crema_d(root, **SMALL)


def test_in_graph_guard_names_a_jpeg_damaged_after_the_check(tmp_path):
    root, rows = _fresh_crema(tmp_path)
    splits = crema_d(root, validation_fraction=0.0, **SMALL)
    clip = rows["test"][0][0]
    # The evaluation transform takes the middle one of two frames.
    path = os.path.join(root, "visual", clip, "2.jpg")
    data = bytearray(open(path, "rb").read())
    sof = jpeg_segment(data, 0xC0)
    data[sof + 5:sof + 7] = b"\x00\x00"
    open(path, "wb").write(bytes(data))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=rf"corrupt or truncated JPEG.*{clip}.2\.jpg"):
        list(splits.test)


def test_decode_validation_catches_damage_the_header_check_cannot_see(
        tmp_path):
    """A second frame header inside the compressed data: the segments up to
    the scan are sound, the decoder still fails."""
    root, rows = _fresh_crema(tmp_path)
    clip = rows["test"][1][0]
    path = os.path.join(root, "visual", clip, "1.jpg")
    data = bytearray(open(path, "rb").read())
    sos = jpeg_segment(data, 0xDA)
    scan = sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big")
    data[scan + 20:scan + 22] = b"\xff\xc0"
    open(path, "wb").write(bytes(data))
    crema_d(root, **SMALL)  # the header check passes
    with pytest.raises(ValueError, match=rf"Undecodable JPEG.*{clip}.1\.jpg"):
        crema_d(root, validate="decode", **SMALL)


def test_missing_frames_are_named(tmp_path):
    root, rows = _fresh_crema(tmp_path)
    clip = rows["train"][0][0]
    folder = os.path.join(root, "visual", clip)
    for name in os.listdir(folder):
        os.remove(os.path.join(folder, name))
    with pytest.raises(FileNotFoundError, match=f"No JPEG frame.*{clip}"):
        crema_d(root, **SMALL)
    os.rmdir(folder)
    with pytest.raises(FileNotFoundError, match=f"Frame folder not found.*{clip}"):
        crema_d(root, **SMALL)


def test_unknown_label_names_label_and_file(tmp_path):
    root, rows = _fresh_crema(tmp_path)
    _append_row(root, "train", rows["train"][0][0], "BORED")
    with pytest.raises(ValueError, match=r"'BORED'.*train\.csv, line"):
        crema_d(root, **SMALL)


def test_empty_split_and_missing_list_are_named(tmp_path):
    root, _ = _fresh_crema(tmp_path)
    open(os.path.join(root, "test.csv"), "w").write("clip,label\n")
    with pytest.raises(ValueError, match=r"test split is empty.*test\.csv"):
        crema_d(root, **SMALL)
    os.remove(os.path.join(root, "test.csv"))
    with pytest.raises(FileNotFoundError, match=r"test\.csv"):
        crema_d(root, **SMALL)
    with pytest.raises(FileNotFoundError, match="no_such_root"):
        crema_d(str(tmp_path / "no_such_root"))


def test_malformed_row_is_named(tmp_path):
    root, _ = _fresh_crema(tmp_path)
    with open(os.path.join(root, "train.csv"), "a") as handle:
        handle.write("lonely_clip_without_label\n")
    with pytest.raises(ValueError, match=r"Malformed row.*train\.csv, line"):
        crema_d(root, **SMALL)


def test_skip_mode_counts_and_warns(tmp_path, caplog):
    root, rows = _fresh_crema(tmp_path)
    missing = rows["train"][0][0]
    truncated = rows["train"][1][0]
    os.remove(os.path.join(root, "audio", missing + ".wav"))
    _truncate(os.path.join(root, "audio", truncated + ".wav"))
    _append_row(root, "train", rows["train"][2][0], "BORED")
    with caplog.at_level(logging.WARNING, logger="keras_dgl.datasets"):
        splits = crema_d(root, on_error="skip", validation_fraction=0.0,
                         **SMALL)
    assert splits.info["num_skipped"] == 3
    reasons = " ".join(s["reason"] for s in splits.info["skipped"])
    assert missing in reasons and truncated in reasons and "BORED" in reasons
    assert "skipped 3 bad clip(s)" in caplog.text
    assert splits.info["counts"]["train"] == len(rows["train"]) - 2
    labels = np.concatenate([l.numpy() for _, l in splits.train])
    assert len(labels) == splits.info["counts"]["train"]


def test_skip_mode_with_every_clip_bad_is_an_empty_split(tmp_path):
    root, rows = _fresh_crema(tmp_path)
    for clip, _ in rows["test"]:
        os.remove(os.path.join(root, "audio", clip + ".wav"))
    with pytest.raises(ValueError, match=r"test split is empty.*skipped"):
        crema_d(root, on_error="skip", **SMALL)


def test_file_broken_after_the_check_fails_inside_tf_data_with_its_name(
        tmp_path):
    root, rows = _fresh_crema(tmp_path)
    splits = crema_d(root, validation_fraction=0.0, **SMALL)
    clip = rows["test"][0][0]
    _truncate(os.path.join(root, "audio", clip + ".wav"))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=rf"truncated.*{clip}\.wav"):
        list(splits.test)
    # validate="none" relies on the same in-graph guard; skip mode drops it.
    splits = crema_d(root, validation_fraction=0.0, validate="none",
                     on_error="skip", **SMALL)
    labels = np.concatenate([l.numpy() for _, l in splits.test])
    assert len(labels) == len(rows["test"]) - 1


@pytest.mark.parametrize(
    "kwargs, error",
    [
        (dict(on_error="ignore"), "on_error"),
        (dict(validate="full"), "validate"),
        (dict(validation_fraction=1.0), "validation_fraction"),
        (dict(spec_augment={"bogus": 1}), "spec_augment"),
        (dict(clip_seconds=0.01), "n_fft"),
    ],
)
def test_bad_arguments(crema_root, kwargs, error):
    with pytest.raises(ValueError, match=error):
        crema_d(crema_root, **kwargs)


def test_audio_visual_generic_entry_point(crema_root):
    splits = audio_visual(crema_root, **GENERIC)
    assert splits.class_names == sorted(CREMA_D_CLASSES)  # from the CSVs
    assert splits.input_shapes == {"audio": (65, 126, 1),
                                   "visual": (2, 32, 32, 3)}
