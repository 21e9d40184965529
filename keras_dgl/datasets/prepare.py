"""Decode an audio-visual data set once into TFRecord shards."""

from __future__ import annotations

import collections
import concurrent.futures
import glob
import hashlib
import json
import os
import time

import numpy as np
import tensorflow as tf

from keras_dgl.datasets import _prepared
from keras_dgl.datasets.audio_visual import (
    _BadFile,
    _check_arguments,
    _check_jpeg,
    _check_wav,
    _make_config,
    _read_source,
    _resolve_files,
    _short,
    _transforms_for,
)
from keras_dgl.datasets.presets import preset

# Train records are written in this fixed, seeded order (not list order, which
# is often sorted by class), so that reading a few shards at a time mixes
# classes before any shuffle buffer.
_ORDER_SEED = 0
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


# ----------------------------------------------------------------------------
# The plan: which clip goes to which shard, fixed before anything is written.


def _plan(source, resolved, positions, config, writer, shard_bytes, root):
    """Which clip (by its position in its list, after the label check) goes
    to which shard, and the hashes that identify sources and settings."""
    splits = {}
    listing = {}
    for split, entries in resolved.items():
        listed = [positions[split][(e.csv, e.line)] for e in entries]
        sizes = {
            p: writer.record_bytes(split, len(e.frames))
            for p, e in zip(listed, entries)
        }
        order = list(listed)
        if split == "train":
            order = [order[i] for i in
                     np.random.default_rng(_ORDER_SEED).permutation(len(order))]
        groups, current, current_bytes = [], [], 0
        for position in order:
            if current and current_bytes + sizes[position] > shard_bytes:
                groups.append(current)
                current, current_bytes = [], 0
            current.append(position)
            current_bytes += sizes[position]
        if current:
            groups.append(current)
        stored = set(listed)
        by_position = dict(zip(listed, entries))
        splits[split] = {
            "clips": [
                [e.clip, e.label, i in stored]
                for i, e in enumerate(source.entries[split])
            ],
            "shards": [
                {
                    "file": f"{split}-{n:05d}-of-{len(groups):05d}.tfrecord",
                    "indices": group,
                }
                for n, group in enumerate(groups)
            ],
        }
        listing[split] = [
            [i, by_position[i].clip, by_position[i].label,
             os.path.relpath(by_position[i].audio, root),
             [os.path.relpath(f, root) for f in writer.frames_to_store(
                 split, by_position[i].frames)]]
            for i in listed
        ]
    source_sha = hashlib.sha256(
        json.dumps([source.classes, listing], sort_keys=True).encode()
    ).hexdigest()
    plan = {
        "format": _prepared.FORMAT,
        "format_version": _prepared.FORMAT_VERSION,
        "dataset": config.name,
        "class_names": list(source.classes),
        "preprocessing": {
            key: getattr(config, key)
            for key in _prepared.STORED_PARAMETERS + ("random_audio_crop",)
        },
        "storage": writer.storage(),
        "source_sha256": source_sha,
        "lists": {split: path for split, (path, _) in source.lists.items()},
        "splits": splits,
    }
    plan["plan_sha256"] = hashlib.sha256(
        json.dumps(plan, sort_keys=True).encode()
    ).hexdigest()
    return plan


def _adopt_plan(out, plan):
    """Writes the plan, or checks that an interrupted run's plan is this
    one; removes that run's unfinished temporary files."""
    path = os.path.join(out, _prepared.PLAN_NAME)
    if os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as handle:
                old = json.load(handle)
        except (OSError, ValueError) as error:
            raise ValueError(
                f"Unreadable {path} ({error}): delete {out} and prepare again."
            ) from error
        if old.get("plan_sha256") != plan["plan_sha256"]:
            raise ValueError(
                f"{out} holds an unfinished preparation with other sources or "
                "settings. Re-run it with its own arguments, or choose another "
                "folder (or delete this one)."
            )
    else:
        others = [n for n in os.listdir(out) if not n.startswith(".")]
        if others:
            raise ValueError(
                f"{out} is not empty ({sorted(others)[:3]}...). prepare writes "
                "into an empty folder, or continues its own run there."
            )
        _atomic_write(path, json.dumps(plan).encode())
    for stale in glob.glob(os.path.join(out, ".*.tmp-*")):
        os.remove(stale)


