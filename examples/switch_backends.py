"""Run the same DGL training on TensorFlow, JAX and PyTorch.

Keras fixes its backend when it is first imported, from the environment
variable `KERAS_BACKEND`, so each backend runs in its own Python process:
this script starts itself once per installed backend with `--worker` and
that variable set, and prints one line per backend. The model code is the
same on all three. The numbers differ a little between backends: each has
its own random number generator, so the same seed gives different initial
weights.

Run:

    python examples/switch_backends.py
    python examples/switch_backends.py --backends jax,torch --epochs 10
    python examples/switch_backends.py --quick      # a smoke test
"""

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time

BACKENDS = ("tensorflow", "jax", "torch")
RESULT_PREFIX = "RESULT "


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help="comma list (default: every installed backend)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs (default: 5)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="cap every split at this many batches (smoke tests)")
    parser.add_argument("--quick", action="store_true",
                        help="1 epoch of 2 batches per split, to check that it runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.max_steps = 1, 2
    return args


def train(args):
    """The training every backend runs; returns a dict of results."""
    # Imported here: the parent process must not import Keras (nor pay for
    # it); each worker imports it under its own KERAS_BACKEND.
    import keras

    import keras_dgl
    from keras_dgl import datasets
    from keras_dgl import encoders
    from keras_dgl import layers

    start = time.perf_counter()
    keras.utils.set_random_seed(args.seed)
    splits = datasets.synthetic(num_classes=6, seed=args.seed)
    train_data, validation, test = splits.train, splits.validation, splits.test
    if args.max_steps:
        train_data, validation, test = (
            d.take(args.max_steps) for d in (train_data, validation, test)
        )
    model = keras_dgl.DGLModel(
        {name: encoders.MLPEncoder(hidden_units=(64, 32)) for name in splits.input_shapes},
        layers.ConcatFusion(num_classes=splits.num_classes),
        alpha=2.0,
    )
    # For 2 batches TensorFlow runs faster eagerly than after compiling the
    # step; JAX does not (run eagerly, it compiles every op on its own).
    run_eagerly = args.quick and keras.backend.backend() == "tensorflow"
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), metrics=["accuracy"],
                  run_eagerly=run_eagerly)
    model.fit(train_data, validation_data=validation, epochs=args.epochs, verbose=0)
    logs = model.evaluate(test, verbose=0, return_dict=True)
    return {
        "backend": keras.backend.backend(),
        "accuracy": float(logs["accuracy"]),
        "modalities": {n: float(logs[f"{n}_accuracy"]) for n in model.modality_names},
        "seconds": time.perf_counter() - start,
    }


def run_worker(backend, args):
    """Runs `train` under `backend` in a new process; returns its result or an error."""
    command = [sys.executable, os.path.abspath(__file__), "--worker",
               "--epochs", str(args.epochs), "--seed", str(args.seed)]
    if args.max_steps:
        command += ["--max-steps", str(args.max_steps)]
    if args.quick:
        command.append("--quick")
    env = dict(os.environ, KERAS_BACKEND=backend)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    process = subprocess.run(command, env=env, capture_output=True, text=True)
    for line in process.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    tail = (process.stderr or process.stdout).strip().splitlines()[-1:]
    return {"backend": backend, "error": tail[0] if tail else f"exit {process.returncode}"}


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        print(RESULT_PREFIX + json.dumps(train(args)), flush=True)
        return 0
    requested = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = [b for b in requested if b not in BACKENDS]
    if unknown:
        sys.exit(f"unknown backend(s) {unknown}; choose from {BACKENDS}")
    failures = 0
    for backend in requested:
        if importlib.util.find_spec(backend) is None:
            print(f"{backend:<11} not installed, skipped")
            continue
        result = run_worker(backend, args)
        if "error" in result:
            failures += 1
            print(f"{backend:<11} FAILED: {result['error']}")
            continue
        modalities = ", ".join(f"{n} {a:.3f}" for n, a in result["modalities"].items())
        print(f"{backend:<11} fused test accuracy {result['accuracy']:.3f} "
              f"({modalities}) in {result['seconds']:.1f} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
