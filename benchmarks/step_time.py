"""Step time of a DGL training step against a joint-training step, one run.

Both models use the same encoders' architecture and initial weights and the
same batch; they differ only in `method`. Timings are interleaved: after a
warm-up, blocks of `--block` steps alternate between the two methods (the
order flips every round), so load from other processes on a shared CPU
affects both alike (`--block 1`, the default, alternates every step, so
each DGL step has a joint step right next to it). Each step is timed on its
own (`train_on_batch` on device-resident tensors; it returns host floats, so
the step is finished when it returns) and the median over all blocks is reported, both as wall time
and as the CPU time of the whole process (`time.process_time`, all threads):
on a CPU shared with other jobs the wall time measures the machine's load
as much as the step, while the CPU time measures the work done.

Configurations:
  resnet : two ResNet18 encoders (base_filters 16) on a 1x64x64 "audio" and
           a 3x64x64 "image" input, concat fusion, 6 classes.
  conv1d : a Conv1DEncoder on (128, 6) sensor windows and an MLPEncoder on
           40 features, concat fusion, 6 classes.

`--count-work` replaces the timing by a noise-free count of each step's
work (FLOPs on every backend; graph ops on TF, dispatched aten ops on torch,
with the per-op difference), which separates a real overhead from the noise
of a shared machine.

Prints one JSON line per configuration with ms/step for each method and the
ratio dgl/joint (target: <= 1.05): `ratio_dgl_joint` is the ratio of the
two wall-time medians, `ratio_rounds_median` the median of the per-round
ratios (with its quartiles); the `cpu_` fields are the same for CPU time:

  KERAS_BACKEND=jax python benchmarks/step_time.py [--configs resnet,conv1d]
      [--batch 16] [--rounds 30] [--block 1] [--warmup 5] [--jit auto]
      [--methods dgl,joint] [--fusion concat] [--threads 0] [--count-work]
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

import numpy as np


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", default="resnet,conv1d")
    p.add_argument("--methods", default="dgl,joint")
    p.add_argument("--fusion", default="concat")
    p.add_argument("--batch", type=int, default=None, help="default: 16 resnet, 64 conv1d")
    p.add_argument("--rounds", type=int, default=30)
    p.add_argument("--block", type=int, default=1)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument(
        "--jit", default="auto", help="jit_compile for compile(): auto, true or false"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="intra-op threads of the backend (0: its default). On a CPU "
        "shared with other jobs use 1: spinning thread pools otherwise make "
        "the timings measure the contention",
    )
    p.add_argument(
        "--count-work",
        action="store_true",
        help="instead of timing, count each method's training-step work "
        "without noise: FLOPs (XLA cost analysis on JAX, the TF profiler on "
        "the traced graph, torch's FlopCounterMode) and ops (graph ops on "
        "TF, dispatched aten ops on torch)",
    )
    p.add_argument("--alpha", type=float, default=4.0)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def make_encoders(config):
    import keras_dgl

    if config == "resnet":
        return {
            "audio": keras_dgl.encoders.ResNet18(input_channels=1, base_filters=16),
            "visual": keras_dgl.encoders.ResNet18(input_channels=3, base_filters=16),
        }
    if config == "conv1d":
        return {
            "accel": keras_dgl.encoders.Conv1DEncoder(filters=(32, 64, 128)),
            "stats": keras_dgl.encoders.MLPEncoder(hidden_units=(128, 64)),
        }
    raise ValueError(f"unknown config {config!r}")


def input_shapes(config):
    if config == "resnet":
        return {"audio": (64, 64, 1), "visual": (64, 64, 3)}
    return {"accel": (128, 6), "stats": (40,)}


def make_fusion(kind, num_classes):
    from keras_dgl import registry

    return registry.fusion_class(kind)(num_classes=num_classes)


def make_model(config, method, fusion, alpha, jit, batch, seed):
    import keras
    import keras_dgl

    keras.utils.set_random_seed(seed)
    model = keras_dgl.DGLModel(
        make_encoders(config), make_fusion(fusion, 6), alpha=alpha, method=method
    )
    model.compile(
        optimizer=keras.optimizers.SGD(2e-3, momentum=0.9),
        jit_compile=jit,
    )
    model.build({k: (batch,) + s for k, s in input_shapes(config).items()})
    return model


def make_batch(config, batch, seed):
    import keras

    rng = np.random.default_rng(seed)
    x = {
        k: keras.ops.convert_to_tensor(rng.normal(size=(batch,) + s).astype("float32"))
        for k, s in input_shapes(config).items()
    }
    y = keras.ops.convert_to_tensor(rng.integers(0, 6, size=(batch,)).astype("int32"))
    return x, y


def time_config(config, args):
    import keras

    batch = args.batch or (16 if config == "resnet" else 64)
    jit = {"auto": "auto", "true": True, "false": False}[args.jit.lower()]
    methods = args.methods.split(",")
    models = {}
    for m in methods:
        models[m] = make_model(config, m, args.fusion, args.alpha, jit, batch, args.seed)
    # Identical initial weights for every method.
    ref = models[methods[0]].get_weights()
    for m in methods[1:]:
        models[m].set_weights(ref)
    x, y = make_batch(config, batch, args.seed)

    for m in methods:  # warm up (traces / compiles)
        for _ in range(args.warmup):
            models[m].train_on_batch(x, y)

    times = {m: [] for m in methods}
    cpu_times = {m: [] for m in methods}
    for r in range(args.rounds):
        order = methods if r % 2 == 0 else methods[::-1]
        for m in order:
            model = models[m]
            for _ in range(args.block):
                c0, t0 = time.process_time(), time.perf_counter()
                model.train_on_batch(x, y)
                times[m].append(time.perf_counter() - t0)
                cpu_times[m].append(time.process_time() - c0)
    result = {
        "config": config,
        "backend": keras.backend.backend(),
        "fusion": args.fusion,
        "batch": batch,
        "jit_compile": models[methods[0]].jit_compile,
        "steps_per_method": len(times[methods[0]]),
        # Other processes competing for the CPU while this ran.
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }
    for m in methods:
        result[f"{m}_ms"] = round(1e3 * statistics.median(times[m]), 3)
    for m in methods:
        result[f"{m}_cpu_ms"] = round(1e3 * statistics.median(cpu_times[m]), 3)
    if "dgl" in methods and "joint" in methods:
        for label, series in (("", times), ("cpu_", cpu_times)):
            d_all, j_all = series["dgl"], series["joint"]
            result[f"{label}ratio_dgl_joint"] = round(
                statistics.median(d_all) / statistics.median(j_all), 4
            )
            n = args.block
            per_round = sorted(
                statistics.median(d_all[r * n:(r + 1) * n])
                / statistics.median(j_all[r * n:(r + 1) * n])
                for r in range(args.rounds)
            )
            # The median of the per-round ratios is robust to load bursts
            # that hit a few rounds; the quartiles show how noisy it was.
            q = len(per_round) // 4
            result[f"{label}ratio_rounds_median"] = round(
                statistics.median(per_round), 4
            )
            result[f"{label}ratio_rounds_q1_q3"] = [
                round(per_round[q], 4),
                round(per_round[-1 - q], 4),
            ]
    return result


def count_work(config, args):
    """FLOPs and op counts of one training step per method (noise-free)."""
    import collections

    import keras

    backend = keras.backend.backend()
    batch = args.batch or (16 if config == "resnet" else 64)
    jit = {"auto": "auto", "true": True, "false": False}[args.jit.lower()]
    result = {"config": config, "backend": backend, "batch": batch, "count_work": True}
    ops = {}
    for m in args.methods.split(","):
        model = make_model(config, m, args.fusion, args.alpha, jit, batch, args.seed)
        x, y = make_batch(config, batch, args.seed)
        model.train_on_batch(x, y)  # builds the optimizer and metrics
        if backend == "jax":
            import jax

            state = model._get_jax_state(
                trainable_variables=True,
                non_trainable_variables=True,
                optimizer_variables=True,
                metrics_variables=True,
            )
            compiled = jax.jit(model.train_step).lower(state, (x, y)).compile()
            cost = compiled.cost_analysis()
            cost = cost[0] if isinstance(cost, (list, tuple)) else cost
            result[f"{m}_flops"] = float(cost["flops"])
        elif backend == "tensorflow":
            import tensorflow as tf

            graph = (
                tf.function(lambda x, y: model.train_step((x, y)))
                .get_concrete_function(x, y)
                .graph
            )
            counts = collections.Counter(op.type for op in graph.get_operations())
            opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
            opts["output"] = "none"
            prof = tf.compat.v1.profiler.profile(graph, options=opts)
            result[f"{m}_flops"] = float(prof.total_float_ops)
            result[f"{m}_graph_ops"] = sum(counts.values())
            ops[m] = counts
        else:
            from torch.utils._python_dispatch import TorchDispatchMode
            from torch.utils.flop_counter import FlopCounterMode

            class CountOps(TorchDispatchMode):
                def __init__(self):
                    super().__init__()
                    self.counts = collections.Counter()

                def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                    self.counts[func.overloadpacket.__name__] += 1
                    return func(*args, **(kwargs or {}))

            flops = FlopCounterMode(display=False)
            with flops:
                model.train_on_batch(x, y)
            counter = CountOps()
            with counter:
                model.train_on_batch(x, y)
            result[f"{m}_flops"] = float(flops.get_total_flops())
            result[f"{m}_aten_ops"] = sum(counter.counts.values())
            ops[m] = counter.counts
    if "dgl_flops" in result and "joint_flops" in result:
        result["flops_ratio_dgl_joint"] = round(
            result["dgl_flops"] / result["joint_flops"], 6
        )
    if "dgl" in ops and "joint" in ops:
        d, j = ops["dgl"], ops["joint"]
        result["op_count_diff_dgl_minus_joint"] = dict(
            sorted(
                ((k, d[k] - j[k]) for k in set(d) | set(j) if d[k] != j[k]),
                key=lambda kv: -abs(kv[1]),
            )
        )
    return result


def set_threads(threads):
    """Limits the backend's intra-op threads; call before keras is imported."""
    if not threads:
        return
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if backend == "jax":
        flags = os.environ.get("XLA_FLAGS", "")
        if threads == 1:
            flags += " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
        else:
            flags += f" intra_op_parallelism_threads={threads}"
        os.environ["XLA_FLAGS"] = flags.strip()
    elif backend == "torch":
        import torch

        torch.set_num_threads(threads)
        torch.set_num_interop_threads(1)
    elif backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)


def main(argv=None):
    args = parse_args(argv)
    set_threads(args.threads)
    import keras

    header = {
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "threads": args.threads or "default",
    }
    print(json.dumps({"header": header}), flush=True)
    for config in args.configs.split(","):
        run = count_work if args.count_work else time_config
        print(json.dumps(run(config, args)), flush=True)


if __name__ == "__main__":
    sys.exit(main())
