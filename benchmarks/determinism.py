"""What `keras-dgl train --deterministic` (the default) costs, per backend.

Runs the same small `keras-dgl train` command with `--deterministic` and
with `--no-deterministic`, each in a fresh process (the modes cannot be
turned off in a process once on), alternating the two `--repeats` times per
backend, and prints the medians of each mode's training wall seconds (the
runner's `train_seconds`: `fit` with validation, summed over the runs) and
of the whole process's CPU seconds (imports and scoring included), their
ratios, and whether the two modes gave the same table.

  python benchmarks/determinism.py [--backends tensorflow,jax,torch]
      [--epochs 4] [--repeats 2]
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--backends", default="tensorflow,jax,torch")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--repeats", type=int, default=2)
    return p.parse_args(argv)


def run_once(backend, deterministic, epochs, out):
    command = [
        sys.executable, "-m", "keras_dgl.cli", "train", "--backend", backend,
        "--dataset", "synthetic", "--methods", "dgl,joint", "--seeds", "1",
        "--epochs", str(epochs), "--no-probe", "--no-refit", "-q", "--out", out,
        "--deterministic" if deterministic else "--no-deterministic",
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONHASHSEED="0")
    env.pop("KERAS_BACKEND", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, check=True, env=env, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    with open(os.path.join(out, "results.json")) as handle:
        results = json.load(handle)
    seconds = sum(r["train_seconds"] for r in results["runs"])
    return seconds, cpu, results["table"]


def main(argv=None):
    args = parse_args(argv)
    print(f"cores: {os.cpu_count()}, {platform.processor() or platform.machine()}")
    print("| backend | train s, deterministic | train s, not | ratio | "
          "CPU s, deterministic | CPU s, not | ratio | same table |")
    print("|---|---|---|---|---|---|---|---|")
    for backend in args.backends.split(","):
        times = {True: [], False: []}
        cpus = {True: [], False: []}
        tables = {True: set(), False: set()}
        for _ in range(args.repeats):
            for mode in (True, False):
                with tempfile.TemporaryDirectory() as out:
                    seconds, cpu, table = run_once(backend, mode, args.epochs, out)
                times[mode].append(seconds)
                cpus[mode].append(cpu)
                tables[mode].add(table)
        on, off = statistics.median(times[True]), statistics.median(times[False])
        cpu_on, cpu_off = statistics.median(cpus[True]), statistics.median(cpus[False])
        same = len(tables[True] | tables[False]) == 1
        print(f"| {backend} | {on:.1f} | {off:.1f} | {on / off:.3f} | {cpu_on:.1f} "
              f"| {cpu_off:.1f} | {cpu_on / cpu_off:.3f} | {same} |", flush=True)


if __name__ == "__main__":
    main()
