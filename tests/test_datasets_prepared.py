"""keras_dgl.datasets.prepare and reading prepared folders.

Tolerances of "same tensors from raw and prepared data" (evaluation split):
- frames stored at their source size: the stored pixels are the decoded
  ones, so the normalised frames agree to 1e-5 (host side) and to 1e-3
  (device side, a matrix resampler instead of tf.image.resize);
- audio stored as a float16 log-spectrogram: float16 rounding, <= 1e-2;
- audio stored as the int16 waveform (random-crop presets): int16 rounding
  of the resampled wave; <= 2e-2 where the log-magnitude exceeds -3
  (audible bins; quieter bins differ more in relative terms).
"""

import csv
import importlib
import json
import logging
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_dgl
from av_test_utils import jpeg_segment, make_tree, tone, write_jpeg, write_wav
from keras_dgl import registry
from keras_dgl.datasets import (
    ave,
    crema_d,
    kinetics_sounds,
    prepare,
    verify_prepared,
    vggsound,
)
from keras_dgl.datasets.presets import AVE_CLASSES, CREMA_D_CLASSES

# prepare's shard writer (the interrupt test wraps its `_finish_shard`).
shards_module = importlib.import_module("keras_dgl.datasets._shards")
SMALL = dict(image_size=32, batch_size=4)
QUIET = dict(verbose=0)
# Stored at the fake frames' size (40 x 52), so raw and prepared frames are
# the same pixels.
SOURCE_SIZE = dict(frame_size=(40, 52))


@pytest.fixture(scope="module")
def crema(tmp_path_factory):
    base = tmp_path_factory.mktemp("prepared")
    raw, out = str(base / "raw"), str(base / "out")
    make_tree(raw, CREMA_D_CLASSES, clips_per_class=3, test_every=3, frames=3)
    summary = prepare("crema-d", raw, out, shard_size_mb=0.3, **SOURCE_SIZE,
                      **QUIET)
    return raw, out, summary


def _copy(out, tmp_path):
    target = str(tmp_path / "copy")
    shutil.copytree(out, target)
    return target


def _manifest(out):
    with open(os.path.join(out, "manifest.json")) as handle:
        return json.load(handle)


def _evaluate(preprocessing, features):
    return {
        name: keras.ops.convert_to_numpy(
            preprocessing[name](features[name], training=False))
        for name in features
    }


# --------------------------------------------------------------------------
# What prepare writes.


@pytest.mark.backend_independent  # prepare/tf.data only (see conftest)
def test_prepare_writes_shards_and_a_complete_manifest(crema):
    _, out, summary = crema
    assert summary["counts"] == {"train": 12, "test": 6}
    assert summary["decoded"] == 18 and summary["reused"] == 0
    assert summary["shards"] >= 4 and summary["skipped"] == []
    manifest = _manifest(out)
    assert manifest["format_version"] == 1
    assert manifest["class_names"] == list(CREMA_D_CLASSES)
    assert manifest["preprocessing"]["n_fft"] == 512
    assert manifest["storage"]["audio"] == {
        "format": "spectrogram", "dtype": "float16", "shape": [257, 188, 1]}
    assert len(manifest["source_sha256"]) == 64
    shards = [s for split in manifest["splits"].values() for s in split["shards"]]
    assert sum(s["records"] for s in shards) == 18
    for shard in shards:
        path = os.path.join(out, shard["file"])
        assert os.path.getsize(path) == shard["bytes"]
        assert keras_dgl.datasets._prepared.sha256_of(path) == shard["sha256"]
    # Only the shards and the manifest remain (no plan, status or temp files).
    assert sorted(os.listdir(out)) == sorted(
        ["manifest.json"] + [s["file"] for s in shards])
    # Training clips keep all their frames; test clips only the one used.
    assert manifest["splits"]["train"]["count"] == 12
    assert verify_prepared(out)["shards"] == len(shards)


