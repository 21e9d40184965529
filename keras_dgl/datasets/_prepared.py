"""Reading a folder written by `keras_dgl.datasets.prepare`.

A prepared folder holds TFRecord shards of decoded clips and one
`manifest.json`, written last, that lists every shard with its size and
SHA-256. The manifest is what marks the folder as prepared: a run of
`prepare` that was interrupted leaves no manifest, so nothing here reads it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os

import numpy as np
import tensorflow as tf

from keras_dgl.datasets._av_config import IMAGENET_MEAN, IMAGENET_STD
from keras_dgl.datasets._csv_lists import _carve_validation, _Entry
from keras_dgl.datasets._pipelines import _frame_indices
from keras_dgl.datasets._pipelines import _random_resized_crop_box
from keras_dgl.datasets._pipelines import _transforms_for
from keras_dgl.datasets.splits import DatasetSplits

FORMAT = "keras_dgl.prepared_audio_visual"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
# Written by `prepare` before its first shard, removed after the manifest.
PLAN_NAME = "prepare-plan.json"
# The loader arguments that fix what the shards hold. Reading with other
# values would silently give other inputs than the ones asked for.
STORED_PARAMETERS = (
    "sample_rate",
    "clip_seconds",
    "tile_seconds",
    "n_fft",
    "hop_length",
    "spectrogram_size",
    "frames",
)
RERUN = (
    "Re-run keras_dgl.datasets.prepare (`keras-dgl prepare`) into a new "
    "folder, or use the raw data folder."
)
# Bounds the training shuffle buffer by memory, not by a record count:
# records range from ~100 KB (one frame, a spectrogram) to several MB.
_SHUFFLE_BUFFER_BYTES = 256 << 20
_PARALLEL_READS = 8
_READ_BUFFER_BYTES = 4 << 20


def is_prepared(root):
    """Whether `root` is a prepared folder (it holds a manifest)."""
    return os.path.isfile(os.path.join(os.fspath(root), MANIFEST_NAME))


def check_not_unfinished(root):
    """Raises if `root` holds an interrupted `prepare` (a plan, no manifest)."""
    if os.path.isfile(os.path.join(os.fspath(root), PLAN_NAME)) and (
        not is_prepared(root)
    ):
        raise ValueError(
            f"{root} holds an unfinished keras_dgl.datasets.prepare run (no "
            f"{MANIFEST_NAME} yet). Run prepare again with the same arguments "
            "to finish it, then read the folder."
        )


def record_features():
    """The `tf.io.parse_single_example` spec of one stored clip."""
    return {
        "index": tf.io.FixedLenFeature([], tf.int64),
        "label": tf.io.FixedLenFeature([], tf.int64),
        "audio": tf.io.FixedLenFeature([], tf.string),
        "frames": tf.io.FixedLenFeature([], tf.string),
        "num_frames": tf.io.FixedLenFeature([], tf.int64),
        "source_size": tf.io.FixedLenFeature([2], tf.int64),
    }


def sha256_of(path):
    """Hex SHA-256 of a file, read in 8 MB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(8 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(root):
    """Returns the parsed manifest of `root`; a clear error if unreadable or
    of another format or version."""
    path = os.path.join(os.fspath(root), MANIFEST_NAME)
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"Unreadable prepared-data manifest {path} ({error}). {RERUN}"
        ) from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not a keras_dgl prepared-data manifest (expected "
            f"format {FORMAT!r}). {RERUN}"
        )
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{path} was written in prepared-data format version {version}; "
            f"this keras_dgl reads version {FORMAT_VERSION}. {RERUN}"
        )
    return manifest


def check_parameters(manifest, path, config, expected_classes):
    """Raises if the loader's arguments disagree with what was prepared."""
    where = os.path.join(path, MANIFEST_NAME)
    if manifest["dataset"] != config.name:
        raise ValueError(
            f"{path} holds prepared {manifest['dataset']} data, but it is "
            f"being read as {config.name}. Use the matching loader, or "
            f"{RERUN[0].lower() + RERUN[1:]}"
        )
    stored = manifest["preprocessing"]
    asked = dataclasses.asdict(config)
    for key in STORED_PARAMETERS:
        have, want = stored[key], asked[key]
        if isinstance(have, list):
            have = tuple(have)
        if isinstance(have, float) or isinstance(want, float):
            same = want is not None and have is not None and math.isclose(
                float(have), float(want), rel_tol=0, abs_tol=1e-9)
        else:
            same = have == want
        if not same:
            raise ValueError(
                f"Loader argument {key}={want!r} disagrees with the prepared "
                f"data in {where} ({key}={have!r}). Pass {key}={have!r}, or "
                f"{RERUN[0].lower() + RERUN[1:]}"
            )
    audio = manifest["storage"]["audio"]
    if config.random_audio_crop and audio["format"] != "waveform":
        raise ValueError(
            f"random_audio_crop needs the waveform, but {where} stores "
            "spectrograms. Prepare with audio_format='waveform' or read with "
            "random_audio_crop=False."
        )
    if expected_classes is not None and [str(c) for c in expected_classes] != (
        manifest["class_names"]
    ):
        raise ValueError(
            f"The class list asked for ({list(expected_classes)}) differs from "
            f"the one prepared in {where} ({manifest['class_names']}). "
            f"{RERUN}"
        )


