"""Input-pipeline throughput per core at CREMA-D shapes: raw, cached, prepared.

Generates `--clips` fake CREMA-D clips (a 16 kHz 16-bit WAV of `--seconds`
seconds and `--frames-per-clip` JPEG frames of `--height` x `--width`, the
shape of CREMA-D's 480x360 video) in a temporary folder, prepares them once
with `keras_dgl.datasets.prepare`, then measures, each in a fresh process
pinned to `--cores` CPUs (so the rates are per `--cores` cores, and each
loader's memory is its own):

1. `raw`: `crema_d(RAW).train` (tf.data: JPEG decode of the crop window,
   resize, resampling, STFT per step);
2. `raw-cached`: the same with `cache=True`, from its second pass on;
3. `prepared-host`: `crema_d(PREPARED).train` (host-side augmentation of
   the stored uint8 frames and float16 spectrograms);
4. `prepared-device`: `crema_d(PREPARED, augment="device").train`, the
   host part only: read, parse, batch bytes (the crop, flip, normalisation
   run in the model on the accelerator and are not timed here);
   `prepared-device-1frame` the same from a folder prepared with
   `train_frames=1` (one stored frame per training clip instead of all);
5. `numpy`: a per-example NumPy/PIL loop doing the raw work (the reference
   code's style), on one core;
6. `prepare`: `prepare("crema-d", RAW, OUT)` itself, clips decoded per
   second (train and test lists), and `prepare-1frame` with
   `train_frames=1`.

Every loader produces the published training inputs (a 257x188 log
spectrogram, one random-resized-cropped, flipped 224x224 frame; device mode:
the stored 256x341 uint8 frame and the float16 spectrogram). Each dataset
is iterated with `as_numpy_iterator()`, as Keras feeds JAX and PyTorch.
A measured pass of a tf.data loader is its training split repeated to at
least `--pass-samples` samples (a real CREMA-D epoch has 6,698 clips; a pass
of 200 mostly measures the per-epoch start). Rounds alternate the modes
(`--rounds`, each mode's best pass over all rounds is kept), so that load from other jobs on a shared machine hits all
modes alike; the per-round rates are printed too. Memory: each process's
peak RSS (`ru_maxrss`) and its growth over the RSS after imports.

The cores needed to feed one GPU are `--gpu-rate` (samples/s; default the
JAX bf16 H200 step rate of benchmarks/RESULTS.md, 64 / 11.4 ms) divided by
the per-core rate. `--tuned-malloc` runs the measured processes with
glibc's mmap and trim thresholds raised (see TUNED_MALLOC). Usage:

    python benchmarks/input_pipeline.py --clips 200 --cores 1 [--tuned-malloc]
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import wave

import numpy as np
from PIL import Image

MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
MODES = ("raw", "raw-cached", "prepared-host", "prepared-device",
         "prepared-device-1frame", "numpy")
# glibc returns freed MB-sized blocks to the system and faults them in again
# (zeroed) on the next allocation; these keep them in the heap instead.
TUNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(64 << 20),
                "MALLOC_TRIM_THRESHOLD_": str(1 << 30)}
# JAX, mixed_bfloat16, batch 64 on one H200 (benchmarks/RESULTS.md).
GPU_SAMPLES_PER_S = 64 / 11.4e-3


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
    assert audio.shape[1:] == (257, 188, 1)
    assert visual.shape[1:] == (1, 224, 224, 3)
    return seen


# ---------------------------------------------------------------------------
# One measurement, in its own process.


def rss_mb():
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Clock:
    """Wall and process-CPU time of one measured stretch."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = cpu_seconds() - self.cpu


