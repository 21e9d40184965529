"""Fused test accuracy and wall time of every training method, same budget.

Every method of `keras_dgl.models.methods` (DGL, joint training and the
baselines) trains the same model on the built-in smartwatch data with the
settings of the default `keras-dgl train` run: subject splits of
`keras_dgl.datasets.smartwatch(batch_size=32, overlap=0.5, split_seed=s)`,
one `Conv1DEncoder(filters=(16, 32, 64), kernel_size=5)` per modality,
`ConcatFusion`, Adam with learning rate 1e-3, 12 epochs, `alpha` 1, and the
epoch chosen on validation accuracy (its weights restored before testing).
All methods of one split start from the same initial weights (the seed is
set before each model is built). Methods keep their published defaults,
except ReconBoost, which runs one epoch per boosting stage and per
rectification (BalanceBenchmark's setting; its paper's 4 + 4 would fit 1.5
stages into 12 epochs). `gblend` first estimates its loss weights with
`keras_dgl.gblend_weights` (1 + number of modalities extra trainings of 12
epochs); that time is included in its wall time.

Prints, per method, the test accuracy (mean +- sample std over the splits,
and per split) and the wall time of one run (model building, the weight
estimation for gblend, and `fit` with validation), as a markdown table;
with `--json` it also writes every run's record.

  KERAS_BACKEND=tensorflow python benchmarks/method_comparison.py
      [--seeds 0,1,2] [--methods dgl,joint,...] [--epochs 12] [--json out.json]
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time

import keras
import numpy as np

import keras_dgl
from keras_dgl.models.methods import METHODS

EPOCHS = 12
BATCH_SIZE = 32
LEARNING_RATE = 1e-3
# Methods with options other than their published defaults, and why: see
# the module docstring.
OPTIONS = {"reconboost": {"stage_epochs": 1, "rectify_epochs": 1}}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", default="0,1,2", help="comma list of split seeds")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--epochs", type=int, default=EPOCHS)
    p.add_argument("--json", default=None, help="write every run's record here")
    args = p.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.methods = args.methods.split(",")
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        p.error(f"unknown methods {unknown}; choose from {','.join(METHODS)}")
    return args


class BestWeights(keras.callbacks.Callback):
    """Keeps the weights of the epoch with the best validation accuracy."""

    def __init__(self):
        super().__init__()
        self.best, self.epoch, self.weights = None, None, None

    def on_epoch_end(self, epoch, logs=None):
        value = float(logs["val_accuracy"])
        # Strictly better only: ties keep the earlier epoch.
        if self.best is None or value > self.best:
            self.best, self.epoch = value, epoch
            self.weights = self.model.get_weights()


def build(method, splits, seed, **kwargs):
    keras.utils.clear_session()
    keras.utils.set_random_seed(seed)
    encoders = {
        name: keras_dgl.encoders.Conv1DEncoder(filters=(16, 32, 64), kernel_size=5)
        for name in splits.input_shapes
    }
    model = keras_dgl.DGLModel(
        encoders,
        keras_dgl.layers.ConcatFusion(num_classes=splits.num_classes),
        alpha=kwargs.pop("alpha", 1.0),
        method=method,
        method_options=OPTIONS.get(method),
        **kwargs,
    )
    model.build({n: (None,) + tuple(s) for n, s in splits.input_shapes.items()})
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE), metrics=["accuracy"]
    )
    return model


def run(method, seed, epochs):
    splits = keras_dgl.datasets.smartwatch(
        batch_size=BATCH_SIZE, overlap=0.5, split_seed=seed
    )
    started = time.time()
    overrides = {}
    if method == "gblend":

        def builder(method, **kwargs):
            return build(method, splits, seed, **kwargs)

        weights = dict(
            keras_dgl.gblend_weights(
                builder, splits.train, splits.validation, epochs=epochs
            )["weights"]
        )
        overrides = {"fused_weight": weights.pop("fused"), "alpha": weights}
    model = build(method, splits, seed, **overrides)
    best = BestWeights()
    model.fit(
        splits.train,
        validation_data=splits.validation,
        epochs=epochs,
        callbacks=[best],
        verbose=0,
        shuffle=False,
    )
    seconds = time.time() - started
    model.set_weights(best.weights)
    x, y = splits.numpy("test")
    accuracy = float(np.mean(np.argmax(model.predict(x, verbose=0), -1) == y))
    return {
        "method": method,
        "seed": seed,
        "test_accuracy": accuracy,
        "best_epoch": best.epoch + 1,
        "best_val_accuracy": best.best,
        "seconds": round(seconds, 1),
    }


def _mean_std(values):
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.mean(values), std


def main(argv=None):
    args = parse_args(argv)
    records = []
    for method in args.methods:
        for seed in args.seeds:
            record = run(method, seed, args.epochs)
            print(json.dumps(record), file=sys.stderr, flush=True)
            records.append(record)
    print(
        f"Smartwatch, concat fusion, Adam 1e-3, {args.epochs} epochs, batch "
        f"{BATCH_SIZE}; epoch chosen on validation accuracy; splits "
        f"{','.join(map(str, args.seeds))}; backend {keras.backend.backend()}, "
        f"keras {keras.__version__}, {os.cpu_count()} CPU cores, "
        f"{platform.machine()}"
    )
    print()
    print("| method | test accuracy (%) | per split | wall time per run (s) |")
    print("|---|---|---|---|")
    for method in args.methods:
        rows = [r for r in records if r["method"] == method]
        mean, std = _mean_std([100 * r["test_accuracy"] for r in rows])
        seconds, seconds_std = _mean_std([r["seconds"] for r in rows])
        splits = ", ".join(f"{100 * r['test_accuracy']:.1f}" for r in rows)
        print(
            f"| `{method}` | {mean:.1f} ± {std:.1f} | {splits} | "
            f"{seconds:.0f} ± {seconds_std:.0f} |"
        )
    if args.json:
        partial = args.json + ".partial"
        with open(partial, "w") as f:
            json.dump(records, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, args.json)


if __name__ == "__main__":
    main()