def verify_shards(root, manifest, splits, verify):
    """Checks that each shard of `splits` exists with its recorded size
    (`verify="size"`) and, with `verify="checksum"`, its SHA-256."""
    if verify not in ("size", "checksum"):
        raise ValueError(f"verify must be 'size' or 'checksum', got {verify!r}.")
    for split in splits:
        for shard in manifest["splits"][split]["shards"]:
            path = os.path.join(root, shard["file"])
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"Prepared shard missing: {path} (listed in "
                    f"{MANIFEST_NAME}). {RERUN}"
                )
            size = os.path.getsize(path)
            if size != shard["bytes"]:
                raise ValueError(
                    f"Prepared shard {path} has {size} bytes; the manifest "
                    f"records {shard['bytes']} (truncated or replaced). {RERUN}"
                )
            if verify == "checksum" and sha256_of(path) != shard["sha256"]:
                raise ValueError(
                    f"Prepared shard {path} fails its SHA-256 check (the file "
                    f"is corrupt). {RERUN}"
                )


class _Reader:
    """Graph functions that turn stored records into examples."""

    def __init__(self, manifest, config):
        self.config = config
        self.transforms = _transforms_for(config)
        storage = manifest["storage"]
        self.audio_format = storage["audio"]["format"]
        self.audio_dtype = tf.as_dtype(storage["audio"]["dtype"])
        self.audio_stored_shape = tuple(storage["audio"]["shape"])
        frames = storage["frames"]
        self.frame_shape = (frames["height"], frames["width"], 3)
        self.frame_bytes = int(np.prod(self.frame_shape))
        self.features = record_features()

    def stored_frames(self, record, training):
        """The clip's `frames` frames, uint8 `(frames, H, W, 3)`, chosen as
        the raw loader chooses them (one per equal segment)."""
        count = self.config.frames
        indices = _frame_indices(record["num_frames"], count, training)
        chunks = tf.strings.substr(
            record["frames"], indices * self.frame_bytes,
            tf.fill([count], self.frame_bytes),
        )
        pixels = tf.io.decode_raw(chunks, tf.uint8)
        return tf.reshape(pixels, (count,) + self.frame_shape)

    def parse(self, serialized, training):
        """Stage one: the compact form of one example (stored audio, the
        chosen uint8 frames). Device mode delivers it as it is; the training
        shuffle buffer holds it (a quarter to a third of a record with all
        frames, a fifth of the finished float32 example)."""
        record = tf.io.parse_single_example(serialized, self.features)
        features = {
            "audio": tf.reshape(
                tf.io.decode_raw(record["audio"], self.audio_dtype),
                self.audio_stored_shape,
            ),
            "visual": self.stored_frames(record, training),
        }
        return (features, tf.cast(record["label"], tf.int32),
                tf.cast(record["source_size"], tf.int32))

    def finish(self, features, label, source_size, training):
        """Stage two, host mode: the raw loader's transforms."""
        return ({"audio": self.audio(features["audio"], training),
                 "visual": self.visual(features["visual"], source_size,
                                       training)}, label)

    def audio(self, stored, training):
        """Host mode: the float32 log-spectrogram `(freq, time, 1)`."""
        t = self.transforms
        if self.audio_format == "waveform":
            wave = tf.cast(stored, tf.float32) / 32768.0
            spec = t.spectrogram(t.crop(wave, training))
        else:
            spec = tf.ensure_shape(tf.cast(stored, tf.float32), t.audio_shape)
        return t.maybe_spec_augment(spec) if training else spec

    def visual(self, frames, source_size, training):
        """Host mode: float32 `(frames, size, size, 3)`, the raw loader's
        transform applied to the stored frames."""
        t, config = self.transforms, self.config
        size = [config.image_size, config.image_size]
        if training and config.augment:
            # The box is drawn in the source frame's pixels, so its aspect
            # ratio follows the source also where storage stretched it.
            relative = _random_resized_crop_box(tf.concat([source_size, [3]], 0))
            # Bilinear, without the antialiasing of the raw loader's crops:
            # from 256-pixel frames a crop is at most 1.5x the output size,
            # and tf.image.resize's antialiased kernel costs 5x more here.
            box = tf.concat([relative[:2], relative[:2] + relative[2:]], 0)
            count = config.frames
            images = tf.image.crop_and_resize(
                tf.cast(frames, tf.float32),
                tf.tile(box[None], [count, 1]),
                tf.range(count),
                size,
            )
            images = tf.cond(
                tf.random.uniform([]) < 0.5,
                lambda: tf.reverse(images, axis=[2]),
                lambda: images,
            )
        else:
            images = tf.image.resize(frames, size, antialias=True)
        images = (images / 255.0 - t.mean) / t.std
        return tf.ensure_shape(images, t.visual_shape)


