"""Shared tf.data machinery of the audio-visual data sets.

`crema_d`, `kinetics_sounds` and `ave` are presets of `audio_visual`, which
reads clip lists from CSV files, checks the files up front, and builds
train / validation / test pipelines of log-spectrograms and video frames.
"""

from __future__ import annotations

import collections
import concurrent.futures
import csv
import dataclasses
import hashlib
import json
import logging
import os
import re
import struct
import warnings

import numpy as np
import tensorflow as tf

from keras_dgl.datasets.splits import DatasetSplits

logger = logging.getLogger("keras_dgl.datasets")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_MEDIA_EXTENSIONS = (".wav", ".mp4", ".flv", ".avi", ".mkv", ".webm", ".mov")
_JPEG_EXTENSIONS = (".jpg", ".jpeg")
_HEADER_LABELS = {"label", "labels", "class", "category", "emotion"}
_LOG_FLOOR = 1e-7


def audio_visual(
    root,
    *,
    name="audio-visual",
    known_classes=None,
    class_names=None,
    train_csv="train.csv",
    test_csv="test.csv",
    validation_csv=None,
    split_csv=None,
    validation_fraction=0.1,
    split_seed=0,
    batch_size=64,
    sample_rate=22050,
    clip_seconds=3.0,
    tile_seconds=None,
    random_audio_crop=False,
    n_fft=512,
    hop_length=353,
    spectrogram_size=None,
    frames=1,
    image_size=224,
    augment=True,
    spec_augment=None,
    cache=False,
    shuffle_buffer=None,
    on_error="raise",
    validate="header",
    num_parallel_calls=None,
    verify="size",
):
    """Audio-visual clips as log-spectrogram + frames pipelines.

    Expected directory tree (clip ids come from the CSV files):

    ```
    root/
      train.csv             # rows "clip_id,label"; optional header row
      test.csv
      audio/<clip_id>.wav   # 16-bit PCM WAV, any rate, mono or multi-channel
      visual/<clip_id>/*.jpg  # frames extracted as JPEG, any count >= 1
    ```

    A clip id may contain `/` (sub-folders) and may end with a media
    extension (`.wav`, `.mp4`, `.flv`, ...), which is dropped. A header row
    is recognised when its second field is one of `label`, `class`,
    `category`, `emotion`. Labels are class names; quote names that contain
    commas. Frames of a clip are taken in natural sort order of their file
    names (`2.jpg` before `10.jpg`).

    Each example is `({"audio": a, "visual": v}, label)`:

    - `a`: float32 `(freq, time, 1)`, `log(|STFT| + 1e-7)` of the clip.
      The WAV is decoded with `tf.audio.decode_wav`, mixed to mono,
      resampled to `sample_rate` if its rate differs (pure-TF FFT
      resampling: tensorflow-io's resampler does not load with recent
      TensorFlow), tiled until it lasts `tile_seconds`, cut to that length,
      clamped to [-1, 1], and a `clip_seconds` window is taken (a random
      one for training when `random_audio_crop`, else the centred one).
      STFT: periodic Hann window of `n_fft`, hop `hop_length`, the signal
      reflect-padded by `n_fft // 2` on both sides (librosa's `center`),
      so `freq = n_fft // 2 + 1` and `time = 1 + samples // hop_length`;
      then optionally resized (bilinear) to `spectrogram_size`.
    - `v`: float32 `(frames, image_size, image_size, 3)`, always with the
      frames axis (also for one frame), channels last, ImageNet-normalised.
      The clip's frames are cut into `frames` equal segments and one frame
      is taken per segment: a random one for training, the middle one
      otherwise (clips with fewer frames repeat them). Training (with
      `augment`): one random resized crop (area 8-100%, aspect 3/4-4/3,
      decoded with `tf.io.decode_and_crop_jpeg`) and one horizontal flip
      coin per clip, shared by its frames; then resize. Evaluation: the
      whole frame resized to `image_size` x `image_size` (aspect not kept).
    - `label`: int32 index into `class_names`.

    Bad data. Before any pipeline is built, every listed clip is checked:
    the CSV rows (unknown label, missing field), the WAV (exists, RIFF /
    WAVE header, 16-bit PCM, a data chunk not cut short, at least one
    sample) and each JPEG (exists, starts with the SOI marker, has an EOI
    marker near its end, and sound header segments up to the first scan:
    segment lengths, the frame header's size and components, the Huffman
    and quantization tables, the scan header; damage there is what makes
    TensorFlow's decoder fail). `validate="decode"` also decodes every file
    once with TensorFlow (slower, catches the rest, e.g. a marker inside
    the compressed data). A failed check raises `FileNotFoundError`
    (missing file) or `ValueError` naming the file, or the label and the
    CSV file and line. With `on_error="skip"` such clips are left out
    instead: `info["skipped"]` lists them (split, clip, file, reason),
    `info["num_skipped"]` counts them, and one warning is logged. A split
    left empty is always an error naming its CSV file.

    Inside the pipelines, decoding only follows a check: each file read is
    re-checked in the graph (the WAV's chunk structure and 16-bit PCM
    format, the JPEG's SOI / EOI markers, segment lengths and frame and
    scan headers) by a `tf.debugging.Assert` whose message carries the
    path, so a file that is damaged after the up-front check, or with
    `validate="none"`, fails with its name instead of as an anonymous
    `DecodeWav` / `DecodeJpeg` error. This keeps the pipelines pure graph
    code (parallel, no Python or GIL per example), unlike a
    `tf.py_function` wrapper. What the in-graph guard cannot see is damage
    inside the compressed data of a structurally sound file; use
    `validate="decode"` for that. With `on_error="skip"` the pipelines
    also drop elements that fail inside tf.data (TensorFlow logs them;
    they are not counted in `info`).

    Prepared data. `root` may also be a folder written by
    `keras_dgl.datasets.prepare` (recognised by its `manifest.json`). Then
    the shards are streamed (shuffled shard order, 8 shards read in
    parallel and interleaved, a shuffle buffer of about 256 MB unless
    `shuffle_buffer` is given, parallel parsing, prefetch); no split is
    loaded into memory. The preprocessing arguments that fix the stored
    data (`sample_rate`, `clip_seconds`, `tile_seconds`, `n_fft`,
    `hop_length`, `spectrogram_size`, `frames`, the class list, and the
    data set `name`) must agree with the manifest, else a `ValueError`
    names the argument; the others (`image_size`, `augment`,
    `spec_augment`, `batch_size`, `validation_fraction`, `split_seed`,
    ...) apply at read time. The validation split is carved from the
    stored training list as it is from the raw one, so the same
    `split_seed` selects the same clips (a list prepared from
    `validation_csv` is used as it is). The CSV, `on_error` and
    `validate` arguments are not used (the lists were read at prepare
    time; its skipped clips are in `info["skipped"]`). Host-side training
    crops of prepared frames are drawn as for raw data (the box in source
    pixels) but resampled bilinearly without antialiasing (a crop of a
    256-pixel frame is at most 1.5x the output size); evaluation frames are
    resized with antialiasing as for raw data. A missing shard,
    one of another size (or, with `verify="checksum"`, another SHA-256),
    another format version or an unfinished preparation raise an error
    naming the file and saying to re-run `prepare`.

    Args:
        root: path. The data set's root folder (tree above).
        name: str. Used in messages and cache file names.
        known_classes: list of str or `None`. The data set's published
            class list; labels outside it are errors. `None`: classes are
            the sorted labels found in the two CSV files.
        class_names: list of str or `None`. Overrides `known_classes`
            (order = label indices).
        train_csv: str. Training list, relative to `root` (or absolute).
        test_csv: str. Test list.
        validation_csv: str or `None`. A validation list of its own; when
            given, nothing is carved from the training list and
            `validation_fraction` is ignored.
        split_csv: str or `None`. One list for all splits instead of
            `train_csv` / `test_csv` / `validation_csv`: rows
            `clip_id,label,split` or VGGSound's
            `youtube_id,start_seconds,label,split` (clip id
            `<youtube_id>_<start in 6 digits>`); split `train`, `val` /
            `validation` or `test`.
        validation_fraction: float in `[0, 1)`. Share of the training list
            carved out for validation, stratified by class and seeded by
            `split_seed`. 0 gives `validation=None`.
        split_seed: int. Seeds the validation carve and the shuffles.
        batch_size: int. Batch size; the last partial batch is kept.
        sample_rate: int. Audio rate in Hz after resampling.
        clip_seconds: float. Audio window fed to the STFT.
        tile_seconds: float or `None`. Audio is tiled to this length
            before the window is taken; `None` means `clip_seconds`.
        random_audio_crop: bool. Random window position for training.
        n_fft: int. STFT frame and FFT length.
        hop_length: int. STFT hop.
        spectrogram_size: `(freq, time)` or `None`. Resize target.
        frames: int >= 1. Frames per clip.
        image_size: int. Frame height and width.
        augment: bool. Random resized crop + flip for training frames.
        spec_augment: `None`, `True` or a dict. SpecAugment masks on the
            training spectrograms. Dict keys: `freq_mask_param` and
            `time_mask_param` (largest mask width; default a tenth of the
            axis), `num_masks` (per axis, default 1), `implementation`
            (`"auto"`: tensorflow-io's `freq_mask` / `time_mask` when it
            imports, else our own pure-TF masks; `"tfio"`; `"tf"`). Masked
            cells are set to the spectrogram's mean in both cases.
        cache: `False`, `True` or a folder path. `True` caches in memory;
            a path caches in files there (named with a digest of the clip
            lists and preprocessing, so a changed configuration does not
            reuse a stale cache). Evaluation splits are cached fully
            processed (CREMA-D's test split is ~0.6 GB in float32); the
            training split is cached before its random steps (the decoded
            and resampled waveform, or the spectrogram when the audio has
            no random crop, plus the JPEG bytes of all its frames).
        shuffle_buffer: int or `None`. Training shuffle buffer when
            caching; `None` shuffles the whole split (without caching the
            clip list itself is shuffled, which costs nothing).
        on_error: `"raise"` (default) or `"skip"`.
        validate: `"header"` (default), `"decode"` or `"none"`.
        num_parallel_calls: int or `None` (`tf.data.AUTOTUNE`).
        verify: `"size"` (default) or `"checksum"`. Prepared data only: how
            the shards are checked when opened (each record's CRC32C is
            checked on every read either way; `"checksum"` reads all data
            once; see also `keras_dgl.datasets.verify_prepared`).

    Returns:
        A `keras_dgl.datasets.DatasetSplits`. `numpy(split)` runs the
        evaluation transform (no augmentation) over that split's clips.
        `info` holds `counts`, `class_counts`, `skipped`, `num_skipped`,
        `validation_clips`, `audio_rates` (clip counts per WAV rate) and
        the preprocessing parameters.

    Raises:
        FileNotFoundError: `root`, a CSV file, or (with
            `on_error="raise"`) a listed WAV / frame folder / JPEG is
            missing.
        ValueError: a bad file, an unknown label, a malformed row or an
            empty split.

    Example:

    ```python
    splits = keras_dgl.datasets.audio_visual(
        "/data/CREMA-D", known_classes=["NEU", "HAP", "SAD", "FEA", "DIS", "ANG"]
    )
    model.fit(splits.train, validation_data=splits.validation)
    ```
    """
    config = _make_config(
        name=name,
        sample_rate=sample_rate,
        clip_seconds=clip_seconds,
        tile_seconds=tile_seconds,
        random_audio_crop=random_audio_crop,
        n_fft=n_fft,
        hop_length=hop_length,
        spectrogram_size=spectrogram_size,
        frames=frames,
        image_size=image_size,
        augment=augment,
        spec_augment=spec_augment,
    )
    augment_mode = _augment_mode(augment)
    _check_arguments(config, on_error, validate, validation_fraction, batch_size)
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise FileNotFoundError(f"{name} root folder not found: {root}")

    from keras_dgl.datasets import _prepared  # noqa: PLC0415

    if _prepared.is_prepared(root):
        return _prepared.load(
            root,
            config,
            expected_classes=(
                class_names if class_names is not None else known_classes
            ),
            validation_fraction=validation_fraction,
            split_seed=split_seed,
            batch_size=int(batch_size),
            augment=augment_mode,
            shuffle_buffer=shuffle_buffer,
            cache=cache,
            num_parallel_calls=num_parallel_calls,
            verify=verify,
        )
    _prepared.check_not_unfinished(root)
    if augment_mode == "device":
        raise ValueError(
            f"augment='device' reads prepared data, but {root} is a raw "
            "folder (no manifest.json). Run keras_dgl.datasets.prepare(...) "
            "(or `keras-dgl prepare`) on it first, then pass the prepared "
            "folder."
        )

    source = _read_source(
        root, name, known_classes, class_names, train_csv, test_csv,
        validation_csv, split_csv, on_error,
    )
    report, lists, classes = source.report, source.lists, source.classes
    entries = dict(source.entries)
    if "validation" not in entries:
        entries["train"], entries["validation"] = _carve_validation(
            entries["train"], validation_fraction, split_seed,
            lists["train"][0],
        )
        lists["validation"] = lists["train"]

    resolved = {}
    for split in ("train", "validation", "test"):
        resolved[split] = _resolve_files(
            root, entries[split], validate, report, split
        )
        wanted = source.has_validation_list or validation_fraction > 0
        if split != "validation" or wanted:
            report.check_rows(split, lists[split][0], resolved[split], name)
    report.warn(name)

    transforms = _transforms_for(config)
    parallel = num_parallel_calls or tf.data.AUTOTUNE
    digest = _digest(config, resolved)

    def cache_path(split):
        if not cache or cache is True:
            return ""
        os.makedirs(os.fspath(cache), exist_ok=True)
        return os.path.join(
            os.fspath(cache), f"{_slug(name)}-{split}-{digest}"
        )

    def evaluation(split, use_cache=True):
        dataset = _slices(resolved[split]).map(
            transforms.evaluation_example, num_parallel_calls=parallel
        )
        if on_error == "skip":
            dataset = dataset.ignore_errors(log_warning=True)
        if cache and use_cache:
            dataset = dataset.cache(cache_path(split))
        return dataset.batch(int(batch_size)).prefetch(tf.data.AUTOTUNE)

    def training():
        dataset = _slices(resolved["train"])
        count = len(resolved["train"])
        if cache:
            dataset = dataset.map(
                transforms.training_stage_one, num_parallel_calls=parallel
            ).cache(cache_path("train"))
            buffer = count if shuffle_buffer is None else int(shuffle_buffer)
            dataset = dataset.shuffle(
                max(1, buffer), seed=split_seed, reshuffle_each_iteration=True
            ).map(transforms.training_stage_two, num_parallel_calls=parallel)
        else:
            dataset = dataset.shuffle(
                count, seed=split_seed, reshuffle_each_iteration=True
            ).map(transforms.training_example, num_parallel_calls=parallel)
        if on_error == "skip":
            dataset = dataset.ignore_errors(log_warning=True)
        return dataset.batch(int(batch_size)).prefetch(tf.data.AUTOTUNE)

    has_validation = bool(resolved["validation"])
    info = {
        "name": name,
        "root": root,
        "counts": {s: len(r) for s, r in resolved.items()},
        "class_counts": {
            s: np.bincount([e.label for e in r], minlength=len(classes)).tolist()
            for s, r in resolved.items()
        },
        "validation_clips": [e.clip for e in resolved["validation"]],
        "audio_rates": dict(
            collections.Counter(
                e.rate for r in resolved.values() for e in r if e.rate
            )
        ),
        "skipped": report.skipped,
        "num_skipped": len(report.skipped),
        "preprocessing": dataclasses.asdict(config),
        "cache": cache if cache else False,
    }
    return DatasetSplits(
        train=training(),
        validation=evaluation("validation") if has_validation else None,
        test=evaluation("test"),
        num_classes=len(classes),
        class_names=list(classes),
        input_shapes={
            "audio": transforms.audio_shape,
            "visual": transforms.visual_shape,
        },
        info=info,
        sources={
            split: (lambda split=split: evaluation(split, use_cache=False))
            for split in resolved
            if split != "validation" or has_validation
        },
    )


