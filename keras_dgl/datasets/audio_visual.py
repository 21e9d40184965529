"""Shared tf.data machinery of the audio-visual data sets.

`crema_d`, `kinetics_sounds`, `ave` and `vggsound` are presets of
`audio_visual`, which reads clip lists from CSV files, checks the files up
front, and builds train / validation / test pipelines of log-spectrograms and
video frames (or reads a folder written by `prepare`). Its parts live in the
private modules `_av_config` (arguments), `_csv_lists` (lists, labels,
validation carve), `_file_checks` (checks before the pipelines are built),
`_pipelines` (the tf.data side) and `_byte_checks` (in-graph file checks).
"""

from __future__ import annotations

import collections
import dataclasses
import os

import numpy as np
import tensorflow as tf

from keras_dgl.datasets._av_config import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    _augment_mode,
    _check_arguments,
    _make_config,
)
from keras_dgl.datasets._csv_lists import (
    _carve_validation,
    _read_source,
)
from keras_dgl.datasets._file_checks import _resolve_files
from keras_dgl.datasets._pipelines import (
    _digest,
    _slices,
    _slug,
    _transforms_for,
)
from keras_dgl.datasets.splits import DatasetSplits

# The ImageNet constants stay importable from here, where they were first.
__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "audio_visual"]


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
