"""Regression with three modalities: DGL against joint training.

DGL is not specific to classification: each encoder learns from its own
unimodal loss, the fusion layer from the multimodal one, whatever the loss.
Here the loss is the mean squared error on two real-valued targets, which
`keras_dgl.datasets.synthetic(task="regression")` derives from latent
factors that three modalities observe at different signal-to-noise ratios
(a strong "audio", a middling "video", a weak "text"). The fusion layer has
one output per target (`units=2`). The script trains DGL and joint training
with the same encoders, initialisation, budget and seed, and prints each
one's test mean absolute error and R² for the fused prediction and for each
modality's own prediction. With `--out DIR` it also saves each trained
model (`<method>.keras`).

Run:

    python examples/three_modalities_regression.py
    python examples/three_modalities_regression.py --methods dgl --epochs 5 --out runs
    python examples/three_modalities_regression.py --quick      # a smoke test
"""

import argparse
import os

import keras
import numpy as np

import keras_dgl
from keras_dgl import datasets
from keras_dgl import layers
from keras_dgl.experiments import store

MODALITIES = {
    "audio": {"dim": 16, "informativeness": 0.8},
    "video": {"dim": 32, "informativeness": 0.4},
    "text": {"dim": 8, "informativeness": 0.2},
}
NUM_TARGETS = 2


def make_encoders():
    """New encoders, one per modality; each ends in a feature vector."""
    return {
        name: keras_dgl.encoders.MLPEncoder(hidden_units=(64, 32), name=f"{name}_encoder")
        for name in MODALITIES
    }


def r2_score(outputs, targets):
    """R² averaged over the targets (1 is perfect, 0 predicts the mean)."""
    residual = np.sum((targets - outputs) ** 2, axis=0)
    total = np.sum((targets - targets.mean(axis=0)) ** 2, axis=0)
    return float(np.mean(1.0 - residual / total))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="dgl,joint",
                        help="comma list of dgl, joint, joint_aux (default: dgl,joint)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs (default: 20)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="cap every split at this many batches (smoke tests)")
    parser.add_argument("--quick", action="store_true",
                        help="1 epoch of 2 batches per split, to check that it runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="folder for the trained models")
    args = parser.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.quick:
        args.epochs, args.max_steps = 1, 2
    return args


def load_data(args):
    """The synthetic regression splits of `args.seed`."""
    return datasets.synthetic(
        task="regression", num_targets=NUM_TARGETS, modalities=MODALITIES,
        seed=args.seed,
    )


def main(argv=None):
    args = parse_args(argv)
    splits = load_data(args)
    train, validation = splits.train, splits.validation
    x_test, y_test = splits.numpy("test")
    if args.max_steps:
        train, validation = (d.take(args.max_steps) for d in (train, validation))
    results = {}
    for method in args.methods:
        # Same seed per method: same initialisation, so the methods compare.
        keras.utils.set_random_seed(args.seed)
        model = keras_dgl.DGLModel(
            make_encoders(), layers.ConcatFusion(units=splits.num_classes),
            method=method,
        )
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse",
                      metrics=["mae"])
        model.fit(train, validation_data=validation, epochs=args.epochs, verbose=0)
        logs = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
        predictions = model.predict_modalities(x_test, verbose=0)
        results[method] = {
            name: (logs["mae" if name == "fused" else f"{name}_mae"],
                   r2_score(predictions[name], y_test))
            for name in ["fused"] + list(MODALITIES)
        }
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            with store.atomic_path(os.path.join(args.out, f"{method}.keras")) as path:
                model.save(path)

    names = ["fused"] + list(MODALITIES)
    print(f"Test MAE / R², {NUM_TARGETS} targets, {args.epochs} epochs, "
          f"{keras.backend.backend()} backend")
    print(f"{'method':<10} " + " ".join(f"{n:>17}" for n in names))
    for method, scores in results.items():
        row = " ".join(f"{mae:>7.4f} / {r2:>7.4f}" for mae, r2 in scores.values())
        print(f"{method:<10} {row}")
    return results


if __name__ == "__main__":
    main()
