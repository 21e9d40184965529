"""The tf.data side of the audio-visual loaders: per-example graph functions
that read, crop and transform a clip's audio and frames.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import re
import warnings

import tensorflow as tf

from keras_dgl.datasets._av_config import (
    IMAGENET_MEAN,
    IMAGENET_STD,
)
from keras_dgl.datasets._byte_checks import (
    _jpeg_markers_ok,
    _wav_structure_ok,
)


_LOG_FLOOR = 1e-7


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
            relative = _random_resized_crop_box(tf.io.extract_jpeg_shape(data[0]))
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

def _random_resized_crop_box(image_shape):
    """A published random-resized-crop box of an image, relative to its size.

    Scale in [0.08, 1] of the area and aspect ratio in [3/4, 4/3], as
    torchvision's `RandomResizedCrop`; returns `(top, left, height, width)`
    as fractions of the image's height and width.
    """
    begin, extent, _ = tf.image.sample_distorted_bounding_box(
        image_shape,
        bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
        min_object_covered=0.0,
        aspect_ratio_range=(3.0 / 4.0, 4.0 / 3.0),
        area_range=(0.08, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    return tf.cast(tf.concat([begin[:2], extent[:2]], 0), tf.float32) / tf.cast(
        tf.tile(image_shape[:2], [2]), tf.float32
    )


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