# ----------------------------------------------------------------------------
# Configuration and argument checks.


@dataclasses.dataclass(frozen=True)
class _Config:
    name: str
    sample_rate: int
    clip_seconds: float
    tile_seconds: float
    random_audio_crop: bool
    n_fft: int
    hop_length: int
    spectrogram_size: tuple | None
    frames: int
    image_size: int
    augment: bool
    spec_augment: dict | None


def _spec_augment_config(spec_augment):
    if spec_augment is None or spec_augment is False:
        return None
    options = {} if spec_augment is True else dict(spec_augment)
    unknown = set(options) - {
        "freq_mask_param",
        "time_mask_param",
        "num_masks",
        "implementation",
    }
    if unknown:
        raise ValueError(f"Unknown spec_augment options: {sorted(unknown)}")
    options.setdefault("num_masks", 1)
    options.setdefault("implementation", "auto")
    if options["implementation"] not in ("auto", "tfio", "tf"):
        raise ValueError(
            "spec_augment implementation must be 'auto', 'tfio' or 'tf', "
            f"got {options['implementation']!r}."
        )
    return options


def _make_config(*, name, sample_rate, clip_seconds, tile_seconds,
                 random_audio_crop, n_fft, hop_length, spectrogram_size,
                 frames, image_size, augment, spec_augment):
    """The `_Config` of one set of preprocessing arguments."""
    return _Config(
        name=name,
        sample_rate=int(sample_rate),
        clip_seconds=float(clip_seconds),
        tile_seconds=float(tile_seconds or clip_seconds),
        random_audio_crop=bool(random_audio_crop),
        n_fft=int(n_fft),
        hop_length=int(hop_length),
        spectrogram_size=(
            tuple(int(s) for s in spectrogram_size) if spectrogram_size else None
        ),
        frames=int(frames),
        image_size=int(image_size),
        augment=_augment_mode(augment) != "none",
        spec_augment=_spec_augment_config(spec_augment),
    )


