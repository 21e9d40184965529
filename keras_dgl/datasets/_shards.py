"""`prepare`'s decoding and shard writing: records, atomic files, fsyncs."""

from __future__ import annotations

import collections
import concurrent.futures
import json
import os

import numpy as np
import tensorflow as tf

from keras_dgl.datasets import _prepared
from keras_dgl.datasets._file_checks import (
    _BadFile,
    _check_jpeg,
    _check_wav,
    _short,
)
from keras_dgl.datasets._pipelines import _transforms_for


# Train records are written in this fixed, seeded order (not list order, which
# is often sorted by class), so that reading a few shards at a time mixes
# classes before any shuffle buffer.
_ORDER_SEED = 0


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