def load(root, config, *, expected_classes, validation_fraction, split_seed,
         batch_size, augment, shuffle_buffer, cache, num_parallel_calls,
         verify):
    """`DatasetSplits` of a prepared folder; see `audio_visual`."""
    root = os.fspath(root)
    if cache:
        raise ValueError(
            f"cache= applies to raw folders; {root} is prepared data, which is "
            "read straight from its shards. Drop the cache option."
        )
    manifest = read_manifest(root)
    check_parameters(manifest, root, config, expected_classes)
    stored_splits = manifest["splits"]
    verify_shards(root, manifest, list(stored_splits), verify)
    classes = manifest["class_names"]
    reader = _Reader(manifest, config)
    parallel = num_parallel_calls or tf.data.AUTOTUNE
    device = augment == "device"

    clips = {
        split: [_Entry(c[0], c[1], "", i) for i, c in
                enumerate(stored_splits[split]["clips"])]
        for split in stored_splits
    }
    stored = {
        split: np.array([c[2] for c in stored_splits[split]["clips"]], bool)
        for split in stored_splits
    }
    # The validation carve is drawn from the training list exactly as the
    # raw loader draws it (same entries, same order, same seed), so a given
    # split_seed selects the same clips from raw and prepared data.
    carved = None
    if "validation" not in stored_splits:
        _, held_out = _carve_validation(
            clips["train"], validation_fraction, split_seed,
            os.path.join(root, MANIFEST_NAME),
        )
        carved = np.zeros(len(clips["train"]), bool)
        carved[[entry.line for entry in held_out]] = True

    def members(split):
        """(source split, keep mask over its list) of a delivered split."""
        if carved is not None and split in ("train", "validation"):
            keep = stored["train"] & (carved if split == "validation"
                                      else ~carved)
            return "train", keep
        return split, stored[split]

    def records(split, training):
        source, keep = members(split)
        shards = stored_splits[source]["shards"]
        files = [os.path.join(root, shard["file"]) for shard in shards]
        dataset = tf.data.Dataset.from_tensor_slices(files)
        if training:
            dataset = dataset.shuffle(
                len(files), seed=split_seed, reshuffle_each_iteration=True
            )
        longest = max(shard["records"] for shard in shards)
        dataset = dataset.interleave(
            lambda path: tf.data.TFRecordDataset(
                path, buffer_size=_READ_BUFFER_BYTES
            ),
            cycle_length=min(len(files), _PARALLEL_READS),
            # Evaluation keeps list order: each shard is read whole in turn,
            # the next ones already being read ahead.
            block_length=1 if training else longest,
            num_parallel_calls=tf.data.AUTOTUNE,
            deterministic=True,
        )
        if carved is not None and source == "train":
            mask = tf.constant(keep)
            index_only = {"index": tf.io.FixedLenFeature([], tf.int64)}
            dataset = dataset.filter(
                lambda s: tf.gather(
                    mask, tf.io.parse_single_example(s, index_only)["index"]
                )
            )
        return dataset, source, keep

    def pipeline(split, training):
        dataset, source, keep = records(split, training)
        dataset = dataset.map(
            lambda s: reader.parse(s, training), num_parallel_calls=parallel
        )
        if training:
            # After parsing, so that the buffer holds the compact form (the
            # chosen uint8 frames, the stored audio); the random choices per
            # example do not depend on the order.
            element_bytes = int(np.prod(reader.audio_stored_shape)) * (
                reader.audio_dtype.size) + config.frames * reader.frame_bytes
            count = int(keep.sum())
            buffer = shuffle_buffer or max(
                batch_size,
                min(count, _SHUFFLE_BUFFER_BYTES // element_bytes),
            )
            dataset = dataset.shuffle(
                max(1, int(buffer)), seed=split_seed,
                reshuffle_each_iteration=True,
            )
        if device:
            dataset = dataset.map(lambda features, label, _: (features, label))
        else:
            dataset = dataset.map(
                lambda features, label, size: reader.finish(
                    features, label, size, training),
                num_parallel_calls=parallel,
            )
        return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)

    wanted_validation = "validation" in stored_splits or validation_fraction > 0
    counts = {}
    class_counts = {}
    for split in ("train", "validation", "test"):
        if split == "validation" and not wanted_validation:
            counts[split], class_counts[split] = 0, [0] * len(classes)
            continue
        source, keep = members(split)
        labels = np.array([c.label for c in clips[source]], int)[keep]
        counts[split] = int(keep.sum())
        class_counts[split] = np.bincount(
            labels, minlength=len(classes)).tolist()
        if counts[split] == 0 and split != "validation":
            raise ValueError(
                f"The prepared {config.name} {split} split in {root} is "
                f"empty. {RERUN}"
            )
    has_validation = wanted_validation and counts["validation"] > 0
    validation_source, validation_keep = members("validation")
    transforms = reader.transforms
    info = {
        "name": config.name,
        "root": root,
        "prepared": True,
        "manifest": os.path.join(root, MANIFEST_NAME),
        "counts": counts,
        "class_counts": class_counts,
        "validation_clips": (
            [c.clip for c, k in zip(clips[validation_source], validation_keep)
             if k] if has_validation else []
        ),
        "skipped": manifest.get("skipped", []),
        "num_skipped": len(manifest.get("skipped", [])),
        "preprocessing": dataclasses.asdict(config),
        "storage": manifest["storage"],
        "augment": augment,
        "cache": False,
    }
    input_shapes = {
        "audio": transforms.audio_shape,
        "visual": transforms.visual_shape,
    }
    preprocessing = {}
    if device:
        info["delivered"] = {
            "audio": (reader.audio_stored_shape, reader.audio_dtype.name),
            "visual": ((config.frames,) + reader.frame_shape, "uint8"),
        }
        preprocessing = device_preprocessing(manifest, config)
    return DatasetSplits(
        train=pipeline("train", True),
        validation=pipeline("validation", False) if has_validation else None,
        test=pipeline("test", False),
        num_classes=len(classes),
        class_names=list(classes),
        input_shapes=input_shapes,
        info=info,
        sources={
            split: (lambda split=split: pipeline(split, False))
            for split in ("train", "validation", "test")
            if split != "validation" or has_validation
        },
        preprocessing=preprocessing,
    )