def _augment_mode(augment):
    """`"host"`, `"device"` or `"none"` from the loaders' `augment` argument."""
    if augment is True or augment == "host":
        return "host"
    if augment is False or augment == "none":
        return "none"
    if augment == "device":
        return "device"
    raise ValueError(
        f"augment must be True / 'host', 'device', or False / 'none'; got "
        f"{augment!r}."
    )


def _check_arguments(config, on_error, validate, validation_fraction,
                     batch_size):
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}.")
    if validate not in ("none", "header", "decode"):
        raise ValueError(
            f"validate must be 'none', 'header' or 'decode', got {validate!r}."
        )
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(
            f"validation_fraction must lie in [0, 1), got {validation_fraction}."
        )
    if int(batch_size) < 1 or config.frames < 1 or config.image_size < 1:
        raise ValueError("batch_size, frames and image_size must be >= 1.")
    if config.tile_seconds < config.clip_seconds:
        raise ValueError("tile_seconds must be >= clip_seconds.")
    clip_samples = int(round(config.clip_seconds * config.sample_rate))
    if config.n_fft < 2 or config.hop_length < 1 or clip_samples <= config.n_fft:
        raise ValueError(
            f"Need n_fft >= 2, hop_length >= 1 and a clip longer than n_fft; "
            f"got n_fft={config.n_fft}, hop_length={config.hop_length}, "
            f"{clip_samples} samples."
        )


# ----------------------------------------------------------------------------
# Lists, labels, validation carve.


@dataclasses.dataclass
class _Entry:
    clip: str
    label: int
    csv: str
    line: int
    audio: str = ""
    frames: tuple = ()
    rate: int = 0


