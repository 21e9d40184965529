"""Fused test accuracy with and without a fusion refit, paired over seeds.

For each dataset, seed and method, one model is trained as in the
experiment presets (Adam, smartwatch: 12 epochs of batch 32 with 50%-overlap
training windows; synthetic: 10 epochs of batch 64) but with a cosine
learning-rate decay to zero and the epoch chosen on validation accuracy
(`EarlyStopping(restore_best_weights=True)` with patience covering the whole
budget, so the schedule always runs to its end). Its fused test accuracy is
the "plain" score. Then `model.refit_fusion` re-trains only the fusion head
on inference-mode features of the frozen encoders, its epoch chosen on the
validation loss, and the fused test accuracy is the "refit" score. Both
scores come from the same model, so the difference refit - plain is paired.
DGL and joint training of one seed share the data split and the initial
weights.

Models: the presets' encoders (`keras_dgl.experiments.presets`: one
`Conv1DEncoder(filters=(16, 32, 64))` per smartwatch modality, one
`MLPEncoder(hidden_units=(64, 32))` per synthetic modality) and
`ConcatFusion`. Prints one JSON line per run (to stderr) and a markdown
table (mean +- sample std over seeds):

  KERAS_BACKEND=jax python benchmarks/refit_comparison.py [--seeds 3]
      [--datasets smartwatch,synthetic] [--methods dgl,joint]
      [--schedule cosine|constant] [--json results.json]
"""

import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np

from keras_dgl.experiments.presets import PRESETS


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--datasets", default="smartwatch,synthetic")
    p.add_argument("--methods", default="dgl,joint")
    p.add_argument("--schedule", choices=("cosine", "constant"), default="cosine")
    p.add_argument("--refit-epochs", type=int, default=100)
    p.add_argument("--refit-patience", type=int, default=10)
    p.add_argument("--json", default=None, help="write every run's record here")
    return p.parse_args(argv)


def load(dataset, seed):
    from keras_dgl import registry

    preset = PRESETS[dataset]
    entry = registry.DATASETS[dataset]
    return registry.dataset_loader(dataset)(
        batch_size=preset["batch_size"],
        **{entry.seed_argument: seed},
        **preset["data_options"],
    )


def build(dataset, method, splits, steps, schedule):
    import keras

    import keras_dgl

    from keras_dgl.experiments.factories import make_encoder

    preset = PRESETS[dataset]
    encoders = {
        name: make_encoder(dataset, shape) for name, shape in splits.input_shapes.items()
    }
    fusion = keras_dgl.layers.ConcatFusion(num_classes=splits.num_classes)
    model = keras_dgl.DGLModel(encoders, fusion, method=method)
    learning_rate = preset["learning_rate"]
    if schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=preset["epochs"] * steps
        )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate), metrics=["accuracy"]
    )
    model.build({n: (None,) + tuple(s) for n, s in splits.input_shapes.items()})
    return model


def accuracy(model, data):
    from keras_dgl.utils import accuracy as logits_accuracy

    features, labels = data
    return logits_accuracy(model.predict(features, batch_size=256, verbose=0), labels)


def run_one(dataset, method, seed, splits, arrays, args):
    import keras

    preset = PRESETS[dataset]
    steps = int(splits.train.cardinality())
    if steps < 0:  # unknown cardinality: count once
        steps = sum(1 for _ in splits.train)
    keras.utils.clear_session()
    # Same seed for both methods: same initial weights, so the runs pair up.
    keras.utils.set_random_seed(seed)
    model = build(dataset, method, splits, steps, args.schedule)
    choose_epoch = keras.callbacks.EarlyStopping(
        monitor="val_accuracy",
        mode="max",
        patience=preset["epochs"],
        restore_best_weights=True,
    )
    started = time.perf_counter()
    history = model.fit(
        splits.train,
        validation_data=splits.validation,
        epochs=preset["epochs"],
        callbacks=[choose_epoch],
        verbose=0,
    )
    train_seconds = time.perf_counter() - started
    plain = accuracy(model, arrays["test"])
    plain_val = accuracy(model, arrays["validation"])
    refit = model.refit_fusion(
        arrays["train"],
        arrays["validation"],
        epochs=args.refit_epochs,
        patience=args.refit_patience,
    )
    return {
        "dataset": dataset,
        "method": method,
        "seed": seed,
        "best_epoch": int(np.argmax(history.history["val_accuracy"])) + 1,
        "plain_test": plain,
        "refit_test": accuracy(model, arrays["test"]),
        "plain_val": plain_val,
        "refit_val": refit["after"]["val_accuracy"],
        "refit_best_epoch": refit["best_epoch"],
        "refit_epochs_run": refit["epochs_run"],
        "train_seconds": round(train_seconds, 1),
        "refit_seconds": round(sum(refit["seconds"].values()), 1),
    }


def mean_std(values):
    values = np.asarray(values, dtype=float)
    std = float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")
    return float(np.mean(values)), std


def pct(values, signed=False):
    mean, std = mean_std(100.0 * np.asarray(values))
    sign = "+" if signed else ""
    if math.isnan(std):
        return f"{mean:{sign}.2f}"
    return f"{mean:{sign}.2f} ± {std:.2f}"


def table(records, datasets, methods):
    lines = [
        "| dataset | method | plain test acc (%) | refit test acc (%) "
        "| refit − plain (pts) | refit better / same / worse "
        "| val acc plain → refit (%) | refit epoch (mean) | refit s (mean) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset in datasets:
        for method in methods:
            rows = [
                r for r in records
                if r["dataset"] == dataset and r["method"] == method
            ]
            if not rows:
                continue
            plain = [r["plain_test"] for r in rows]
            refit = [r["refit_test"] for r in rows]
            diff = [b - a for a, b in zip(plain, refit)]
            better = sum(d > 1e-9 for d in diff)
            worse = sum(d < -1e-9 for d in diff)
            same = len(rows) - better - worse
            val = (
                f"{100 * np.mean([r['plain_val'] for r in rows]):.2f} → "
                f"{100 * np.mean([r['refit_val'] for r in rows]):.2f}"
            )
            lines.append(
                f"| {dataset} | {method} | {pct(plain)} | {pct(refit)} "
                f"| {pct(diff, signed=True)} | {better} / {same} / {worse} "
                f"| {val} | {np.mean([r['refit_best_epoch'] for r in rows]):.1f} "
                f"| {np.mean([r['refit_seconds'] for r in rows]):.1f} |"
            )
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    import keras

    datasets = [d for d in args.datasets.split(",") if d]
    methods = [m for m in args.methods.split(",") if m]
    started = time.perf_counter()
    records = []
    for dataset in datasets:
        for seed in range(args.seeds):
            splits = load(dataset, seed)
            arrays = {s: splits.numpy(s) for s in ("train", "validation", "test")}
            for method in methods:
                record = run_one(dataset, method, seed, splits, arrays, args)
                records.append(record)
                print(json.dumps(record), file=sys.stderr, flush=True)
    wall = time.perf_counter() - started
    print(
        f"Fusion refit vs plain, {args.seeds} seeds, schedule={args.schedule}, "
        f"backend={keras.backend.backend()}, keras {keras.__version__}, "
        f"{platform.machine()} {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}, "
        f"wall {wall:.0f} s"
    )
    print()
    print(table(records, datasets, methods))
    if args.json:
        with open(args.json, "w") as f:
            record = {"args": vars(args), "records": records, "wall_s": wall}
            json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
