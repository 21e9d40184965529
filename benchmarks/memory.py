"""Peak memory of a DGL training step against a joint-training step.

DGL keeps the encoders' graph alive for the unimodal losses instead of the
multimodal one, so its step should need no more memory than a joint step
plus the unimodal logits (`batch x num_classes x modalities` floats). This
script checks that, per backend, with the configurations of `step_time.py`:

- JAX: XLA's own buffer assignment for the compiled train step
  (`jax.jit(model.train_step).lower(state, data).compile().memory_analysis()`):
  exact, noise-free bytes. The peak is arguments + outputs - aliased
  (donated) buffers + temporaries. Also reported: XLA's flop count of the
  step (`cost_analysis()`), a noise-free measure of the compute that
  `step_time.py` times.
- TensorFlow: the CPU allocator's own peak (`tf.config.experimental.
  get_memory_info("CPU:0")["peak"]` after `reset_memory_stats`), which TF
  only tracks with its BFC allocator on CPU (`TF_CPU_ALLOCATOR_USE_BFC=true`,
  set for the TF subprocesses). Exact bytes of tensors, counted from the
  allocator's level just before the measured steps; but TF's executor runs
  independent ops in a varying order, so the peak itself varies by
  megabytes between runs (use `--repeats 3` or more).
- every backend: the process' peak resident memory (VmHWM) during steady
  training steps, in a fresh subprocess per method, with the peak reset
  (`/proc/self/clear_refs`) after warm-up; the step's working set is that
  peak minus the resident memory just before the measured steps. The
  subprocesses run with `MALLOC_MMAP_THRESHOLD_=65536` so that glibc maps
  and unmaps every large buffer (otherwise freed memory stays resident and
  the peak depends on the history). Linux only; repeatable to about
  +-150 KiB (JAX, torch), so the comparison allows the spread of the
  repeats. With TF's BFC allocator the RSS only shows the pool growing; use
  the allocator numbers there.

  python benchmarks/memory.py [--backends jax,tensorflow,torch]
      [--configs resnet,conv1d] [--steps 5] [--repeats 2]

Prints one JSON line per (backend, configuration) with both methods'
numbers and `dgl_le_joint_plus_unimodal_logits` for each measure.
"""

import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
NUM_CLASSES = 6


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backends", default="jax,tensorflow,torch")
    p.add_argument("--configs", default="resnet,conv1d")
    p.add_argument("--batch", type=int, default=None, help="default: 16 resnet, 64 conv1d")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--fusion", default="concat")
    p.add_argument("--repeats", type=int, default=2, help="subprocesses per method")
    # Internal: measure one (config, method) in this process.
    p.add_argument("--child", nargs=2, metavar=("CONFIG", "METHOD"))
    return p.parse_args(argv)


def _status_kib(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak_rss():
    # Writing 5 resets VmHWM to the current RSS (Linux >= 4.0).
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _jax_compiled_analysis(model, x, y):
    import jax

    state = model._get_jax_state(
        trainable_variables=True,
        non_trainable_variables=True,
        optimizer_variables=True,
        metrics_variables=True,
    )
    # The same jit that Keras' JAX trainer builds (donating the state).
    compiled = jax.jit(model.train_step, donate_argnums=0).lower(state, (x, y)).compile()
    mem = compiled.memory_analysis()
    out = {
        "argument_bytes": int(mem.argument_size_in_bytes),
        "output_bytes": int(mem.output_size_in_bytes),
        "alias_bytes": int(mem.alias_size_in_bytes),
        "temp_bytes": int(mem.temp_size_in_bytes),
    }
    out["peak_bytes"] = (
        out["argument_bytes"] + out["output_bytes"] - out["alias_bytes"] + out["temp_bytes"]
    )
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else {}
    if cost and "flops" in cost:
        out["flops"] = float(cost["flops"])
    return out


def child(config, method, args):
    sys.path.insert(0, HERE)
    import keras

    import step_time

    batch = args.batch or (16 if config == "resnet" else 64)
    model = step_time.make_model(config, method, args.fusion, 4.0, "auto", batch, 0)
    x, y = step_time.make_batch(config, batch, 0)
    for _ in range(args.warmup):
        model.train_on_batch(x, y)
    result = {"method": method, "batch": batch}
    if keras.backend.backend() == "jax":
        result["xla"] = _jax_compiled_analysis(model, x, y)
    tf_stats = keras.backend.backend() == "tensorflow"
    if tf_stats:
        import tensorflow as tf

        tf.config.experimental.reset_memory_stats("CPU:0")
        tf_before = tf.config.experimental.get_memory_info("CPU:0")["current"]
    _reset_peak_rss()
    before = _status_kib("VmRSS")
    for _ in range(args.steps):
        model.train_on_batch(x, y)
    peak = _status_kib("VmHWM")
    if tf_stats:
        info = tf.config.experimental.get_memory_info("CPU:0")
        result["tf_allocator_step_bytes"] = int(info["peak"]) - int(tf_before)
    result["rss_before_kib"] = before
    result["rss_peak_kib"] = peak
    result["rss_step_kib"] = peak - before
    print("RESULT " + json.dumps(result), flush=True)


def run_child(backend, config, method, args):
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        config,
        method,
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--fusion",
        args.fusion,
    ]
    if args.batch:
        cmd += ["--batch", str(args.batch)]
    env = dict(
        os.environ,
        KERAS_BACKEND=backend,
        TF_CPP_MIN_LOG_LEVEL="3",
        MALLOC_MMAP_THRESHOLD_="65536",
        MALLOC_TRIM_THRESHOLD_="0",
    )
    if backend == "tensorflow":
        env["TF_CPU_ALLOCATOR_USE_BFC"] = "true"
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{backend}/{config}/{method} failed:\n{proc.stderr[-3000:]}")


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return child(*args.child, args)
    for backend in args.backends.split(","):
        for config in args.configs.split(","):
            runs = {"dgl": [], "joint": []}
            for _ in range(args.repeats):  # interleaved repeats
                for m in ("dgl", "joint"):
                    runs[m].append(run_child(backend, config, m, args))
            print(json.dumps(summarize(backend, config, runs)), flush=True)