@pytest.mark.backend_independent  # prepare/tf.data only (see conftest)
def test_evaluation_split_is_the_same_from_raw_and_prepared(crema):
    raw, out, _ = crema
    for seed in (0, 3):
        a = crema_d(raw, split_seed=seed, validation_fraction=0.25, **SMALL)
        b = crema_d(out, split_seed=seed, validation_fraction=0.25, **SMALL)
        assert b.info["validation_clips"] == a.info["validation_clips"]
        assert b.info["counts"] == a.info["counts"]
        assert b.info["class_counts"] == a.info["class_counts"]
    x_raw, y_raw = a.numpy("test")
    x_prep, y_prep = b.numpy("test")
    np.testing.assert_array_equal(y_prep, y_raw)
    np.testing.assert_allclose(x_prep["visual"], x_raw["visual"], atol=1e-5)
    np.testing.assert_allclose(x_prep["audio"], x_raw["audio"], atol=1e-2)
    validation = np.concatenate([l.numpy() for _, l in b.validation])
    assert len(validation) == b.info["counts"]["validation"]


def test_device_side_evaluation_matches_raw(crema):
    raw, out, _ = crema
    expected, labels = crema_d(raw, validation_fraction=0.0, **SMALL).numpy("test")
    splits = crema_d(out, validation_fraction=0.0, augment="device", **SMALL)
    delivered, got_labels = splits.numpy("test")
    assert delivered["visual"].dtype == np.uint8
    assert delivered["visual"].shape[1:] == (1, 40, 52, 3)
    assert delivered["audio"].dtype == np.float16
    got = _evaluate(splits.preprocessing, delivered)
    np.testing.assert_array_equal(got_labels, labels)
    np.testing.assert_allclose(got["visual"], expected["visual"], atol=1e-3)
    np.testing.assert_allclose(got["audio"], expected["audio"], atol=1e-2)


def test_training_pipelines_host_and_device(crema):
    _, out, _ = crema
    host = crema_d(out, spec_augment=True, **SMALL)
    features, labels = next(iter(host.train))
    assert features["visual"].shape[1:] == (1, 32, 32, 3)
    assert features["visual"].dtype == tf.float32
    assert np.isfinite(features["audio"].numpy()).all()
    seen = np.concatenate([l.numpy() for _, l in host.train])
    assert len(seen) == host.info["counts"]["train"]
    device = crema_d(out, spec_augment=True, augment="device", **SMALL)
    features, labels = next(iter(device.train))
    assert features["visual"].dtype == tf.uint8
    visual = device.preprocessing["visual"](features["visual"], training=True)
    audio = device.preprocessing["audio"](features["audio"], training=True)
    assert tuple(visual.shape[1:]) == (1, 32, 32, 3)
    assert tuple(audio.shape[1:]) == (257, 188, 1)


def test_waveform_storage_keeps_the_random_crop(tmp_path):
    raw, out = str(tmp_path / "raw"), str(tmp_path / "out")
    make_tree(raw, ["drums", "bark"], clips_per_class=3, test_every=3,
              frames=4, rate=22050)
    prepare("kinetics-sounds", raw, out, **SOURCE_SIZE, **QUIET)
    manifest = _manifest(out)
    assert manifest["storage"]["audio"] == {
        "format": "waveform", "dtype": "int16", "shape": [160000]}
    expected, labels = kinetics_sounds(raw, validation_fraction=0.0,
                                       **SMALL).numpy("test")
    loud = expected["audio"] > -3
    host, host_labels = kinetics_sounds(out, validation_fraction=0.0,
                                        **SMALL).numpy("test")
    np.testing.assert_array_equal(host_labels, labels)
    np.testing.assert_allclose(host["audio"][loud], expected["audio"][loud],
                               atol=2e-2)
    np.testing.assert_allclose(host["visual"], expected["visual"], atol=1e-5)
    splits = kinetics_sounds(out, validation_fraction=0.0, augment="device",
                             **SMALL)
    got = _evaluate(splits.preprocessing, splits.numpy("test")[0])
    np.testing.assert_allclose(got["audio"][loud], expected["audio"][loud],
                               atol=2e-2)
    np.testing.assert_allclose(got["visual"], expected["visual"], atol=1e-3)
    # Training windows differ between draws of the same clip.
    waves = splits.numpy("train")[0]["audio"][:1].repeat(8, 0)
    crops = keras.ops.convert_to_numpy(
        splits.preprocessing["audio"](waves, training=True))
    assert len({c.tobytes() for c in crops}) > 1