def _read_rows(path):
    """Returns `[(clip, label, line), ...]` of one CSV list."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Clip list not found: {path}")
    rows = []
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            for line, row in enumerate(csv.reader(handle), start=1):
                fields = [field.strip() for field in row]
                if not any(fields):
                    continue
                if not rows and len(fields) >= 2 and fields[1].lower() in (
                    _HEADER_LABELS
                ):
                    continue
                if len(fields) < 2 or not fields[0] or not fields[1]:
                    raise ValueError(
                        f"Malformed row in {path}, line {line}: expected "
                        f"'clip_id,label', got {row!r}"
                    )
                rows.append((_clip_id(fields[0]), fields[1], line))
    except UnicodeDecodeError as error:
        raise ValueError(f"Clip list {path} is not UTF-8 text: {error}") from error
    return rows


_SPLIT_NAMES = {"train": "train", "test": "test", "val": "validation",
                "valid": "validation", "validation": "validation"}


def _read_split_rows(path):
    """Returns `{split: [(clip, label, line), ...]}` of a list with a split
    column: rows `clip,label,split` or VGGSound's
    `youtube_id,start_seconds,label,split` (clip id
    `<youtube_id>_<start, 6 digits>`)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Clip list not found: {path}")
    rows = {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            for line, row in enumerate(csv.reader(handle), start=1):
                fields = [field.strip() for field in row]
                if not any(fields):
                    continue
                split = _SPLIT_NAMES.get(fields[-1].lower()) if fields else None
                if split is None and not rows and len(fields) >= 3 and (
                    fields[-2].lower() in _HEADER_LABELS
                ):
                    continue  # header row
                if len(fields) == 3 and split and fields[0] and fields[1]:
                    clip, label = _clip_id(fields[0]), fields[1]
                elif (len(fields) == 4 and split and fields[0] and fields[2]
                      and fields[1].isdigit()):
                    clip = f"{fields[0]}_{int(fields[1]):06d}"
                    label = fields[2]
                else:
                    raise ValueError(
                        f"Malformed row in {path}, line {line}: expected "
                        "'clip_id,label,split' or "
                        "'youtube_id,start_seconds,label,split' with split "
                        f"train / validation / test, got {row!r}"
                    )
                rows.setdefault(split, []).append((clip, label, line))
    except UnicodeDecodeError as error:
        raise ValueError(f"Clip list {path} is not UTF-8 text: {error}") from error
    return rows


@dataclasses.dataclass
class _Source:
    """A raw data set's lists: classes, label-checked entries per split (in
    list order, before any validation carve) and the bad-input report."""

    classes: list
    lists: dict
    entries: dict
    report: "_Report"

    @property
    def has_validation_list(self):
        return "validation" in self.entries


def _read_source(root, name, known_classes, class_names, train_csv, test_csv,
                 validation_csv, split_csv, on_error):
    report = _Report(on_error)
    lists = {}
    if split_csv is not None:
        path = os.path.join(root, os.fspath(split_csv))
        by_split = _read_split_rows(path)
        for split in ("train", "validation", "test"):
            if split in by_split or split != "validation":
                lists[split] = (path, by_split.get(split, []))
    else:
        names = {"train": train_csv, "validation": validation_csv,
                 "test": test_csv}
        for split, csv_name in names.items():
            if csv_name is not None:
                path = os.path.join(root, os.fspath(csv_name))
                lists[split] = (path, _read_rows(path))
    classes = _resolve_classes(class_names, known_classes, lists)
    index = {label: i for i, label in enumerate(classes)}
    entries = {}
    for split, (path, rows) in lists.items():
        kept = []
        for clip, label, line in rows:
            if label not in index:
                report.bad(
                    ValueError,
                    f"Unknown label {label!r} in {path}, line {line} "
                    f"(clip {clip!r}); {name} classes: {classes}",
                    split,
                    clip,
                    path,
                )
                continue
            kept.append(_Entry(clip, index[label], path, line))
        entries[split] = kept
    for split, (path, _) in lists.items():
        report.check_rows(split, path, entries[split], name)
    return _Source(classes, lists, entries, report)


def _clip_id(text):
    text = text.replace("\\", "/").strip("/")
    stem, extension = os.path.splitext(text)
    return stem if extension.lower() in _MEDIA_EXTENSIONS else text


def _resolve_classes(class_names, known_classes, lists):
    classes = class_names if class_names is not None else known_classes
    if classes is None:
        classes = sorted({label for _, rows in lists.values() for _, label, _ in rows})
    classes = [str(c) for c in classes]
    if len(set(classes)) != len(classes):
        raise ValueError(f"Duplicate class names in {classes}.")
    if not classes:
        paths = [path for path, _ in lists.values()]
        raise ValueError(f"No labels found in {paths}.")
    return classes


def _carve_validation(entries, fraction, seed, csv_path):
    if fraction <= 0:
        return entries, []
    if len(entries) < 2:
        raise ValueError(
            f"The training list {csv_path} has {len(entries)} usable clip(s); "
            "cannot carve a validation split (set validation_fraction=0)."
        )
    rng = np.random.default_rng(seed)
    by_class = collections.defaultdict(list)
    for position, entry in enumerate(entries):
        by_class[entry.label].append(position)
    chosen = []
    for label in sorted(by_class):
        positions = np.array(by_class[label])
        take = int(round(fraction * len(positions)))
        chosen.extend(rng.permutation(positions)[:take].tolist())
    if not chosen:
        largest = max(by_class, key=lambda k: len(by_class[k]))
        chosen = [int(rng.choice(by_class[largest]))]
    if len(chosen) == len(entries):
        chosen = chosen[:-1]
    chosen = set(chosen)
    train = [e for i, e in enumerate(entries) if i not in chosen]
    validation = [e for i, e in enumerate(entries) if i in chosen]
    return train, validation


class _Report:
    """Raises or records bad inputs according to `on_error`."""

    def __init__(self, on_error):
        self.on_error = on_error
        self.skipped = []

    def bad(self, error_type, message, split, clip, file):
        if self.on_error == "raise":
            raise error_type(message)
        self.skipped.append(
            {"split": split, "clip": clip, "file": file, "reason": message}
        )

    def check_rows(self, split, csv_path, entries, name):
        if not entries:
            extra = (
                f" ({len(self.skipped)} clip(s) skipped as bad)"
                if self.skipped else ""
            )
            raise ValueError(
                f"The {name} {split} split is empty: no usable clip listed "
                f"in {csv_path}{extra}."
            )

    def warn(self, name):
        if self.skipped:
            shown = "; ".join(s["reason"] for s in self.skipped[:3])
            more = len(self.skipped) - 3
            logger.warning(
                "%s: skipped %d bad clip(s) (see info['skipped']): %s%s",
                name,
                len(self.skipped),
                shown,
                f"; and {more} more" if more > 0 else "",
            )


# ----------------------------------------------------------------------------
# File checks, done once before the pipelines are built.


def _resolve_files(root, entries, validate, report, split):
    def check(entry):
        audio = os.path.join(root, "audio", *entry.clip.split("/")) + ".wav"
        folder = os.path.join(root, "visual", *entry.clip.split("/"))
        try:
            rate = 0
            if validate != "none":
                if not os.path.isfile(audio):
                    raise _BadFile(FileNotFoundError, audio, "WAV file not found")
                rate = _check_wav(audio)
            frames = _list_frames(folder)
            if validate != "none":
                for frame in frames:
                    _check_jpeg(frame)
            if validate == "decode":
                _decode_all(audio, frames)
        except _BadFile as bad:
            return entry, bad
        return dataclasses.replace(entry, audio=audio, frames=frames,
                                   rate=rate), None

    workers = min(16, (os.cpu_count() or 1) * 4)
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(check, entries))
    kept = []
    for entry, bad in results:
        if bad is None:
            kept.append(entry)
        else:
            report.bad(
                bad.error_type,
                f"{bad.reason}: {bad.path} (clip {entry.clip!r}, listed in "
                f"{entry.csv}, line {entry.line})",
                split,
                entry.clip,
                bad.path,
            )
    return kept