def _median(values):
    values = sorted(values)
    n = len(values)
    return values[n // 2] if n % 2 else (values[n // 2 - 1] + values[n // 2]) / 2


def summarize(backend, config, runs):
    batch = runs["dgl"][0]["batch"]
    modalities = 2
    logits_bytes = batch * NUM_CLASSES * modalities * 4
    line = {
        "backend": backend,
        "config": config,
        "batch": batch,
        "unimodal_logits_bytes": logits_bytes,
    }
    dgl, joint = runs["dgl"][0], runs["joint"][0]
    if "xla" in dgl:  # deterministic: one run suffices
        d, j = dgl["xla"], joint["xla"]
        line["xla_peak_bytes_dgl"] = d["peak_bytes"]
        line["xla_peak_bytes_joint"] = j["peak_bytes"]
        line["xla_temp_bytes_dgl"] = d["temp_bytes"]
        line["xla_temp_bytes_joint"] = j["temp_bytes"]
        line["xla_peak_diff_bytes"] = d["peak_bytes"] - j["peak_bytes"]
        line["xla_dgl_le_joint_plus_unimodal_logits"] = (
            d["peak_bytes"] <= j["peak_bytes"] + logits_bytes
        )
        if "flops" in d and "flops" in j:
            line["xla_flops_dgl"] = d["flops"]
            line["xla_flops_joint"] = j["flops"]
            line["xla_flops_ratio_dgl_joint"] = round(d["flops"] / j["flops"], 6)
    if "tf_allocator_step_bytes" in dgl:
        # TF's executor runs independent ops in parallel in a varying order,
        # so this peak varies from run to run by megabytes: compare medians
        # and allow the spread of the repeats.
        tf_steps = {m: [r["tf_allocator_step_bytes"] for r in runs[m]] for m in runs}
        d, j = _median(tf_steps["dgl"]), _median(tf_steps["joint"])
        tf_spread = max(max(v) - min(v) for v in tf_steps.values())
        line["tf_allocator_step_bytes_dgl"] = tf_steps["dgl"]
        line["tf_allocator_step_bytes_joint"] = tf_steps["joint"]
        line["tf_allocator_median_diff_bytes"] = d - j
        line["tf_allocator_repeat_spread_bytes"] = tf_spread
        line["tf_allocator_dgl_le_joint_plus_unimodal_logits"] = d <= j + logits_bytes
        line["tf_allocator_dgl_le_joint_plus_unimodal_logits_within_spread"] = (
            d <= j + logits_bytes + tf_spread
        )
    steps = {m: [r["rss_step_kib"] for r in runs[m]] for m in runs}
    d_kib, j_kib = _median(steps["dgl"]), _median(steps["joint"])
    spread = max(max(v) - min(v) for v in steps.values())
    line["rss_step_kib_dgl"] = steps["dgl"]
    line["rss_step_kib_joint"] = steps["joint"]
    line["rss_repeat_spread_kib"] = spread
    line["rss_dgl_le_joint_plus_unimodal_logits_within_spread"] = (
        d_kib * 1024 <= j_kib * 1024 + logits_bytes + spread * 1024
    )
    return line


if __name__ == "__main__":
    sys.exit(main())