# --------------------------------------------------------------------------
# Resuming.


@pytest.mark.backend_independent  # prepare/tf.data only (see conftest)
def test_interrupted_prepare_resumes_without_rewriting_shards(
        crema, tmp_path, monkeypatch):
    raw, reference, _ = crema
    out = str(tmp_path / "out")
    real_finish = shards_module._finish_shard
    finished = []

    def finish_then_die(*args):
        if len(finished) == 3:  # killed while writing the fourth shard
            raise KeyboardInterrupt
        finished.append(real_finish(*args))
        return finished[-1]

    monkeypatch.setattr(shards_module, "_finish_shard", finish_then_die)
    with pytest.raises(KeyboardInterrupt):
        prepare("crema-d", raw, out, shard_size_mb=0.3, **SOURCE_SIZE, **QUIET)
    monkeypatch.setattr(shards_module, "_finish_shard", real_finish)
    assert not os.path.exists(os.path.join(out, "manifest.json"))
    assert any(".tmp-" in name for name in os.listdir(out))
    with pytest.raises(ValueError, match="unfinished.*prepare"):
        crema_d(out, **SMALL)
    # Killed after a rename but before its status file: rebuilt from the shard.
    os.remove(os.path.join(out, finished[0]["file"] + ".json"))
    before = {s["file"]: os.stat(os.path.join(out, s["file"])) for s in finished}

    summary = prepare("crema-d", raw, out, shard_size_mb=0.3, **SOURCE_SIZE,
                      **QUIET)
    assert summary["reused"] == sum(s["records"] for s in finished)
    assert summary["decoded"] + summary["reused"] == 18
    for name, stat in before.items():
        after = os.stat(os.path.join(out, name))
        assert (after.st_ino, after.st_mtime_ns) == (stat.st_ino,
                                                     stat.st_mtime_ns)
    # Byte for byte what an uninterrupted run wrote.
    ours, theirs = _manifest(out), _manifest(reference)
    for split in ours["splits"]:
        assert ours["splits"][split]["shards"] == theirs["splits"][split]["shards"]
    assert not any(".tmp-" in name for name in os.listdir(out))
    # Finished: running again decodes nothing; other settings are refused.
    again = prepare("crema-d", raw, out, shard_size_mb=0.3, **SOURCE_SIZE,
                    **QUIET)
    assert again["decoded"] == 0
    with pytest.raises(ValueError, match="other sources or settings"):
        prepare("crema-d", raw, out, frame_size=64, **QUIET)


@pytest.mark.backend_independent  # prepare/tf.data only (see conftest)
def test_prepare_refuses_a_foreign_folder_and_bad_options(crema, tmp_path):
    raw, _, _ = crema
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        prepare("crema-d", raw, str(foreign), **QUIET)
    with pytest.raises(ValueError, match="batch_size"):
        prepare("crema-d", raw, str(tmp_path / "x"), batch_size=8, **QUIET)
    with pytest.raises(ValueError, match="Unknown audio-visual dataset"):
        prepare("crema", raw, str(tmp_path / "x"), **QUIET)
    with pytest.raises(ValueError, match="random audio crop"):
        prepare("kinetics-sounds", raw, str(tmp_path / "x"),
                audio_format="spectrogram", **QUIET)


# --------------------------------------------------------------------------
# Bad prepared folders: a clear error, never a partial data set.