def child(args):
    """Runs one mode and prints one JSON line."""
    import tensorflow as tf

    from keras_dgl.datasets import crema_d, prepare

    baseline = rss_mb()
    result = {"mode": args.child, "cores": len(os.sched_getaffinity(0))}
    if args.child == "prepare":
        with Clock() as clock:
            summary = prepare("crema-d", args.root, args.out, verbose=0,
                              shard_size_mb=100,
                              train_frames=args.train_frames)
        seconds = clock.wall
        result.update(
            rates=[summary["decoded"] / clock.wall],
            cpu_rates=[summary["decoded"] / clock.cpu],
            clips=summary["decoded"],
            bytes=summary["bytes"],
            shards=summary["shards"],
            workers=summary["workers"],
            seconds=seconds,
        )
    elif args.child == "numpy":
        clips = [line.split(",")[0] for line in
                 open(os.path.join(args.root, "train.csv")).read().split()[1:]]
        rng = np.random.default_rng(0)
        rates, cpu_rates = [], []
        for _ in range(args.epochs):
            with Clock() as clock:
                seen = numpy_epoch(args.root, clips, args.batch_size, rng)
            rates.append(seen / clock.wall)
            cpu_rates.append(seen / clock.cpu)
        result.update(rates=rates, cpu_rates=cpu_rates)
    else:
        options = dict(validation_fraction=0.0, batch_size=args.batch_size)
        root = args.root
        if args.child == "raw-cached":
            options["cache"] = True
        if args.child.startswith("prepared"):
            root = args.out
        if args.child.startswith("prepared-device"):
            options["augment"] = "device"
        splits = crema_d(root, **options)
        # One measured pass: the training split repeated to at least
        # --pass-samples samples, as one epoch of the real 6,698 clips
        # would amortise the per-epoch start (threads, file opens, the
        # shuffle buffer's first fill) that dominates a pass of 200.
        repeat = max(1, -(-args.pass_samples // args.clips))
        train = splits.train.repeat(repeat)
        rates, cpu_rates = [], []
        # Fast loaders get more passes: a pass of a few hundred clips takes
        # a fraction of a second, and the first also starts the pipeline.
        first = time.perf_counter()
        while len(rates) < args.epochs + (args.child == "raw-cached") or (
                time.perf_counter() - first < args.min_seconds):
            with Clock() as clock:
                seen = 0
                for features, labels in train.as_numpy_iterator():
                    seen += len(labels)
            rates.append(seen / clock.wall)
            cpu_rates.append(seen / clock.cpu)
        if args.child == "raw-cached":
            # The first pass fills the cache.
            rates, cpu_rates = rates[1:], cpu_rates[1:]
        shapes = {k: (tuple(v.shape[1:]), str(v.dtype))
                  for k, v in features.items()}
        result.update(rates=rates, cpu_rates=cpu_rates, shapes=shapes)
        result["tensorflow"] = tf.__version__
    result.update(peak_rss_mb=peak_rss_mb(), baseline_rss_mb=baseline)
    print("RESULT " + json.dumps(result), flush=True)


def run_child(mode, args, cpus, out, train_frames=None):
    command = [
        sys.executable, os.path.abspath(__file__), "--child", mode,
        "--root", args.root, "--out", out, "--epochs", str(args.epochs),
        "--batch-size", str(args.batch_size),
        "--min-seconds", str(args.min_seconds),
        "--clips", str(args.clips), "--pass-samples", str(args.pass_samples),
    ]
    if train_frames:
        command += ["--train-frames", str(train_frames)]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if args.tuned_malloc:
        env.update(TUNED_MALLOC)
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, check=False,
        preexec_fn=lambda: os.sched_setaffinity(0, cpus),
    )
    for line in done.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{mode} failed:\n{done.stdout}\n{done.stderr[-3000:]}")


def load_average():
    return os.getloadavg()[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=2.5)
    parser.add_argument("--frames-per-clip", type=int, default=3)
    parser.add_argument("--height", type=int, default=360)
    parser.add_argument("--width", type=int, default=480)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pass-samples", type=int, default=1600,
                        help="tf.data loaders: repeat the split to at least "
                        "this many samples per measured pass")
    parser.add_argument("--min-seconds", type=float, default=4.0,
                        help="repeat passes until a loader ran this long")
    parser.add_argument("--cores", type=int, default=1,
                        help="CPUs each measured process may use")
    parser.add_argument("--modes", default=",".join(
        MODES + ("prepare", "prepare-1frame")))
    parser.add_argument("--gpu-rate", type=float, default=GPU_SAMPLES_PER_S)
    parser.add_argument("--tuned-malloc", action="store_true",
                        help="run the measured processes with "
                        + " ".join(f"{k}={v}" for k, v in TUNED_MALLOC.items()))
    parser.add_argument("--train-frames", type=int, default=None,
                        help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--root", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    available = sorted(os.sched_getaffinity(0))
    cpus = set(available[-args.cores:])
    modes = args.modes.split(",")
    results = {mode: [] for mode in modes}
    with tempfile.TemporaryDirectory(prefix="keras_dgl_bench_") as base:
        args.root = os.path.join(base, "raw")
        start = time.perf_counter()
        make_clips(args.root, args.clips, args.seconds, args.frames_per_clip,
                   args.height, args.width)
        print(f"generated {args.clips} fake CREMA-D clips ({args.seconds} s "
              f"16 kHz WAV, {args.frames_per_clip} JPEG frames "
              f"{args.width}x{args.height}) in "
              f"{time.perf_counter() - start:.1f} s")
        print(f"machine: {len(available)} CPUs; each measurement pinned to "
              f"{len(cpus)} ({sorted(cpus)}); batch {args.batch_size}; "
              f"malloc {'tuned' if args.tuned_malloc else 'default'}")
        prepared = os.path.join(base, "prepared")
        one_frame = os.path.join(base, "prepared-1frame")
        for round_ in range(args.rounds):
            for mode, train_frames in (("prepare", None), ("prepare-1frame", 1)):
                if mode in modes:
                    out = os.path.join(base, f"{mode}-{round_}")
                    results[mode].append(
                        run_child("prepare", args, cpus, out, train_frames))
                    if train_frames:
                        one_frame = out
                    else:
                        prepared = out
            for mode in modes:
                if mode.startswith("prepare") and not mode.startswith(
                        "prepared"):
                    continue
                folder = one_frame if mode.endswith("1frame") else prepared
                if mode.startswith("prepared") and not os.path.isdir(folder):
                    run_child("prepare", args, cpus, folder,
                              train_frames=1 if folder == one_frame else None)
                load = load_average()
                result = run_child(mode, args, cpus, folder)
                result["load"] = load
                results[mode].append(result)
            print(f"round {round_ + 1}: " + ", ".join(
                f"{m} {max(r[-1]['rates']):.0f}" for m, r in results.items()
            ) + f" samples/s (load average {load_average():.1f})", flush=True)

    print()
    print(f"| mode | samples/s per {len(cpus)} core(s), wall, best (per round) "
          "| per CPU-second, best | peak RSS MB (growth) | cores for one "
          "H200 (wall / CPU) |")
    print("|---|---|---|---|---|")
    best, best_cpu = {}, {}
    for mode, runs in results.items():
        rates = [max(r["rates"]) for r in runs]
        best[mode] = max(rates) / len(cpus)
        best_cpu[mode] = max(max(r["cpu_rates"]) for r in runs)
        peak = max(r["peak_rss_mb"] for r in runs)
        growth = max(r["peak_rss_mb"] - r["baseline_rss_mb"] for r in runs)
        preparing = mode in ("prepare", "prepare-1frame")
        unit = " clips/s" if preparing else ""
        need = "" if preparing else (
            f"{args.gpu_rate / best[mode]:.1f} / "
            f"{args.gpu_rate / best_cpu[mode]:.1f}")
        print(f"| {mode} | {best[mode]:.0f}{unit} "
              f"({', '.join(f'{r:.0f}' for r in rates)}) | "
              f"{best_cpu[mode]:.0f}{unit} | {peak:.0f} ({growth:+.0f}) | "
              f"{need} |")
    for mode, runs in results.items():
        if "shapes" in runs[0]:
            print(f"{mode} batch shapes: {runs[0]['shapes']}")
    for mode in ("prepare", "prepare-1frame"):
        if mode in results:
            run = results[mode][0]
            print(f"{mode}: {run['clips']} clips (train and test lists) into "
                  f"{run['shards']} shards, {run['bytes'] / 1e6:.0f} MB, "
                  f"{run['workers']} worker thread(s)")
    print(f"GPU rate assumed: {args.gpu_rate:.0f} samples/s")
    print("per CPU-second: samples (clips) per second of the process's own "
          "CPU time, the rate of a core that is not shared with other jobs")
    for mode in ("prepare", "prepare-1frame"):
        if "raw" in best and mode in best:
            print(f"{mode} / raw pass, per core: wall "
                  f"{best[mode] / best['raw']:.2f}, CPU "
                  f"{best_cpu[mode] / best_cpu['raw']:.2f}")
    for mode in ("raw-cached", "prepared-host", "prepared-device", "numpy"):
        if mode in best and "raw" in best:
            print(f"{mode} / raw: wall {best[mode] / best['raw']:.1f}x, CPU "
                  f"{best_cpu[mode] / best_cpu['raw']:.1f}x")


if __name__ == "__main__":
    main()
