"""DGL against joint training on a regression and a multi-label task.

Both tasks come from `keras_dgl.datasets.synthetic` with three modalities of
decreasing informativeness (0.8, 0.4, 0.2; dims 16, 32, 8):

- regression: `task="regression"`, two targets, loss `"mse"`; scored by R²
  (higher is better) on the test split.
- multi-label: `task="multilabel"`, six labels, loss
  `BinaryCrossentropy(from_logits=True)`; scored by the macro ROC AUC over
  labels (scikit-learn) on the test split.

For each seed, both methods start from the same initial weights
(`MLPEncoder(hidden_units=(64, 32))` per modality, concat fusion) and train
with Adam(1e-3) for `--epochs` epochs; the weights of the epoch with the
lowest validation multimodal loss are kept. The table gives, per method,
the fused score, each modality's own prediction (the fusion layer with the
other modalities zeroed) and a linear probe of each frozen encoder
(`keras_dgl.diagnostics.linear_probe`: ridge regression R², or one logistic
regression per label scored by per-label accuracy), as mean ± std over
seeds, then the DGL - joint difference paired by seed.

  KERAS_BACKEND=jax python benchmarks/tasks_dgl_vs_joint.py [--seeds 0,1,2]
      [--epochs 30] [--tasks regression,multilabel]
"""

import argparse
import os
import platform

import numpy as np

MODALITIES = {
    "audio": {"dim": 16, "informativeness": 0.8},
    "video": {"dim": 32, "informativeness": 0.4},
    "text": {"dim": 8, "informativeness": 0.2},
}
TASKS = {
    "regression": {"data": {"task": "regression", "num_targets": 2}, "score": "R2"},
    "multilabel": {"data": {"task": "multilabel", "num_classes": 6}, "score": "AUC"},
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--tasks", default="regression,multilabel")
    p.add_argument("--methods", default="dgl,joint")
    args = p.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.tasks = args.tasks.split(",")
    args.methods = args.methods.split(",")
    return args


def score(task, outputs, targets):
    if task == "regression":
        residual = np.sum((targets - outputs) ** 2, axis=0)
        total = np.sum((targets - targets.mean(axis=0)) ** 2, axis=0)
        return float(np.mean(1.0 - residual / total))
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(targets, outputs, average="macro"))


def run(task, method, seed, epochs):
    import keras

    import keras_dgl

    splits = keras_dgl.datasets.synthetic(
        modalities=MODALITIES, seed=seed, **TASKS[task]["data"]
    )
    keras.utils.set_random_seed(seed)
    encoders = {
        name: keras_dgl.encoders.MLPEncoder(hidden_units=(64, 32)) for name in MODALITIES
    }
    model = keras_dgl.DGLModel(
        encoders, keras_dgl.layers.ConcatFusion(units=splits.num_classes),
        method=method,
    )
    loss = "mse" if task == "regression" else keras.losses.BinaryCrossentropy(
        from_logits=True
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    keep_best = keras.callbacks.EarlyStopping(
        monitor="val_multimodal_loss", mode="min", patience=epochs,
        restore_best_weights=True,
    )
    model.fit(splits.train, validation_data=splits.validation, epochs=epochs,
              callbacks=[keep_best], verbose=0)
    x_test, y_test = splits.numpy("test")
    predictions = model.predict_modalities(x_test, verbose=0)
    row = {name: score(task, predictions[name], y_test) for name in predictions}
    probe = keras_dgl.diagnostics.linear_probe(
        model, splits.numpy("train"), (x_test, y_test)
    )["linear_probe"]
    row.update({f"probe {name}": value for name, value in probe.items()})
    return row


def _mean_std(values):
    return f"{np.mean(values):.3f} ± {np.std(values):.3f}"


def main(argv=None):
    args = parse_args(argv)
    import keras

    print(f"backend {keras.backend.backend()}, {os.cpu_count()} CPUs, "
          f"{platform.machine()}, seeds {args.seeds}, {args.epochs} epochs, "
          "Adam 1e-3, MLPEncoder(64, 32), concat fusion")
    for task in args.tasks:
        results = {m: [run(task, m, s, args.epochs) for s in args.seeds]
                   for m in args.methods}
        columns = list(results[args.methods[0]][0])
        print(f"\n{task}: test {TASKS[task]['score']} (probe columns: "
              f"{'R2' if task == 'regression' else 'per-label accuracy'}), "
              "mean ± std over seeds")
        print(f"{'method':<8}" + "".join(f"{c:>16}" for c in columns))
        for method, rows in results.items():
            print(f"{method:<8}" + "".join(
                f"{_mean_std([r[c] for r in rows]):>16}" for c in columns))
        if {"dgl", "joint"} <= set(results):
            diffs = {c: [d[c] - j[c] for d, j in zip(results["dgl"], results["joint"])]
                     for c in columns}
            print(f"{'dgl-joint':<8}" + "".join(
                f"{np.mean(diffs[c]):>+9.3f} ± {np.std(diffs[c]):.3f}" for c in columns))


if __name__ == "__main__":
    main()