def _damage(out, how):
    manifest = _manifest(out)
    shard = manifest["splits"]["train"]["shards"][1]
    path = os.path.join(out, shard["file"])
    if how == "version":
        manifest["format_version"] = 99
        with open(os.path.join(out, "manifest.json"), "w") as handle:
            json.dump(manifest, handle)
    elif how == "manifest":
        with open(os.path.join(out, "manifest.json"), "w") as handle:
            handle.write('{"format": "keras_dgl.prepared_au')
    elif how == "missing":
        os.remove(path)
    elif how == "truncated":
        data = open(path, "rb").read()
        open(path, "wb").write(data[: len(data) // 2])
    elif how == "flipped":
        data = bytearray(open(path, "rb").read())
        data[len(data) // 2] ^= 0x40
        open(path, "wb").write(bytes(data))
    return shard["file"]


@pytest.mark.parametrize(
    "how, error, pattern",
    [
        ("version", ValueError, "format version 99.*Re-run"),
        ("manifest", ValueError, "Unreadable.*manifest.json.*Re-run"),
        ("missing", FileNotFoundError, "shard missing.*{shard}.*Re-run"),
        ("truncated", ValueError, "{shard} has .* bytes.*Re-run"),
    ],
)
@pytest.mark.backend_independent  # prepare/tf.data only (see conftest)
def test_damaged_prepared_folder_is_named(crema, tmp_path, how, error,
                                          pattern):
    out = _copy(crema[1], tmp_path)
    shard = _damage(out, how)
    with pytest.raises(error, match=pattern.format(shard=shard)):
        crema_d(out, **SMALL)


@pytest.mark.backend_independent  # prepare/tf.data only (see conftest)
def test_checksum_mismatch_is_named(crema, tmp_path):
    out = _copy(crema[1], tmp_path)
    shard = _damage(out, "flipped")
    crema_d(out, **SMALL)  # same size: only the checksum can tell
    with pytest.raises(ValueError, match=f"{shard} fails its SHA-256.*Re-run"):
        crema_d(out, verify="checksum", **SMALL)
    with pytest.raises(ValueError, match=f"{shard} fails its SHA-256"):
        verify_prepared(out)


@pytest.mark.parametrize(
    "read, pattern",
    [
        (lambda out: crema_d(out, sample_rate=16000, **SMALL),
         "sample_rate=16000 disagrees.*sample_rate=22050"),
        (lambda out: crema_d(out, frames=2, **SMALL), "frames=2 disagrees"),
        (lambda out: ave(out, **SMALL), "holds prepared CREMA-D data.*AVE"),
        (lambda out: crema_d(out, class_names=["a", "b"], **SMALL),
         "class list"),
        (lambda out: crema_d(out, cache=True, **SMALL), "cache"),
        (lambda out: crema_d(out, random_audio_crop=True, **SMALL),
         "random_audio_crop needs the waveform"),
    ],
)
@pytest.mark.backend_independent  # prepare/tf.data only (see conftest)
def test_arguments_that_disagree_with_the_manifest(crema, read, pattern):
    with pytest.raises(ValueError, match=pattern):
        read(crema[1])


@pytest.mark.backend_independent  # prepare/tf.data only (see conftest)
def test_device_augmentation_needs_prepared_data(crema):
    with pytest.raises(ValueError, match="augment='device'.*prepare"):
        crema_d(crema[0], augment="device", **SMALL)


# --------------------------------------------------------------------------
# Bad source clips during prepare.


@pytest.mark.backend_independent  # prepare/tf.data only (see conftest)
def test_undecodable_jpeg_is_named_with_clip_and_line(tmp_path):
    raw = str(tmp_path / "raw")
    rows = make_tree(raw, CREMA_D_CLASSES[:2], clips_per_class=2, test_every=2)
    clip = rows["train"][0][0]
    path = os.path.join(raw, "visual", clip, "1.jpg")
    data = bytearray(open(path, "rb").read())
    sof = jpeg_segment(data, 0xC0)
    data[sof + 5:sof + 7] = b"\x00\x00"  # the frame header's height
    open(path, "wb").write(bytes(data))
    # validate="none": the decode, not the up-front check, finds it.
    with pytest.raises(
            ValueError, match=rf"{clip}.1\.jpg \(clip '{clip}'.*train\.csv, line 2"):
        prepare("crema-d", raw, str(tmp_path / "a"), validate="none", **QUIET)
    summary = prepare("crema-d", raw, str(tmp_path / "b"), validate="none",
                      on_error="skip", **QUIET)
    assert summary["counts"]["train"] == len(rows["train"]) - 1
    assert [s["clip"] for s in summary["skipped"]] == [clip]
    splits = crema_d(str(tmp_path / "b"), validation_fraction=0.0, **SMALL)
    assert splits.info["num_skipped"] == 1
    assert splits.info["counts"]["train"] == len(rows["train"]) - 1


# --------------------------------------------------------------------------
# VGGSound and training from prepared shards.


def _vggsound_tree(root):
    """VGGSound's own list: youtube_id,start_seconds,label,split."""
    rows = []
    for index in range(6):
        youtube_id, start = f"yt{index:02d}-_x", 10 * index
        clip = f"{youtube_id}_{start:06d}"
        write_wav(os.path.join(root, "audio", clip + ".wav"),
                  tone(16000, 0.5, 300 + 50 * index), 16000)
        for frame in range(3):
            write_jpeg(os.path.join(root, "visual", clip, f"{frame}.jpg"),
                       index + frame)
        label = ["dog barking", "people marching"][index % 2]
        rows.append([youtube_id, start, label, "test" if index >= 4 else "train"])
    with open(os.path.join(root, "vggsound.csv"), "w", newline="") as handle:
        csv.writer(handle).writerows(rows)


@pytest.mark.backend_independent  # prepare/tf.data only (see conftest)
def test_vggsound_reads_its_list_and_prepares(tmp_path, caplog):
    raw, out = str(tmp_path / "raw"), str(tmp_path / "out")
    _vggsound_tree(raw)
    with caplog.at_level(logging.WARNING, logger="keras_dgl.datasets"):
        splits = vggsound(raw, validation_fraction=0.0, **SMALL)
    assert "309" in caplog.text
    assert splits.class_names == ["dog barking", "people marching"]
    assert splits.info["counts"] == {"train": 4, "validation": 0, "test": 2}
    assert splits.input_shapes == {"audio": (129, 626, 1),
                                   "visual": (3, 32, 32, 3)}
    prepare("vggsound", raw, out, **SOURCE_SIZE, **QUIET)
    prepared = vggsound(out, validation_fraction=0.0, **SMALL)
    np.testing.assert_array_equal(prepared.numpy("test")[1],
                                  splits.numpy("test")[1])
    with open(os.path.join(raw, "vggsound.csv"), "a") as handle:
        handle.write("broken_row,dog barking\n")
    with pytest.raises(ValueError, match="Malformed row.*vggsound.csv, line 7"):
        vggsound(raw, **SMALL)


def _preset_tree(name, root):
    if name == "vggsound":
        _vggsound_tree(root)
        return
    classes = {"crema-d": CREMA_D_CLASSES[:2], "ave": AVE_CLASSES[:2],
               "kinetics-sounds": ["drums", "bark"]}[name]
    make_tree(root, classes, clips_per_class=2, test_every=2, frames=3,
              seconds=0.3)


def _tiny_encoder():
    return keras.Sequential([keras.layers.Flatten(), keras.layers.Dense(4)])


@pytest.mark.parametrize(
    "name", [n for n, d in registry.DATASETS.items() if not d.builtin])
def test_every_preset_trains_from_prepared_shards(tmp_path, name):
    raw, out = str(tmp_path / "raw"), str(tmp_path / "out")
    _preset_tree(name, raw)
    prepare(name, raw, out, frame_size=20, **QUIET)
    loader = registry.dataset_loader(name)
    splits = loader(out, validation_fraction=0.0, augment="device",
                    image_size=16, batch_size=2, spec_augment=True)
    encoders = keras_dgl.preprocessing.attach(
        {"audio": _tiny_encoder(), "visual": _tiny_encoder()},
        splits.preprocessing,
    )
    model = keras_dgl.DGLModel(
        encoders, keras_dgl.layers.ConcatFusion(splits.num_classes), alpha=2.0)
    model.compile(optimizer=keras.optimizers.SGD(1e-3))
    history = model.fit(splits.train, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    logits = model.predict(splits.test, verbose=0)
    assert logits.shape == (splits.info["counts"]["test"], splits.num_classes)
    assert np.isfinite(logits).all()
