"""Throughput of the CREMA-D training pipeline vs a plain Python/NumPy loader.

Generates `--clips` fake CREMA-D clips (a 16 kHz 16-bit WAV of
`--seconds` seconds and `--frames-per-clip` JPEG frames of
`--height` x `--width` each, the shape of CREMA-D's 480x360 video) in a
temporary folder, then measures samples per second of

1. `keras_dgl.datasets.crema_d(...).train` (tf.data, parallel map, no
   cache),
2. the same with `cache=True`, from its second pass on (decoded clips come
   from memory; the random crop, flip and the rest still run per step),
   and
3. a per-example Python loop doing the same work with NumPy and PIL:
   decode the WAV, resample 16 kHz -> 22,050 Hz (FFT method), tile to 3 s,
   centred STFT (n_fft 512, hop 353), log magnitude; pick a frame, decode
   the JPEG, random resized crop + flip, resize to 224, ImageNet
   normalisation; batch.

Each loader runs `--epochs` full passes; the best pass is reported
(the first tf.data pass also pays for thread start-up). Usage:

    python benchmarks/input_pipeline.py --clips 200
"""

import argparse
import os
import tempfile
import time
import wave

import numpy as np
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)


def cpu_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def make_clips(root, clips, seconds, frames_per_clip, height, width, seed=0):
    rng = np.random.default_rng(seed)
    classes = ["NEU", "HAP", "SAD", "FEA", "DIS", "ANG"]
    os.makedirs(os.path.join(root, "audio"))
    rows = []
    # A smooth image plus noise compresses like a video frame would.
    yy, xx = np.mgrid[0:height, 0:width]
    noise = rng.normal(0, 12, (height, width + 64, 3))
    for index in range(clips):
        clip = f"{1001 + index // 12}_CLIP{index:05d}"
        t = np.arange(int(16000 * seconds)) / 16000
        signal = 0.2 * np.sin(2 * np.pi * (150 + index) * t)
        signal += 0.05 * rng.standard_normal(len(t))
        with wave.open(os.path.join(root, "audio", clip + ".wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(16000)
            w.writeframes((signal * 32767).astype("<i2").tobytes())
        folder = os.path.join(root, "visual", clip)
        os.makedirs(folder)
        for frame in range(frames_per_clip):
            base = (
                np.sin(xx / (20 + index % 7) + frame)[..., None]
                * np.array([60, 40, 80])
                + 128
            )
            shift = int(rng.integers(64))
            pixels = base + noise[:, shift:shift + width]
            pixels = np.clip(pixels, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(
                os.path.join(folder, f"{frame + 1:04d}.jpg"), quality=90
            )
        rows.append(f"{clip},{classes[index % 6]}")
    for name in ("train.csv", "test.csv"):
        with open(os.path.join(root, name), "w") as handle:
            handle.write("clip,label\n" + "\n".join(rows) + "\n")


# ---------------------------------------------------------------------------
# The plain loader.


def numpy_example(root, clip, rng, image_size=224):
    with wave.open(os.path.join(root, "audio", clip + ".wav"), "rb") as w:
        rate = w.getframerate()
        channels = w.getnchannels()
        pcm = np.frombuffer(w.readframes(w.getnframes()), "<i2")
    signal = pcm.reshape(-1, channels).mean(axis=1) / 32768.0
    if rate != 22050:
        new_length = int(round(len(signal) * 22050 / rate))
        spectrum = np.fft.rfft(signal)[: new_length // 2 + 1]
        signal = np.fft.irfft(spectrum, n=new_length) * new_length / len(signal)
    target = 3 * 22050
    signal = np.tile(signal, -(-target // len(signal)))[:target]
    signal = np.clip(signal, -1.0, 1.0)
    padded = np.pad(signal, 256, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(512) / 512)
    starts = np.arange(0, len(padded) - 512 + 1, 353)
    frames = padded[starts[:, None] + np.arange(512)[None, :]] * window
    spec = np.log(np.abs(np.fft.rfft(frames, axis=1)) + 1e-7).T
    audio = spec[..., None].astype(np.float32)

    folder = os.path.join(root, "visual", clip)
    names = sorted(os.listdir(folder))
    image = Image.open(os.path.join(folder, names[rng.integers(len(names))]))
    image = image.convert("RGB")
    width, height = image.size
    for _ in range(10):  # RandomResizedCrop, scale (0.08, 1), ratio (3/4, 4/3)
        area = width * height * rng.uniform(0.08, 1.0)
        ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        w = int(round(np.sqrt(area * ratio)))
        h = int(round(np.sqrt(area / ratio)))
        if 0 < w <= width and 0 < h <= height:
            x0 = rng.integers(0, width - w + 1)
            y0 = rng.integers(0, height - h + 1)
            break
    else:
        x0, y0, w, h = 0, 0, width, height
    image = image.resize(
        (image_size, image_size), Image.BILINEAR, box=(x0, y0, x0 + w, y0 + h)
    )
    if rng.random() < 0.5:
        image = image.transpose(Image.FLIP_LEFT_RIGHT)
    visual = (np.asarray(image, np.float32) / 255.0 - MEAN) / STD
    return audio, visual[None]


def numpy_epoch(root, clips, batch_size, rng):
    order = rng.permutation(len(clips))
    seen = 0
    for start in range(0, len(order), batch_size):
        chosen = order[start:start + batch_size]
        batch = [numpy_example(root, clips[i], rng) for i in chosen]
        audio = np.stack([a for a, _ in batch])
        visual = np.stack([v for _, v in batch])
        seen += len(audio)
    return seen, audio.shape, visual.shape


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=2.5)
    parser.add_argument("--frames-per-clip", type=int, default=3)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()

    import tensorflow as tf

    from keras_dgl.datasets import crema_d

    cores = cpu_cores()
    with tempfile.TemporaryDirectory(prefix="keras_dgl_bench_") as root:
        start = time.perf_counter()
        make_clips(root, args.clips, args.seconds, args.frames_per_clip,
                   args.height, args.width)
        print(f"generated {args.clips} fake CREMA-D clips "
              f"({args.seconds} s 16 kHz WAV, {args.frames_per_clip} JPEG "
              f"frames {args.width}x{args.height}) in "
              f"{time.perf_counter() - start:.1f} s")

        start = time.perf_counter()
        splits = crema_d(root, validation_fraction=0.0,
                         batch_size=args.batch_size)
        build = time.perf_counter() - start
        tf_rates = []
        for _ in range(args.epochs):
            start = time.perf_counter()
            seen = 0
            for features, labels in splits.train:
                seen += int(labels.shape[0])
            tf_rates.append(seen / (time.perf_counter() - start))
        assert features["audio"].shape[1:] == (257, 188, 1)
        assert features["visual"].shape[1:] == (1, 224, 224, 3)

        splits = crema_d(root, validation_fraction=0.0,
                         batch_size=args.batch_size, cache=True)
        cached_rates = []
        for _ in range(max(args.epochs, 2)):
            start = time.perf_counter()
            seen = 0
            for features, labels in splits.train:
                seen += int(labels.shape[0])
            cached_rates.append(seen / (time.perf_counter() - start))
        # The first pass fills the cache; later passes read it.
        cached_rates = cached_rates[1:]

        clips = [line.split(",")[0] for line in
                 open(os.path.join(root, "train.csv")).read().split()[1:]]
        rng = np.random.default_rng(0)
        np_rates = []
        for _ in range(args.epochs):
            start = time.perf_counter()
            seen, audio_shape, visual_shape = numpy_epoch(
                root, clips, args.batch_size, rng)
            np_rates.append(seen / (time.perf_counter() - start))
        assert audio_shape[1:] == (257, 188, 1)
        assert visual_shape[1:] == (1, 224, 224, 3)

    tf_rate, np_rate = max(tf_rates), max(np_rates)
    print(f"cpu cores available: {cores}; tensorflow {tf.__version__}")
    print(f"tf.data pipeline build time: {build:.2f} s")
    print(f"tf.data crema_d train pipeline: {tf_rate:8.1f} samples/s "
          f"(per epoch: {', '.join(f'{r:.1f}' for r in tf_rates)}); "
          f"{tf_rate / cores:.1f} samples/s per core")
    cached_rate = max(cached_rates)
    print(f"tf.data, cache=True, cached:    {cached_rate:8.1f} samples/s "
          f"{cached_rate / cores:.1f} samples/s per core")
    print(f"plain NumPy/PIL loop (1 core):   {np_rate:8.1f} samples/s "
          f"(per epoch: {', '.join(f'{r:.1f}' for r in np_rates)}); "
          f"{np_rate:.1f} samples/s per core")
    print(f"ratio tf.data / NumPy: {tf_rate / np_rate:.2f}x "
          f"(per core: {tf_rate / cores / np_rate:.2f}x)")


if __name__ == "__main__":
    main()