def device_preprocessing(manifest, config):
    """The Keras layers that finish, inside the model, what device mode
    delivers: `{"audio": layer, "visual": layer}`."""
    import keras  # noqa: PLC0415

    from keras_dgl import preprocessing  # noqa: PLC0415

    storage = manifest["storage"]
    transforms = _transforms_for(config)
    freq, time, _ = transforms.audio_shape
    audio_layers = []
    if storage["audio"]["format"] == "waveform":
        audio_layers += [
            preprocessing.RandomAudioCrop(
                transforms.clip_samples,
                random=config.random_audio_crop,
                scale=1.0 / 32768.0,
                dtype="float32",
            ),
            preprocessing.LogSpectrogram(
                n_fft=config.n_fft,
                hop_length=config.hop_length,
                output_size=config.spectrogram_size,
                dtype="float32",
            ),
        ]
    if config.spec_augment:
        options = config.spec_augment
        audio_layers.append(
            preprocessing.SpecAugment(
                freq_mask_param=max(
                    1, int(options.get("freq_mask_param", freq // 10))),
                time_mask_param=max(
                    1, int(options.get("time_mask_param", time // 10))),
                num_masks=int(options["num_masks"]),
                dtype="float32",
            )
        )
    if not audio_layers:
        # Spectrograms are stored in float16; the model sees float32.
        audio_layers.append(keras.layers.Identity(dtype="float32"))
    mean = np.array(IMAGENET_MEAN) * 255.0
    variance = (np.array(IMAGENET_STD) * 255.0) ** 2
    visual = keras.Sequential(
        [
            preprocessing.RandomResizedCrop(
                config.image_size,
                config.image_size,
                scale=(0.08, 1.0) if config.augment else (1.0, 1.0),
                ratio=(3.0 / 4.0, 4.0 / 3.0) if config.augment else None,
                horizontal_flip=config.augment,
                dtype="float32",
            ),
            keras.layers.Normalization(
                mean=mean.tolist(), variance=variance.tolist(), dtype="float32"
            ),
        ],
        name="visual_preprocessing",
    )
    audio = keras.Sequential(audio_layers, name="audio_preprocessing")
    # Built here, eagerly: built lazily inside a compiled JAX step, the
    # Normalization constants would be leaked tracers.
    audio.build((None,) + tuple(storage["audio"]["shape"]))
    frames = storage["frames"]
    visual.build((None, config.frames, frames["height"], frames["width"], 3))
    return {"audio": audio, "visual": visual}