class _BadFile(Exception):
    def __init__(self, error_type, path, reason):
        super().__init__(f"{reason}: {path}")
        self.error_type = error_type
        self.path = path
        self.reason = reason


def _natural_key(name):
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name)]


def _list_frames(folder):
    if not os.path.isdir(folder):
        raise _BadFile(FileNotFoundError, folder, "Frame folder not found")
    names = [
        n for n in os.listdir(folder)
        if n.lower().endswith(_JPEG_EXTENSIONS)
        and os.path.isfile(os.path.join(folder, n))
    ]
    if not names:
        raise _BadFile(FileNotFoundError, folder, "No JPEG frame in folder")
    return tuple(os.path.join(folder, n) for n in sorted(names, key=_natural_key))


def _check_wav(path):
    """Checks a WAV header the way `tf.audio.decode_wav` needs it; returns
    the sample rate."""
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise _BadFile(ValueError, path,
                           "Corrupt WAV file (no RIFF/WAVE header)")
        fmt = None
        offset = 12
        while True:
            header = handle.read(8)
            if len(header) < 8:
                raise _BadFile(
                    ValueError, path,
                    "Corrupt or truncated WAV file (no complete fmt and data "
                    "chunks)",
                )
            chunk, length = header[:4], struct.unpack("<I", header[4:])[0]
            offset += 8
            if chunk == b"fmt ":
                body = handle.read(min(length, 40))
                if len(body) < 16:
                    raise _BadFile(ValueError, path,
                                   "Truncated WAV file (short fmt chunk)")
                audio_format, channels, rate, _, _, bits = struct.unpack(
                    "<HHIIHH", body[:16]
                )
                if audio_format != 1 or bits != 16:
                    raise _BadFile(
                        ValueError, path,
                        f"Unsupported WAV encoding (format {audio_format}, "
                        f"{bits} bits; tf.audio.decode_wav reads 16-bit PCM "
                        "only, convert e.g. with `ffmpeg -c:a pcm_s16le`)",
                    )
                if channels < 1 or rate < 1:
                    raise _BadFile(ValueError, path,
                                   "Corrupt WAV file (zero channels or rate)")
                fmt = (channels, rate)
            elif chunk == b"data":
                if fmt is None:
                    raise _BadFile(ValueError, path,
                                   "Corrupt WAV file (data chunk before fmt)")
                if offset + length > size:
                    raise _BadFile(
                        ValueError, path,
                        f"Truncated WAV file (header declares {length} bytes "
                        f"of audio, file holds {size - offset})",
                    )
                if length < 2 * fmt[0]:
                    raise _BadFile(ValueError, path,
                                   "Empty WAV file (no audio samples)")
                return fmt[1]
            offset += length + (length & 1)
            if offset > size:
                raise _BadFile(ValueError, path, "Truncated WAV file")
            handle.seek(offset)


def _check_jpeg(path):
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        head = handle.read(_JPEG_HEAD_BYTES)
        handle.seek(max(0, size - 1024))
        tail = handle.read()
    if head[:3] != b"\xff\xd8\xff":
        raise _BadFile(ValueError, path, "Corrupt JPEG file (no SOI marker)")
    if b"\xff\xd9" not in tail:
        raise _BadFile(ValueError, path,
                       "Truncated JPEG file (no EOI marker at its end)")
    problem = _jpeg_header_problem(head, size)
    if problem:
        raise _BadFile(ValueError, path, f"Corrupt JPEG file ({problem})")


# The header segments of a JPEG (tables, frame and scan headers) almost
# always fit in this many bytes; a header running past them is not checked.
_JPEG_HEAD_BYTES = 1 << 16
# SOF markers: C0-CF except DHT (C4), JPG (C8) and DAC (CC).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_header_problem(head, size):
    """Walks the segments from SOI to the first SOS and returns what is wrong
    with them, or `""`. Damage there makes the decoder fail; damage in the
    compressed data after SOS is decoded (with warnings) instead."""
    position, components = 2, None
    while position + 4 <= len(head):
        if head[position] != 0xFF:
            return f"no marker at byte {position}"
        while position + 1 < len(head) and head[position + 1] == 0xFF:
            position += 1  # fill bytes
        marker = head[position + 1]
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            position += 2  # markers without a length
            continue
        if marker in (0x00, 0xD8, 0xD9):
            return f"unexpected marker 0x{marker:02X} at byte {position}"
        length = int.from_bytes(head[position + 2:position + 4], "big")
        end = position + 2 + length
        if length < 2 or end > size:
            return f"bad segment length at byte {position}"
        body = head[position + 4:end]
        complete = end <= len(head)
        if marker in _SOF_MARKERS and complete:
            if len(body) < 6:
                return "short frame header"
            height = int.from_bytes(body[1:3], "big")
            width = int.from_bytes(body[3:5], "big")
            count = body[5]
            if (height == 0 or width == 0 or count not in (1, 3, 4)
                    or len(body) != 6 + 3 * count):
                return (f"bad frame header: {width}x{height}, {count} "
                        "component(s)")
            components = {body[6 + 3 * i] for i in range(count)}
        elif marker == 0xC4 and complete:
            offset = 0
            while offset < len(body):
                if offset + 17 > len(body) or body[offset] & 0xEC:
                    return "bad Huffman table"
                offset += 17 + sum(body[offset + 1:offset + 17])
            if offset != len(body):
                return "bad Huffman table"
        elif marker == 0xDB and complete:
            offset = 0
            while offset < len(body):
                offset += 1 + (128 if body[offset] >> 4 else 64)
            if offset != len(body):
                return "bad quantization table"
        elif marker == 0xDA:
            if components is None:
                return "scan before any frame header"
            if complete:
                count = body[0] if body else 0
                ids = {body[1 + 2 * i] for i in range(count)
                       if 1 + 2 * i < len(body)}
                if (not 1 <= count <= 4 or len(body) != 4 + 2 * count
                        or not ids <= components):
                    return "bad scan header"
            return ""
        position = end
    if len(head) < size:
        return ""  # the header runs past the bytes read: not checked
    return "no scan (SOS) segment"