def _finished_shard(out, shard):
    """The status of a shard an earlier run finished, or `None`."""
    path = os.path.join(out, shard["file"])
    if not os.path.exists(path):
        return None
    side = path + ".json"
    if os.path.exists(side):
        try:
            with open(side, encoding="utf-8") as handle:
                status = json.load(handle)
            if status.get("bytes") == os.path.getsize(path):
                return status
        except (OSError, ValueError):
            pass
    # Renamed into place (so complete) but killed before its status file:
    # rebuild the status from the shard itself.
    present = [
        int(tf.io.parse_single_example(
            record, {"index": tf.io.FixedLenFeature([], tf.int64)}
        )["index"])
        for record in tf.data.TFRecordDataset(path)
    ]
    missing = sorted(set(shard["indices"]) - set(present))
    status = {
        "file": shard["file"],
        "records": len(present),
        "bytes": os.path.getsize(path),
        "sha256": _prepared.sha256_of(path),
        "skipped": [{"index": i, "reason": "skipped by an earlier run"}
                    for i in missing],
    }
    _atomic_write(side, json.dumps(status).encode())
    return status


# ----------------------------------------------------------------------------
# Decoding and writing.


class _Writer:
    """Decodes one clip into a serialized record."""

    def __init__(self, config, audio_format, frame_shape, train_frames):
        self.config = config
        self.audio_format = audio_format
        self.frame_shape = frame_shape
        self.train_frames = None if train_frames is None else int(train_frames)
        self.transforms = _transforms_for(config)
        t = self.transforms
        if audio_format == "spectrogram":
            self.audio_shape = t.audio_shape
            self.audio_dtype = np.dtype("<f2")
        else:
            self.audio_shape = (t.tile_samples,)
            self.audio_dtype = np.dtype("<i2")
        self.decode = tf.function(
            self._decode,
            input_signature=[tf.TensorSpec([], tf.string),
                             tf.TensorSpec([None], tf.string)],
            autograph=False,
        )

    def storage(self):
        height, width = self.frame_shape
        return {
            "audio": {
                "format": self.audio_format,
                "dtype": self.audio_dtype.name,
                "shape": list(self.audio_shape),
            },
            "frames": {
                "dtype": "uint8",
                "height": height,
                "width": width,
                "train_frames": self.train_frames,
                "resize": "bilinear, antialiased",
            },
            "train_order_seed": _ORDER_SEED,
        }

    def frames_to_store(self, split, frames):
        count = len(frames)
        if split == "train":
            keep = count if self.train_frames is None else min(
                count, self.train_frames)
            picked = np.floor((np.arange(keep) + 0.5) * count / keep)
        else:
            # The frames the evaluation transform takes (the middle one of
            # each equal segment), as `_frame_indices` picks them.
            wanted = self.config.frames
            picked = np.floor(
                (np.arange(wanted, dtype=np.float32) + np.float32(0.5))
                * np.float32(count) / np.float32(wanted)
            )
        picked = np.minimum(picked.astype(int), count - 1)
        return [frames[i] for i in picked]

    def record_bytes(self, split, count):
        stored = len(self.frames_to_store(split, [None] * count))
        frame = self.frame_shape[0] * self.frame_shape[1] * 3
        audio = int(np.prod(self.audio_shape)) * self.audio_dtype.itemsize
        return audio + stored * frame + 96

    def _decode(self, audio_path, frame_paths):
        t = self.transforms
        wave = t.waveform(audio_path)
        if self.audio_format == "spectrogram":
            audio = tf.cast(t.spectrogram(t.crop(wave, False)), tf.float16)
        else:
            audio = tf.cast(
                tf.clip_by_value(tf.round(wave * 32768.0), -32768.0, 32767.0),
                tf.int16,
            )
        height, width = self.frame_shape
        frames = tf.map_fn(
            self._frame, frame_paths,
            fn_output_signature=tf.TensorSpec([height, width, 3], tf.uint8),
        )
        source = tf.io.extract_jpeg_shape(t.read(frame_paths[0], "JPEG"))[:2]
        return audio, frames, source

    def _frame(self, path):
        contents = self.transforms.read(path, "JPEG")
        shape = tf.io.extract_jpeg_shape(contents)
        height, width = self.frame_shape
        # libjpeg decodes at 1/2, 1/4 or 1/8 size for the cost of that size;
        # take the smallest that is still at least the stored size.
        ratios = (8, 4, 2, 1)
        fits = tf.stack([
            tf.logical_and(shape[0] // r >= height, shape[1] // r >= width)
            for r in ratios
        ])
        branch = tf.argmax(tf.cast(fits, tf.int32))
        image = tf.switch_case(
            tf.cast(branch, tf.int32),
            [lambda r=r: tf.io.decode_jpeg(contents, channels=3, ratio=r)
             for r in ratios],
        )
        image = tf.image.resize(image, [height, width], antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8)

    def example(self, position, entry, split):
        frames = self.frames_to_store(split, entry.frames)
        audio, pixels, source = self.decode(
            tf.constant(entry.audio), tf.constant(frames)
        )
        feature = tf.train.Feature
        return tf.train.Example(features=tf.train.Features(feature={
            "index": feature(int64_list=tf.train.Int64List(value=[position])),
            "label": feature(int64_list=tf.train.Int64List(value=[entry.label])),
            "audio": feature(bytes_list=tf.train.BytesList(
                value=[audio.numpy().astype(self.audio_dtype).tobytes()])),
            "frames": feature(bytes_list=tf.train.BytesList(
                value=[pixels.numpy().tobytes()])),
            "num_frames": feature(int64_list=tf.train.Int64List(
                value=[len(frames)])),
            "source_size": feature(int64_list=tf.train.Int64List(
                value=source.numpy().tolist())),
        })).SerializeToString()


def _bad_file(entry):
    """Names the file of a clip that failed to decode, and why."""
    try:
        _check_wav(entry.audio)
        tf.audio.decode_wav(tf.io.read_file(entry.audio))
    except (_BadFile, tf.errors.OpError, ValueError) as error:
        return entry.audio, f"Undecodable WAV file ({_reason(error)})"
    for frame in entry.frames:
        try:
            _check_jpeg(frame)
            tf.io.decode_jpeg(tf.io.read_file(frame), channels=3)
        except (_BadFile, tf.errors.OpError, ValueError) as error:
            return frame, f"Undecodable JPEG file ({_reason(error)})"
    return entry.audio, "Undecodable clip"


def _reason(error):
    return error.reason if isinstance(error, _BadFile) else _short(error)


def _write_shards(out, pending, entries, writer, workers, report, progress):
    """Decodes and writes the pending shards; yields `(file, status)` as each
    one is complete on disk."""

    def work(split, position):
        entry = entries[split][position]
        try:
            return writer.example(position, entry, split), None
        except tf.errors.OpError:
            path, reason = _bad_file(entry)
            return None, (entry, path, reason)

    jobs = [(split, shard, position) for split, shard in pending
            for position in shard["indices"]]
    window = max(2, 4 * workers)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        queue = collections.deque()
        jobs_iter = iter(jobs)
        for job in jobs_iter:
            queue.append((job, pool.submit(work, job[0], job[2])))
            if len(queue) >= window:
                break
        current, handle, temp, skipped = None, None, None, []
        while queue:
            (split, shard, position), future = queue.popleft()
            for job in jobs_iter:
                queue.append((job, pool.submit(work, job[0], job[2])))
                break
            if current is not shard:
                current = shard
                temp = os.path.join(
                    out, f".{shard['file']}.tmp-{os.getpid()}"
                )
                handle, skipped, records = tf.io.TFRecordWriter(temp), [], 0
            record, bad = future.result()
            if bad is None:
                handle.write(record)
                records += 1
            else:
                entry, path, reason = bad
                message = (f"{reason}: {path} (clip {entry.clip!r}, listed "
                           f"in {entry.csv}, line {entry.line})")
                # Raises under on_error="raise" (nothing of this shard stays).
                try:
                    report.bad(ValueError, message, split, entry.clip, path)
                except ValueError:
                    handle.close()
                    os.remove(temp)
                    for _, rest in queue:
                        rest.cancel()
                    raise
                skipped.append({"index": position, "reason": message,
                                "file": path})
            if progress is not None:
                progress.add(1)
            if queue and queue[0][0][1] is shard:
                continue
            handle.close()
            status = _finish_shard(out, temp, shard, records, skipped)
            yield shard["file"], status


def _finish_shard(out, temp, shard, records, skipped):
    with open(temp, "rb+") as handle:
        os.fsync(handle.fileno())
    final = os.path.join(out, shard["file"])
    status = {
        "file": shard["file"],
        "records": records,
        "bytes": os.path.getsize(temp),
        "sha256": _prepared.sha256_of(temp),
        "skipped": skipped,
    }
    os.replace(temp, final)
    _fsync_folder(out)
    _atomic_write(final + ".json", json.dumps(status).encode())
    return status


def _atomic_write(path, data):
    """Writes `data` to `path` through a fsynced temporary file and a rename."""
    folder = os.path.dirname(os.path.abspath(path))
    temp = os.path.join(
        folder, f".{os.path.basename(path)}.tmp-{os.getpid()}"
    )
    with open(temp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    _fsync_folder(folder)


def _fsync_folder(folder):
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not supported on this platform
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


# ----------------------------------------------------------------------------
# The manifest.


def _manifest(plan, done, checked_skips, root):
    manifest = {k: v for k, v in plan.items() if k != "splits"}
    manifest["created_by"] = "keras_dgl.datasets.prepare"
    manifest["source_root"] = root
    splits = {}
    skipped = list(checked_skips)
    for split, split_plan in plan["splits"].items():
        clips = [list(c) for c in split_plan["clips"]]
        shards = []
        for shard in split_plan["shards"]:
            status = done[shard["file"]]
            for item in status["skipped"]:
                clip = clips[item["index"]]
                clip[2] = False
                skipped.append({
                    "split": split, "clip": clip[0],
                    "file": item.get("file", ""), "reason": item["reason"],
                })
            shards.append({k: status[k] for k in
                           ("file", "records", "bytes", "sha256")})
        labels = [c[1] for c in clips if c[2]]
        splits[split] = {
            "count": len(labels),
            "class_counts": np.bincount(
                labels, minlength=len(plan["class_names"])).tolist(),
            "clips": clips,
            "shards": shards,
        }
    manifest["splits"] = splits
    manifest["skipped"] = skipped
    return manifest


def _stored_count(manifest):
    return sum(s["count"] for s in manifest["splits"].values())


def _summary(out, manifest, decoded, reused, workers, started, skipped):
    shards = [s for split in manifest["splits"].values()
              for s in split["shards"]]
    return {
        "out": out,
        "dataset": manifest["dataset"],
        "counts": {k: v["count"] for k, v in manifest["splits"].items()},
        "shards": len(shards),
        "bytes": sum(s["bytes"] for s in shards),
        "decoded": decoded,
        "reused": reused,
        "skipped": list(skipped),
        "workers": workers,
        "seconds": time.perf_counter() - started,
        "clips_per_second": 0.0,
        "manifest": os.path.join(out, _prepared.MANIFEST_NAME),
    }

