"""Small fake audio-visual trees (WAV via the stdlib, JPEG frames) for tests."""

import csv
import os
import wave

import numpy as np
import tensorflow as tf


def write_wav(path, samples, rate, channels=1, sample_width=2):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(channels)
        handle.setsampwidth(sample_width)
        handle.setframerate(rate)
        handle.writeframes(samples.tobytes())


def tone(rate, seconds, frequency, channels=1):
    t = np.arange(int(rate * seconds)) / rate
    mono = 0.25 * np.sin(2 * np.pi * frequency * t)
    data = np.repeat(mono[:, None], channels, axis=1)
    return (data * 32767).astype("<i2")


def write_jpeg(path, seed, height=40, width=52, fill=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pixels = np.random.default_rng(seed).integers(
        0, 256, (height, width, 3), dtype=np.uint8)
    if fill is not None:
        pixels[:] = fill
    with open(path, "wb") as handle:
        handle.write(tf.io.encode_jpeg(pixels).numpy())


def make_tree(root, classes, clips_per_class=4, test_every=4, rate=16000,
              seconds=0.8, frames=2, header=True, quote=False):
    """root/{train,test}.csv, root/audio/<clip>.wav, root/visual/<clip>/*.jpg"""
    rows = {"train": [], "test": []}
    index = 0
    for label in classes:
        for _ in range(clips_per_class):
            clip = f"clip{index:03d}"
            write_wav(os.path.join(root, "audio", clip + ".wav"),
                       tone(rate, seconds, 200 + 40 * index), rate)
            for frame in range(frames):
                write_jpeg(os.path.join(root, "visual", clip,
                                         f"{frame + 1}.jpg"), index * 10 + frame)
            split = "test" if index % test_every == test_every - 1 else "train"
            rows[split].append((clip, label))
            index += 1
    for split, split_rows in rows.items():
        with open(os.path.join(root, f"{split}.csv"), "w", newline="") as h:
            writer = csv.writer(
                h, quoting=csv.QUOTE_ALL if quote else csv.QUOTE_MINIMAL)
            if header:
                writer.writerow(["clip", "label"])
            writer.writerows(split_rows)
    return rows


def jpeg_segment(data, marker):
    """Byte offset of the first segment with `marker` (walking from SOI)."""
    position = 2
    while data[position + 1] != marker:
        position += 2 + int.from_bytes(data[position + 2:position + 4], "big")
    return position