def _decode_all(audio, frames):
    try:
        tf.audio.decode_wav(tf.io.read_file(audio))
    except (tf.errors.OpError, ValueError) as error:
        raise _BadFile(ValueError, audio,
                       f"Undecodable WAV file ({_short(error)})") from error
    for frame in frames:
        try:
            tf.io.decode_jpeg(tf.io.read_file(frame), channels=3)
        except (tf.errors.OpError, ValueError) as error:
            raise _BadFile(ValueError, frame,
                           f"Undecodable JPEG file ({_short(error)})") from error


def _short(error):
    message = getattr(error, "message", None) or str(error)
    return message.strip().splitlines()[0][-200:]


# ----------------------------------------------------------------------------
# The tf.data side.


def _slices(entries):
    return tf.data.Dataset.from_tensor_slices(
        (
            tf.constant([e.audio for e in entries], tf.string),
            tf.ragged.constant([list(e.frames) for e in entries], tf.string),
            tf.constant([e.label for e in entries], tf.int32),
        )
    )


def _digest(config, resolved):
    payload = json.dumps(
        [
            dataclasses.asdict(config),
            {s: [(e.clip, e.label, e.frames) for e in r]
             for s, r in resolved.items()},
        ],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha1(payload.encode()).hexdigest()[:12]


def _slug(text):
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower() or "data"


_TFIO_AUDIO = []
_TRANSFORMS = collections.OrderedDict()


def _transforms_for(config):
    """One `_Transforms` (with its traced functions) per configuration."""
    fields = dataclasses.asdict(config)
    del fields["name"]  # used in messages only
    key = json.dumps(fields, sort_keys=True, default=str)
    if key not in _TRANSFORMS:
        _TRANSFORMS[key] = _Transforms(config)
        while len(_TRANSFORMS) > 8:
            _TRANSFORMS.popitem(last=False)
    return _TRANSFORMS[key]


def _tfio_audio():
    """tensorflow-io's audio ops, or `None` where they do not import."""
    if not _TFIO_AUDIO:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import tensorflow_io as tfio  # noqa: PLC0415

                module = tfio.audio
                module.freq_mask, module.time_mask  # noqa: B018
        except Exception:  # Any import failure means "not available".
            module = None
        _TFIO_AUDIO.append(module)
    return _TFIO_AUDIO[0]


class _Transforms:
    """Per-example graph functions (run inside `Dataset.map`)."""

    def __init__(self, config):
        self.config = config
        self.clip_samples = int(round(config.clip_seconds * config.sample_rate))
        self.tile_samples = int(round(config.tile_seconds * config.sample_rate))
        if config.spectrogram_size:
            freq, time = config.spectrogram_size
        else:
            freq = config.n_fft // 2 + 1
            time = 1 + self.clip_samples // config.hop_length
        self.audio_shape = (freq, time, 1)
        self.visual_shape = (
            config.frames, config.image_size, config.image_size, 3
        )
        self.mean = tf.constant(IMAGENET_MEAN, tf.float32)
        self.std = tf.constant(IMAGENET_STD, tf.float32)
        self.tfio = None
        if config.spec_augment:
            implementation = config.spec_augment["implementation"]
            if implementation != "tf":
                self.tfio = _tfio_audio()
                if self.tfio is None and implementation == "tfio":
                    raise ImportError(
                        "spec_augment implementation 'tfio' asked for, but "
                        "tensorflow_io does not import here."
                    )
        # Traced once per configuration (and reused by every pipeline and
        # `numpy()` call built from it), without autograph: the code uses
        # explicit tf.cond / tf.while_loop.
        path = tf.TensorSpec([], tf.string)
        paths = tf.TensorSpec([None], tf.string)
        label = tf.TensorSpec([], tf.int32)
        stage_audio = tf.TensorSpec(
            [self.tile_samples] if config.random_audio_crop
            else self.audio_shape,
            tf.float32,
        )

        def compile_(function, *signature):
            return tf.function(function, input_signature=signature,
                               autograph=False)

        self.evaluation_example = compile_(
            self._evaluation_example, path, paths, label)
        self.training_example = compile_(
            self._training_example, path, paths, label)
        self.training_stage_one = compile_(
            self._training_stage_one, path, paths, label)
        self.training_stage_two = compile_(
            self._training_stage_two, stage_audio, paths, paths, label)

    # -- whole examples ------------------------------------------------------

    def _evaluation_example(self, audio_path, frame_paths, label):
        audio = self.spectrogram(self.crop(self.waveform(audio_path), False))
        visual = self.visual(frame_paths, None, training=False)
        return {"audio": audio, "visual": visual}, label

    def _training_example(self, audio_path, frame_paths, label):
        wave = self.waveform(audio_path)
        audio = self.spectrogram(self.crop(wave, True))
        audio = self.maybe_spec_augment(audio)
        visual = self.visual(frame_paths, None, training=True)
        return {"audio": audio, "visual": visual}, label

    def _training_stage_one(self, audio_path, frame_paths, label):
        """Deterministic part of a training example (cached)."""
        wave = self.waveform(audio_path)
        if self.config.random_audio_crop:
            audio = wave
        else:
            audio = self.spectrogram(self.crop(wave, False))
        contents = tf.map_fn(
            lambda path: self.read(path, "JPEG"),
            frame_paths,
            fn_output_signature=tf.string,
        )
        return audio, frame_paths, contents, label

    def _training_stage_two(self, audio, frame_paths, contents, label):
        """Random part of a training example (after the cache)."""
        if self.config.random_audio_crop:
            audio = self.spectrogram(self.crop(audio, True))
        audio = self.maybe_spec_augment(audio)
        visual = self.visual(frame_paths, contents, training=True)
        return {"audio": audio, "visual": visual}, label

    # -- reading with a guard that names the file ----------------------------

    def read(self, path, kind):
        """Reads a file and asserts, in the graph, the structure its decoder
        needs; a failed assertion's message names the file."""
        contents = tf.io.read_file(path)
        if kind == "WAV":
            ok = _wav_structure_ok(contents)
            reason = (
                "keras_dgl: corrupt, truncated or non-16-bit-PCM WAV file:"
            )
        else:
            ok = _jpeg_markers_ok(contents)
            reason = "keras_dgl: corrupt or truncated JPEG file:"
        check = tf.debugging.Assert(ok, [reason, path], summarize=1)
        with tf.control_dependencies([check]):
            return tf.identity(contents)

    # -- audio -----------------------------------------------------------------

    def waveform(self, path):
        wave, rate = tf.audio.decode_wav(self.read(path, "WAV"))
        wave = tf.reduce_mean(wave, axis=1)
        target = self.config.sample_rate
        wave = tf.cond(
            tf.equal(rate, target),
            lambda: wave,
            lambda: _resample(wave, rate, target),
        )
        length = tf.maximum(tf.shape(wave)[0], 1)
        wave = tf.pad(wave, [[0, length - tf.shape(wave)[0]]])
        repeats = (self.tile_samples + length - 1) // length
        wave = tf.tile(wave, [repeats])[: self.tile_samples]
        wave = tf.clip_by_value(wave, -1.0, 1.0)
        return tf.ensure_shape(wave, [self.tile_samples])

    def crop(self, wave, training):
        slack = self.tile_samples - self.clip_samples
        if slack == 0:
            return wave
        if training and self.config.random_audio_crop:
            start = tf.random.uniform([], 0, slack + 1, dtype=tf.int32)
        else:
            start = slack // 2
        return tf.ensure_shape(
            wave[start:start + self.clip_samples], [self.clip_samples]
        )

    def spectrogram(self, wave):
        n_fft, hop = self.config.n_fft, self.config.hop_length
        padded = tf.pad(wave, [[n_fft // 2, n_fft // 2]], mode="REFLECT")
        stft = tf.signal.stft(
            padded,
            frame_length=n_fft,
            frame_step=hop,
            fft_length=n_fft,
            window_fn=tf.signal.hann_window,
            pad_end=False,
        )
        spec = tf.math.log(tf.abs(stft) + _LOG_FLOOR)
        spec = tf.transpose(spec)[..., None]  # (freq, time, 1)
        if self.config.spectrogram_size:
            spec = tf.image.resize(spec, self.config.spectrogram_size)
        return tf.ensure_shape(spec, self.audio_shape)

    def maybe_spec_augment(self, spec):
        options = self.config.spec_augment
        if not options:
            return spec
        freq, time, _ = self.audio_shape
        freq_param = max(1, int(options.get("freq_mask_param", freq // 10)))
        time_param = max(1, int(options.get("time_mask_param", time // 10)))
        fill = tf.reduce_mean(spec)
        centred = spec[..., 0] - fill  # (freq, time), mask value 0 = mean
        for _ in range(int(options["num_masks"])):
            if self.tfio is not None:
                # tensorflow-io masks a (time, freq) array with zeros.
                flipped = tf.transpose(centred)
                flipped = self.tfio.freq_mask(flipped, param=freq_param)
                flipped = self.tfio.time_mask(flipped, param=time_param)
                centred = tf.transpose(flipped)
            else:
                centred = _mask(centred, 0, freq_param)
                centred = _mask(centred, 1, time_param)
        return tf.ensure_shape((centred + fill)[..., None], self.audio_shape)

    # -- visual ------------------------------------------------------------

    def visual(self, frame_paths, contents, training):
        count = self.config.frames
        indices = _frame_indices(tf.shape(frame_paths)[0], count, training)
        paths = tf.gather(frame_paths, indices)
        if contents is None:
            data = [self.read(paths[i], "JPEG") for i in range(count)]
        else:
            selected = tf.gather(contents, indices)
            data = [selected[i] for i in range(count)]
        size = [self.config.image_size, self.config.image_size]
        if training and self.config.augment:
            first = tf.io.extract_jpeg_shape(data[0])
            begin, extent, _ = tf.image.sample_distorted_bounding_box(
                first,
                bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
                min_object_covered=0.0,
                aspect_ratio_range=(3.0 / 4.0, 4.0 / 3.0),
                area_range=(0.08, 1.0),
                max_attempts=10,
                use_image_if_no_bounding_boxes=True,
            )
            relative = tf.cast(
                tf.concat([begin[:2], extent[:2]], 0), tf.float32
            ) / tf.cast(tf.tile(first[:2], [2]), tf.float32)
            images = []
            for item in data:
                window = _crop_window(relative, tf.io.extract_jpeg_shape(item))
                image = tf.io.decode_and_crop_jpeg(item, window, channels=3)
                images.append(tf.image.resize(image, size, antialias=True))
            images = tf.stack(images)
            images = tf.cond(
                tf.random.uniform([]) < 0.5,
                lambda: tf.reverse(images, axis=[2]),
                lambda: images,
            )
        else:
            images = tf.stack(
                [
                    tf.image.resize(
                        tf.io.decode_jpeg(item, channels=3), size, antialias=True
                    )
                    for item in data
                ]
            )
        images = (images / 255.0 - self.mean) / self.std
        return tf.ensure_shape(images, self.visual_shape)


def _read_uint(contents, position, size):
    """Little-endian unsigned int of `size` bytes at `position` (0 past the
    end), as int64."""
    length = tf.cast(tf.strings.length(contents), tf.int64)
    position = tf.cast(tf.minimum(position, length), tf.int32)
    raw = tf.io.decode_raw(
        tf.strings.substr(contents, position, size), tf.uint8, fixed_length=size
    )
    weights = tf.constant([256**i for i in range(size)], tf.int64)
    return tf.reduce_sum(tf.cast(raw, tf.int64) * weights)


def _wav_structure_ok(contents):
    """Graph version of `_check_wav`: RIFF/WAVE magic, a 16-bit PCM fmt
    chunk, and a complete, non-empty data chunk."""
    length = tf.cast(tf.strings.length(contents), tf.int64)
    head = tf.strings.substr(contents, 0, 12)
    magic = tf.logical_and(
        tf.equal(tf.strings.substr(head, 0, 4), b"RIFF"),
        tf.equal(
            tf.strings.substr(
                tf.strings.join([head, b"\x00" * 12]), 8, 4
            ),
            b"WAVE",
        ),
    )

    def keep_going(offset, found, fmt_ok, data_end, data_size, steps):
        return tf.logical_and(
            tf.logical_and(offset + 8 <= length, tf.logical_not(found)),
            steps < 64,
        )

    def step(offset, found, fmt_ok, data_end, data_size, steps):
        chunk = tf.strings.substr(
            contents, tf.cast(tf.minimum(offset, length), tf.int32), 4
        )
        size = _read_uint(contents, offset + 4, 4)
        is_fmt = tf.equal(chunk, b"fmt ")
        pcm16 = tf.logical_and(
            tf.equal(_read_uint(contents, offset + 8, 2), 1),
            tf.equal(_read_uint(contents, offset + 22, 2), 16),
        )
        fmt_ok = tf.logical_or(fmt_ok, tf.logical_and(is_fmt, pcm16))
        is_data = tf.equal(chunk, b"data")
        data_end = tf.where(is_data, offset + 8 + size, data_end)
        data_size = tf.where(is_data, size, data_size)
        next_offset = offset + 8 + size + size % 2
        return next_offset, is_data, fmt_ok, data_end, data_size, steps + 1

    zero = tf.constant(0, tf.int64)
    _, found, fmt_ok, data_end, data_size, _ = tf.while_loop(
        keep_going,
        step,
        (tf.constant(12, tf.int64), tf.constant(False), tf.constant(False),
         zero, zero, tf.constant(0)),
    )
    return tf.reduce_all(
        tf.stack([magic, found, fmt_ok, data_end <= length, data_size > 0])
    )


def _jpeg_markers_ok(contents):
    """Graph version of `_check_jpeg`: SOI at the start, EOI in the last
    1024 bytes, and sound segments up to the first scan (the frame header's
    size and component count, every segment length); Huffman and
    quantization tables are checked up front only."""
    length = tf.strings.length(contents)
    soi = tf.equal(tf.strings.substr(contents, 0, 3), b"\xff\xd8\xff")
    tail = tf.io.decode_raw(
        tf.strings.substr(contents, tf.maximum(length - 1024, 0), 1024),
        tf.uint8,
    )
    eoi = tf.reduce_any(
        tf.logical_and(tf.equal(tail[:-1], 0xFF), tf.equal(tail[1:], 0xD9))
    )
    return tf.reduce_all(tf.stack([soi, eoi, _jpeg_segments_ok(contents)]))


def _byte(contents, position):
    """Unsigned byte at `position` (0 past the end), as int32."""
    length = tf.strings.length(contents)
    raw = tf.io.decode_raw(
        tf.strings.substr(contents, tf.minimum(position, length), 1),
        tf.uint8, fixed_length=1,
    )
    return tf.cast(raw[0], tf.int32)


def _jpeg_segments_ok(contents):
    length = tf.strings.length(contents)
    sof_markers = tf.constant(sorted(_SOF_MARKERS), tf.int32)

    def keep_going(position, done, ok, seen_sof, steps):
        return tf.logical_and(tf.logical_not(done), steps < 512)

    def step(position, done, ok, seen_sof, steps):
        lead = _byte(contents, position)
        marker = _byte(contents, position + 1)
        size = _byte(contents, position + 2) * 256 + _byte(contents, position + 3)
        end = position + 2 + size
        standalone = tf.logical_or(
            tf.equal(marker, 0x01),
            tf.logical_and(marker >= 0xD0, marker <= 0xD7),
        )
        fill = tf.equal(marker, 0xFF)
        short = position + 4 > length
        bad = tf.reduce_any(tf.stack([
            tf.not_equal(lead, 0xFF),
            tf.logical_and(tf.logical_not(fill), tf.logical_and(
                tf.logical_not(standalone), tf.logical_or(short, tf.logical_or(
                    size < 2, end > length)))),
            tf.equal(marker, 0x00), tf.equal(marker, 0xD8),
            tf.equal(marker, 0xD9),
        ]))
        is_sof = tf.reduce_any(tf.equal(marker, sof_markers))
        count = _byte(contents, position + 9)
        height = _byte(contents, position + 5) * 256 + _byte(contents, position + 6)
        width = _byte(contents, position + 7) * 256 + _byte(contents, position + 8)
        sof_ok = tf.reduce_all(tf.stack([
            height > 0, width > 0, tf.equal(size, 8 + 3 * count),
            tf.reduce_any(tf.equal(count, [1, 3, 4])),
        ]))
        bad = tf.logical_or(bad, tf.logical_and(is_sof, tf.logical_not(sof_ok)))
        is_sos = tf.equal(marker, 0xDA)
        ok = tf.logical_and(ok, tf.logical_not(bad))
        ok = tf.logical_and(ok, tf.logical_or(tf.logical_not(is_sos), seen_sof))
        done = tf.reduce_any(tf.stack([bad, is_sos]))
        step_size = tf.where(fill, 1, tf.where(standalone, 2, 2 + size))
        return (position + step_size, done, ok,
                tf.logical_or(seen_sof, is_sof), steps + 1)

    # A header that reaches no scan within the step budget is corrupt.
    _, done, ok, _, _ = tf.while_loop(
        keep_going,
        step,
        (tf.constant(2), tf.constant(False), tf.constant(True),
         tf.constant(False), tf.constant(0)),
    )
    return tf.logical_and(ok, done)


def _frame_indices(count, frames, training):
    """One frame index per equal segment of `count` frames: shape
    `(frames,)` for a scalar `count`, `(batch, frames)` for a vector."""
    position = tf.range(frames, dtype=tf.float32)
    total = tf.cast(count, tf.float32)[..., None]
    if training:
        start = tf.floor(position * total / frames)
        stop = tf.maximum(tf.floor((position + 1.0) * total / frames), start + 1)
        picked = start + tf.floor(
            tf.random.uniform(tf.shape(start)) * (stop - start))
    else:
        picked = tf.floor((position + 0.5) * total / frames)
    return tf.minimum(tf.cast(picked, tf.int32),
                      tf.cast(total, tf.int32) - 1)


def _crop_window(relative, shape):
    """Scales a relative `[y, x, h, w]` box to a frame of `shape`."""
    height_width = tf.cast(shape[:2], tf.float32)
    scale = tf.concat([height_width, height_width], 0)
    window = tf.cast(tf.round(relative * scale), tf.int32)
    limits = tf.concat([shape[:2], shape[:2]], 0)
    size = tf.clip_by_value(window[2:], 1, limits[2:])
    start = tf.clip_by_value(window[:2], 0, limits[:2] - size)
    return tf.concat([start, size], 0)


def _resample(wave, rate, target):
    """Band-limited resampling by zero-padding / truncating the spectrum."""
    length = tf.shape(wave)[0]
    new_length = tf.cast(
        tf.round(
            tf.cast(length, tf.float64) * target / tf.cast(rate, tf.float64)
        ),
        tf.int32,
    )
    new_length = tf.maximum(new_length, 1)
    spectrum = tf.signal.rfft(wave, fft_length=[length])
    bins = new_length // 2 + 1
    spectrum = spectrum[:bins]
    spectrum = tf.pad(spectrum, [[0, bins - tf.shape(spectrum)[0]]])
    resampled = tf.signal.irfft(spectrum, fft_length=[new_length])
    return resampled * tf.cast(new_length, tf.float32) / tf.cast(
        length, tf.float32
    )


def _mask(spec, axis, param):
    """Zeroes one random band of width in [0, param) along `axis`."""
    size = tf.shape(spec)[axis]
    width = tf.random.uniform([], 0, param, dtype=tf.int32)
    width = tf.minimum(width, size)
    start = tf.random.uniform([], 0, size - width + 1, dtype=tf.int32)
    span = tf.range(size)
    band = tf.logical_and(span >= start, span < start + width)
    band = band[:, None] if axis == 0 else band[None, :]
    return tf.where(band, tf.zeros_like(spec), spec)
