"""GPU step time of a DGLModel with two ResNet18 encoders, CREMA-D shapes.

Times `train_on_batch` of `keras_dgl.DGLModel` (method "dgl", concat fusion,
the published recipe `keras_dgl.experiments.presets.PUBLISHED_RECIPE`: SGD
momentum 0.9, weight decay 1e-4 coupled as in torch.optim.SGD, lr 2e-3,
gradient clipping at global norm 40) on device-resident batches of audio
log-spectrograms (1 x 257 x 188) and one 224 x 224 video frame, 6 classes.
Every combination of backend (JAX, torch; each in its own subprocess since
the backend is fixed at import), dtype policy (float32, mixed_bfloat16),
data format (channels_last, channels_first) and batch size (64, 256) gets
one JSON line with the same fields as the plain-PyTorch reference script
(`variant`, `device`, `batch`, `step_ms` = median over `--steps` after
`--warmup`, `samples_per_s`), plus `backend`, `dtype_policy`,
`data_format`, `jit_compile`. A combination that fails (e.g. out of memory)
prints a line with `error` instead.

The reference script is not part of this repository: it is
`../shared/bench/reference_torch_dgl.py` relative to the repository root on
the project's machines (the folder shared by its worktrees; its README there
gives its numbers). Elsewhere, pass `--reference` any script that takes the
same options (`--batch --frames --audio --image --classes --alpha --steps
--warmup`) and prints JSON lines with those fields, or leave it out.

Two timings per combination (`--timing`): `step_ms`, one synchronous
`train_on_batch` per step (comparable with the minimal-Keras rows of
`../shared/bench`), and `fit_step_ms`, the per-step time of a `fit` epoch over
the same device-resident batch, which is what training gets (no host sync
per step, and on JAX no copy of the model state in and out of each call).
On the torch backend `--torch-forward native,layers` compares ResNet18's
native PyTorch forward with the eager Keras-layer one, and `--breakdown`
adds synchronized times of the forward pass, forward+backward and the whole
step.

`--reference PATH` also runs the plain-PyTorch reference script in the same
call (first), for the same batch sizes, and forwards its lines: GPUs differ,
so only numbers from one call are comparable.

  python benchmarks/gpu_step.py [--backends jax,torch] [--batches 64,256]
      [--dtypes float32,mixed_bfloat16]
      [--formats channels_last,channels_first] [--steps 30] [--warmup 8]
      [--torch-jit] [--reference ../shared/bench/reference_torch_dgl.py]
      [--timing fit,train_on_batch] [--torch-forward native,layers]
      [--breakdown] [--methods dgl,joint] [--budget-s 0] [--tiny]

In a time-limited device session, run one backend per call and give it a
budget, e.g. `--backends jax --budget-s 420` (JAX compiles each combination
in its first step: about a minute per combination on 2 busy CPU cores for
the tiny model; expect tens of seconds per full-size combination on a GPU
host) and put the most wanted combinations first with `--dtypes` /
`--formats` / `--batches`.

`--tiny` (for CPU smoke tests): audio 1 x 33 x 24, 32 x 32 frames,
base_filters 8, batches 4 and 8, 3 steps after 1 warm-up step.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)  # works without installing keras_dgl

# Plain data, no Keras: the parent process must not load a backend.
from keras_dgl.experiments.presets import PRESETS  # noqa: E402
from keras_dgl.experiments.presets import PUBLISHED_RECIPE  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backends", default="jax,torch")
    p.add_argument("--batches", default=None, help="default 64,256 (tiny: 4,8)")
    p.add_argument("--dtypes", default="float32,mixed_bfloat16")
    p.add_argument("--formats", default="channels_last,channels_first")
    p.add_argument("--audio", default=None, help="HxW, default 257x188")
    p.add_argument("--image", type=int, default=None, help="default 224")
    p.add_argument("--frames", type=int, default=1)
    p.add_argument("--base-filters", type=int, default=None, help="default 64")
    p.add_argument("--classes", type=int, default=6)
    p.add_argument("--alpha", type=float, default=PRESETS["crema-d"]["alpha"])
    p.add_argument(
        "--methods",
        default="dgl",
        help="comma list of DGLModel methods to time, e.g. dgl,joint (DGL's "
        "cost over joint training on the GPU)",
    )
    p.add_argument("--steps", type=int, default=None, help="default 30 (tiny: 3)")
    p.add_argument("--warmup", type=int, default=None, help="default 8 (tiny: 1)")
    p.add_argument(
        "--torch-jit",
        action="store_true",
        help="jit_compile=True on torch (torch.compile; its compile time on "
        "this model is in benchmarks/RESULTS.md)",
    )
    p.add_argument(
        "--timing",
        default="fit,train_on_batch",
        help="comma list: 'fit' (per-step time of the second of two `fit` "
        "epochs over device-resident batches: what users get) and/or "
        "'train_on_batch' (one synchronous call per step, as in "
        "../shared/bench's minimal-Keras rows)",
    )
    p.add_argument(
        "--torch-forward",
        default="native",
        help="torch backend: comma list of 'native' (ResNet18's native "
        "PyTorch forward, the default) and 'layers' (the eager Keras-layer "
        "forward it replaces)",
    )
    p.add_argument(
        "--breakdown",
        action="store_true",
        help="torch backend: also time the forward pass, forward+backward "
        "and the whole step separately (synchronized), to show where a "
        "step's time goes",
    )
    p.add_argument(
        "--reference",
        default=None,
        help="path of the plain-PyTorch reference script, e.g. "
        "../shared/bench/reference_torch_dgl.py (see above)",
    )
    p.add_argument(
        "--budget-s",
        type=float,
        default=0,
        help="stop starting new combinations after this many seconds (0: no "
        "limit); the rest print a 'skipped' line. For time-limited device calls",
    )
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    tiny = args.tiny
    args.batches = args.batches or ("4,8" if tiny else "64,256")
    args.audio = args.audio or ("33x24" if tiny else "257x188")
    args.image = args.image or (32 if tiny else 224)
    args.base_filters = args.base_filters or (8 if tiny else 64)
    args.steps = args.steps or (3 if tiny else 30)
    args.warmup = args.warmup or (1 if tiny else 8)
    return args


def device_name():
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        dev = jax.devices()[0]
        return dev.device_kind if dev.platform != "cpu" else "cpu"
    if backend == "torch":
        import torch

        return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    return "cpu"


def build_model(args, data_format, torch_forward="native", method="dgl"):
    import keras

    import keras_dgl

    keras_dgl.encoders.ResNet18.torch_native_forward = torch_forward == "native"

    encoders = {
        "audio": keras_dgl.encoders.ResNet18(
            input_channels=1, base_filters=args.base_filters, data_format=data_format
        ),
        "visual": keras_dgl.encoders.ResNet18(
            input_channels=3, base_filters=args.base_filters, data_format=data_format
        ),
    }
    fusion = keras_dgl.layers.ConcatFusion(num_classes=args.classes)
    model = keras_dgl.DGLModel(encoders, fusion, alpha=args.alpha, method=method)
    jit = True if keras.backend.backend() != "torch" else bool(args.torch_jit)
    recipe = PUBLISHED_RECIPE
    model.compile(
        optimizer=keras_dgl.optimizers.make_optimizer(
            recipe["optimizer"],
            recipe["learning_rate"],
            weight_decay=recipe["weight_decay"],
            global_clipnorm=recipe["global_clipnorm"],
        ),
        jit_compile=jit,
    )
    return model


def input_shapes(args, data_format):
    h, w = (int(v) for v in args.audio.split("x"))
    s = args.image
    if data_format == "channels_last":
        audio, frame = (h, w, 1), (s, s, 3)
    else:
        audio, frame = (1, h, w), (3, s, s)
    visual = frame if args.frames == 1 else (args.frames,) + frame
    return {"audio": audio, "visual": visual}


def device_batch(args, data_format, batch, seed=0):
    import keras
    import numpy as np

    rng = np.random.default_rng(seed)
    # convert_to_tensor places the arrays on the backend's default device
    # (the GPU when there is one), so the timed steps copy nothing.
    x = {
        k: keras.ops.convert_to_tensor(
            rng.standard_normal((batch,) + shape, dtype=np.float32)
        )
        for k, shape in input_shapes(args, data_format).items()
    }
    y = keras.ops.convert_to_tensor(
        rng.integers(0, args.classes, size=(batch,)).astype("int32")
    )
    return x, y


def _median_ms(times):
    return round(1e3 * statistics.median(times), 2)


def _fit_step_ms(model, x, y, steps):
    """Per-step time of the second of two `fit` epochs of `steps` steps."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        # Only epoch hooks: batch hooks would make Keras wait for every
        # step, and the timed epoch must run asynchronously as in training.
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            # The logs are host floats by now, so the epoch has finished.
            self.seconds.append(time.perf_counter() - self.start)

    def batches():
        # The same device-resident batch every step. `(x, y, None)` keeps
        # the structure `train_on_batch` compiled for, so JAX does not
        # compile the step a second time.
        while True:
            yield x, y, None

    timer = EpochTimer()
    model.fit(
        batches(), steps_per_epoch=steps, epochs=2, verbose=0, callbacks=[timer]
    )
    return round(1e3 * timer.seconds[-1] / steps, 2)


