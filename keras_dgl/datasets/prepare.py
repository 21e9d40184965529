"""Decode an audio-visual data set once into TFRecord shards.

The plan and manifest live in `_prepare_plan`, decoding and shard writing in
`_shards`.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from keras_dgl.datasets import _prepared
from keras_dgl.datasets._av_config import (
    _check_arguments,
    _make_config,
)
from keras_dgl.datasets._csv_lists import _read_source
from keras_dgl.datasets._file_checks import _resolve_files
from keras_dgl.datasets._prepare_plan import (
    _adopt_plan,
    _finished_shard,
    _manifest,
    _plan,
    _stored_count,
    _summary,
)
from keras_dgl.datasets._shards import (
    _atomic_write,
    _write_shards,
    _Writer,
)
from keras_dgl.datasets.presets import preset


_SOURCE_OPTIONS = (
    "name", "known_classes", "class_names", "train_csv", "test_csv",
    "validation_csv", "split_csv",
)
_PREPROCESSING_OPTIONS = (
    "sample_rate", "clip_seconds", "tile_seconds", "random_audio_crop",
    "n_fft", "hop_length", "spectrogram_size", "frames",
)


def prepare(
    dataset,
    data_dir,
    out,
    *,
    frame_size=256,
    train_frames=None,
    audio_format="auto",
    shard_size_mb=100,
    workers=None,
    on_error="raise",
    validate="header",
    verbose=1,
    **options,
):
    """Decodes every clip of an audio-visual data set once, into shards.

    Reads the raw tree of `keras_dgl.datasets.audio_visual` (CSV lists,
    WAV files, JPEG frames), decodes each clip once, in parallel over the
    host's cores, and writes TFRecord shards of about `shard_size_mb` plus
    `manifest.json` to `out`. The loaders (`crema_d(out)`, ...) then read
    `out` instead of the raw folder and return the same `DatasetSplits`;
    per training step only bytes are read and batched (with
    `augment="device"` the random crop, flip, STFT and SpecAugment run
    inside the model, see `keras_dgl.preprocessing`).

    Why TFRecord: tf.data reads it natively, in C++ with no Python per
    example, as a stream (interleaved shards, parallel reads, prefetch),
    on every Keras backend, and each record carries a CRC32C that every
    read checks. `tf.data.Dataset.save` writes an internal format that
    differs between TensorFlow versions; NumPy files would need Python
    (and the GIL) per example.

    What is stored, per clip: the frames as uint8, resized once to
    `frame_size` (antialiased bilinear, as the loaders resize); for the
    training list every frame of the clip (or `train_frames` evenly spaced
    ones), so that the per-segment random frame choice stays possible,
    for evaluation lists only the `frames` frames the evaluation transform
    takes. The audio as a float16 log-spectrogram (the exact evaluation
    and training input when the preset has no random audio crop: CREMA-D,
    AVE) or, when it has one (Kinetics-Sounds, VGGSound), as the int16
    waveform tiled to `tile_seconds`, from which the random window and
    the STFT are taken per step. SpecAugment works on either. Also the
    label, the clip's position in its list, and the source frame size.

    Resuming: the plan (which clip goes to which shard) is written first;
    a shard is written to a temporary file in `out`, flushed, fsynced and
    renamed, so a shard under its final name is complete and is never
    written again; running `prepare` again with the same arguments
    continues where a killed run stopped. The manifest is written (also
    atomically) only after the last shard, and the loaders read nothing
    without it, so an interrupted run is never mistaken for a complete
    one. A folder holding another data set or other settings is refused.

    Bad clips: the lists and files are checked as the loaders check them
    (`validate`), and each clip is decoded; a file that cannot be decoded
    is named with its clip and CSV line. `on_error="raise"` stops at the
    first; `"skip"` leaves such clips out and lists them in the manifest
    (`skipped`) and the summary.

    Args:
        dataset: str. A preset name of `keras_dgl.datasets.PRESETS`
            (`"crema-d"`, `"kinetics-sounds"`, `"ave"`, `"vggsound"`), or
            `"audio-visual"` for a custom set (pass `name` and the
            preprocessing options of `audio_visual`).
        data_dir: path. The raw tree.
        out: path. The folder to write (created; must be empty, hold an
            interrupted run of the same preparation, or a finished one).
        frame_size: int or `(height, width)`. Stored frame size. An int is
            the short side; the long side follows the preset's usual
            aspect ratio (4:3 for CREMA-D, 16:9 for the YouTube sets).
            Frames of another aspect ratio are stretched to it; the source
            size is kept per clip, so host-side crops keep their published
            aspect-ratio range in source pixels. Defaults to 256.
        train_frames: int or `None`. At most this many frames stored per
            training clip (evenly spaced); `None` stores every frame.
        audio_format: `"auto"`, `"spectrogram"` or `"waveform"`.
        shard_size_mb: float. Target shard size in MB (10^6 bytes).
        workers: int or `None`. Decoding threads; `None` is the number of
            cores this process may use.
        on_error: `"raise"` or `"skip"`.
        validate: `"header"`, `"decode"` or `"none"`: the up-front file
            check of `audio_visual` (each clip is decoded anyway).
        verbose: int. 1 shows a `keras.utils.Progbar`; 0 is silent.
        **options: source and preprocessing arguments of `audio_visual`
            (`class_names`, `train_csv`, `test_csv`, `validation_csv`,
            `split_csv`, `sample_rate`, `clip_seconds`, `tile_seconds`,
            `random_audio_crop`, `n_fft`, `hop_length`, `spectrogram_size`,
            `frames`, and for `"audio-visual"` also `name` and
            `known_classes`). Read-time options (`batch_size`, `augment`,
            `validation_fraction`, ...) belong to the loader instead.

    Returns:
        A dict: `out`, `dataset`, `counts` (clips stored per list),
        `shards`, `bytes`, `decoded` (clips decoded by this call),
        `reused` (clips in shards an earlier run finished), `skipped`
        (list of dicts: split, clip, file, reason), `workers`, `seconds`,
        `clips_per_second` (this call's decoding rate), `manifest` (path).

    Raises:
        FileNotFoundError, ValueError: a missing or bad source (with
            `on_error="raise"`), a bad argument, or an `out` folder that
            holds other prepared data.

    Example:

    ```python
    summary = keras_dgl.datasets.prepare(
        "crema-d", "/data/CREMA-D", "/data/CREMA-D-prepared"
    )
    splits = keras_dgl.datasets.crema_d("/data/CREMA-D-prepared",
                                        augment="device")
    ```
    """
    started = time.perf_counter()
    if dataset == "audio-visual":
        aspect, merged = 4.0 / 3.0, {}
    else:
        entry = preset(dataset)
        aspect, merged = entry["frame_aspect"], dict(entry["options"])
    unknown = sorted(
        set(options) - set(_SOURCE_OPTIONS) - set(_PREPROCESSING_OPTIONS)
    )
    if unknown:
        raise ValueError(
            f"prepare() takes the source and preprocessing options of "
            f"audio_visual; {unknown} are not among them (read-time options "
            "such as batch_size or augment go to the loader)."
        )
    merged.update(options)
    source_options = {k: merged.get(k) for k in _SOURCE_OPTIONS}
    if source_options["name"] is None:
        source_options["name"] = "audio-visual"
    for key, default in (("train_csv", "train.csv"), ("test_csv", "test.csv")):
        if key not in merged:
            source_options[key] = default
    config = _make_config(
        name=source_options["name"],
        sample_rate=merged.get("sample_rate", 22050),
        clip_seconds=merged.get("clip_seconds", 3.0),
        tile_seconds=merged.get("tile_seconds"),
        random_audio_crop=merged.get("random_audio_crop", False),
        n_fft=merged.get("n_fft", 512),
        hop_length=merged.get("hop_length", 353),
        spectrogram_size=merged.get("spectrogram_size"),
        frames=merged.get("frames", 1),
        image_size=224,
        augment=False,
        spec_augment=None,
    )
    _check_arguments(config, on_error, validate, 0.0, 1)
    audio_format = _audio_format(audio_format, config)
    frame_shape = _frame_shape(frame_size, aspect)
    if train_frames is not None and int(train_frames) < config.frames:
        raise ValueError(
            f"train_frames must be >= frames ({config.frames}), got "
            f"{train_frames}."
        )
    if not shard_size_mb > 0:
        raise ValueError(f"shard_size_mb must be > 0, got {shard_size_mb}.")
    workers = int(workers or _cores())
    root, out = os.fspath(data_dir), os.fspath(out)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{config.name} root folder not found: {root}")
    if _prepared.is_prepared(root):
        raise ValueError(f"{root} is already prepared data; pass the raw folder.")

    source = _read_source(
        root, config.name, source_options["known_classes"],
        source_options["class_names"], source_options["train_csv"],
        source_options["test_csv"], source_options["validation_csv"],
        source_options["split_csv"], on_error,
    )
    report = source.report
    resolved = {}
    for split in source.entries:
        resolved[split] = _resolve_files(
            root, source.entries[split], validate, report, split
        )
        report.check_rows(split, source.lists[split][0], resolved[split],
                          config.name)

    checked_skips = list(report.skipped)  # decode-time skips go per shard
    writer = _Writer(config, audio_format, frame_shape, train_frames)
    positions = {
        split: {(e.csv, e.line): i for i, e in enumerate(listed)}
        for split, listed in source.entries.items()
    }
    plan = _plan(
        source, resolved, positions, config, writer,
        float(shard_size_mb) * 1e6, root=root,
    )
    os.makedirs(out, exist_ok=True)
    if _prepared.is_prepared(out):
        manifest = _prepared.read_manifest(out)
        if manifest.get("plan_sha256") != plan["plan_sha256"]:
            raise ValueError(
                f"{out} already holds prepared data made from other sources "
                "or settings. Choose another folder or delete it."
            )
        return _summary(out, manifest, 0, _stored_count(manifest), workers,
                        started, [])
    _adopt_plan(out, plan)

    done, pending = {}, []
    for split, split_plan in plan["splits"].items():
        for shard in split_plan["shards"]:
            status = _finished_shard(out, shard)
            if status is None:
                pending.append((split, shard))
            else:
                done[shard["file"]] = status
    entries = {
        split: {positions[split][(e.csv, e.line)]: e for e in resolved[split]}
        for split in resolved
    }
    decoded = sum(len(shard["indices"]) for _, shard in pending)
    reused = sum(status["records"] for status in done.values())
    progress = None
    if verbose:
        import keras  # noqa: PLC0415

        progress = keras.utils.Progbar(decoded, unit_name="clip")
    decode_started = time.perf_counter()
    for shard_file, status in _write_shards(
        out, pending, entries, writer, workers, report, progress
    ):
        done[shard_file] = status
    decode_seconds = time.perf_counter() - decode_started

    manifest = _manifest(plan, done, checked_skips, root)
    _atomic_write(os.path.join(out, _prepared.MANIFEST_NAME),
                  json.dumps(manifest, indent=1).encode())
    for leftover in [_prepared.PLAN_NAME] + [f"{name}.json" for name in done]:
        path = os.path.join(out, leftover)
        if os.path.exists(path):
            os.remove(path)
    report.warn(config.name)
    summary = _summary(out, manifest, decoded, reused, workers, started,
                       manifest["skipped"])
    summary["clips_per_second"] = decoded / max(decode_seconds, 1e-9)
    return summary


# ----------------------------------------------------------------------------
# Arguments.


def _cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _audio_format(audio_format, config):
    if audio_format == "auto":
        return "waveform" if config.random_audio_crop else "spectrogram"
    if audio_format not in ("spectrogram", "waveform"):
        raise ValueError(
            "audio_format must be 'auto', 'spectrogram' or 'waveform', got "
            f"{audio_format!r}."
        )
    if audio_format == "spectrogram" and config.random_audio_crop:
        raise ValueError(
            "audio_format='spectrogram' cannot keep the random audio crop of "
            f"{config.name}; use 'waveform' (or 'auto')."
        )
    return audio_format


def _frame_shape(frame_size, aspect):
    if isinstance(frame_size, (int, np.integer)):
        short = int(frame_size)
        shape = (short, int(round(short * aspect))) if aspect >= 1 else (
            int(round(short / aspect)), short)
    else:
        shape = tuple(int(s) for s in frame_size)
    if len(shape) != 2 or min(shape) < 1:
        raise ValueError(
            f"frame_size must be an int or (height, width) >= 1, got "
            f"{frame_size!r}."
        )
    return shape