def _torch_breakdown(model, x, y, steps):
    """Synchronized times of the forward pass, forward+backward and the step."""
    import torch

    def timed(fn):
        times = []
        for _ in range(steps):
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        return _median_ms(times)

    def forward():
        with torch.no_grad():
            model(x, training=True)

    def forward_backward():
        y_pred = model(x, training=True)
        loss = model.compute_loss(x=x, y=y, y_pred=y_pred, training=True)
        loss.backward()
        model.zero_grad()

    def inference():
        with torch.no_grad():
            model(x, training=False)

    out = {
        "forward_ms": timed(forward),
        "inference_ms": timed(inference),
        "forward_backward_ms": timed(forward_backward),
        "train_on_batch_sync_ms": timed(lambda: model.train_on_batch(x, y)),
    }
    out["optimizer_and_rest_ms"] = round(
        out["train_on_batch_sync_ms"] - out["forward_backward_ms"], 2
    )
    return out


def _variant(backend, dtype, data_format, torch_forward, method):
    variant = f"keras_dgl_{backend}_{dtype}_{data_format}"
    if backend == "torch":
        variant += f"_{torch_forward}"
    if method != "dgl":
        variant += f"_{method}"
    return variant


def time_one(
    args, dtype, data_format, batch, device, torch_forward="native", method="dgl"
):
    import keras

    backend = keras.backend.backend()
    line = {
        "variant": _variant(backend, dtype, data_format, torch_forward, method),
        "device": device,
        "batch": batch,
        "backend": backend,
        "dtype_policy": dtype,
        "data_format": data_format,
        "method": method,
    }
    if backend == "torch":
        line["torch_forward"] = torch_forward
    keras.utils.clear_session()
    keras.config.set_dtype_policy(dtype)
    timings = args.timing.split(",")
    try:
        keras.utils.set_random_seed(0)
        model = build_model(args, data_format, torch_forward, method)
        line["jit_compile"] = bool(model.jit_compile)
        x, y = device_batch(args, data_format, batch)
        t0 = time.perf_counter()
        model.train_on_batch(x, y)  # builds, traces and compiles
        line["first_step_s"] = round(time.perf_counter() - t0, 2)
        for _ in range(args.warmup - 1):
            model.train_on_batch(x, y)
        if "train_on_batch" in timings:
            times = []
            for _ in range(args.steps):
                # train_on_batch returns host floats, so the step has
                # finished on the device when it returns.
                t0 = time.perf_counter()
                logs = model.train_on_batch(x, y, return_dict=True)
                times.append(time.perf_counter() - t0)
            line["step_ms"] = _median_ms(times)
            line["samples_per_s"] = round(1e3 * batch / line["step_ms"], 1)
            line["loss"] = round(float(logs["loss"]), 4)
        if "fit" in timings:
            line["fit_step_ms"] = _fit_step_ms(model, x, y, args.steps)
            line["fit_samples_per_s"] = round(1e3 * batch / line["fit_step_ms"], 1)
        if args.breakdown and backend == "torch" and device != "cpu":
            line.update(_torch_breakdown(model, x, y, max(5, args.steps // 3)))
    except Exception as e:  # one failing combination must not stop the rest
        line["error"] = f"{type(e).__name__}: {str(e)[:300]}"
    finally:
        keras.config.set_dtype_policy("float32")
    return line


def child(args):
    import keras

    deadline = float(os.environ.get("KERAS_DGL_BENCH_DEADLINE", "0"))

    device = device_name()
    header = {
        "header": "keras_dgl gpu_step",
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "device": device,
        "tiny": args.tiny,
        "audio": args.audio,
        "image": args.image,
        "frames": args.frames,
        "base_filters": args.base_filters,
        "steps": args.steps,
        "warmup": args.warmup,
    }
    if keras.backend.backend() == "torch":
        import torch

        torch.backends.cudnn.benchmark = True
        header["torch"] = torch.__version__
    else:
        import jax

        header["jax"] = jax.__version__
    print(json.dumps(header), flush=True)
    forwards = args.torch_forward.split(",")
    if keras.backend.backend() != "torch":
        forwards = ["native"]
    combinations = [
        (forward, dtype, data_format, int(batch), method)
        for forward in forwards
        for dtype in args.dtypes.split(",")
        for data_format in args.formats.split(",")
        for batch in args.batches.split(",")
        for method in args.methods.split(",")
    ]
    for forward, dtype, data_format, batch, method in combinations:
        if deadline and time.time() > deadline:
            line = {
                "variant": _variant(
                    keras.backend.backend(), dtype, data_format, forward, method
                ),
                "batch": batch,
                "method": method,
                "skipped": "time budget (--budget-s) spent",
            }
        else:
            line = time_one(args, dtype, data_format, batch, device, forward, method)
        print(json.dumps(line), flush=True)


def run_reference(args):
    h, w = args.audio.split("x")
    failed = False
    for batch in args.batches.split(","):
        cmd = [
            sys.executable, args.reference, "--batch", batch,
            "--frames", str(args.frames), "--audio", f"{h}x{w}",
            "--image", str(args.image), "--classes", str(args.classes),
            "--alpha", str(args.alpha), "--steps", str(args.steps),
            "--warmup", str(args.warmup),
        ]
        failed |= subprocess.run(cmd).returncode != 0
    return failed


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.child:
        return child(args)
    passthrough = [a for a in argv if a != "--child"]
    failed = False
    deadline = time.time() + args.budget_s if args.budget_s else 0
    # The reference first: it is short, and every other number is read
    # against it.
    if args.reference:
        failed |= run_reference(args)
    for backend in [b for b in args.backends.split(",") if b]:
        env = dict(
            os.environ,
            KERAS_BACKEND=backend,
            TF_CPP_MIN_LOG_LEVEL="3",
            KERAS_DGL_BENCH_DEADLINE=str(deadline),
        )
        proc = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--child", *passthrough],
            env=env,
        )
        if proc.returncode:
            failed = True
            print(json.dumps({"backend": backend, "error": f"exit code {proc.returncode}"}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
