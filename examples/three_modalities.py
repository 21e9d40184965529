"""Bring your own encoders: three modalities and attention fusion.

Any Keras layer that maps a modality's batch to `(batch, dim)` features can
be an encoder, here plain `keras.Sequential` models of different shapes,
one per modality. The data is `keras_dgl.datasets.synthetic` with three
modalities of decreasing informativeness (a strong "audio", a middling
"video" of another dimension, a weak "text"). `AttentionFusion` lets every
modality's token attend to the others (the dense cross-modal interaction
case). The script trains DGL and joint training with the same budget and
seed and prints the fused and per-modality test accuracy of each; with
`--out DIR` it also saves each trained model (`<method>.keras`) and the
accuracies (`results.json`).

Run:

    python examples/three_modalities.py
    python examples/three_modalities.py --methods dgl --epochs 5 --out runs
    python examples/three_modalities.py --quick      # a smoke test
"""

import argparse
import os

import keras

import keras_dgl
from keras_dgl import datasets
from keras_dgl import layers
from keras_dgl.experiments import store

MODALITIES = {
    "audio": {"dim": 16, "informativeness": 0.8},
    "video": {"dim": 32, "informativeness": 0.5},
    "text": {"dim": 8, "informativeness": 0.3},
}


def make_encoders():
    """New encoders, one per modality; each ends in a feature vector."""
    return {
        "audio": keras.Sequential(
            [keras.layers.Dense(64, activation="relu"), keras.layers.Dense(32)],
            name="audio_encoder",
        ),
        "video": keras.Sequential(
            [
                keras.layers.Dense(64, activation="relu"),
                keras.layers.Dropout(0.1),
                keras.layers.Dense(32, activation="relu"),
            ],
            name="video_encoder",
        ),
        "text": keras.Sequential(
            [keras.layers.Dense(16, activation="tanh")], name="text_encoder"
        ),
    }


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="dgl,joint",
                        help="comma list of dgl, joint, joint_aux (default: dgl,joint)")
    parser.add_argument("--epochs", type=int, default=15, help="epochs (default: 15)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="cap every split at this many batches (smoke tests)")
    parser.add_argument("--quick", action="store_true",
                        help="1 epoch of 2 batches per split, to check that it runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None,
                        help="folder for the trained models and results.json")
    args = parser.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    if args.quick:
        args.epochs, args.max_steps = 1, 2
    # For 2 batches TensorFlow runs faster eagerly than after compiling the
    # step; JAX does not (run eagerly, it compiles every op on its own).
    args.run_eagerly = args.quick and keras.backend.backend() == "tensorflow"
    return args


def load_data(args):
    """The three-modality splits, each capped at `--max-steps` batches."""
    splits = datasets.synthetic(num_classes=6, modalities=MODALITIES, seed=args.seed)
    parts = [splits.train, splits.validation, splits.test]
    if args.max_steps:
        parts = [part.take(args.max_steps) for part in parts]
    return splits, parts


def main(argv=None):
    args = parse_args(argv)
    splits, (train, validation, test) = load_data(args)
    results = {}
    for method in args.methods:
        # Same seed per method: same initialisation, so the methods compare.
        keras.utils.set_random_seed(args.seed)
        model = keras_dgl.DGLModel(
            make_encoders(),
            layers.AttentionFusion(num_classes=splits.num_classes, embed_dim=32,
                                   num_heads=4),
            method=method,
        )
        model.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"],
                      run_eagerly=args.run_eagerly)
        model.fit(train, validation_data=validation, epochs=args.epochs, verbose=0)
        results[method] = model.evaluate(test, verbose=0, return_dict=True)
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            with store.atomic_path(os.path.join(args.out, f"{method}.keras")) as path:
                model.save(path)

    names = list(MODALITIES)
    print(f"Test accuracy, {args.epochs} epochs, {keras.backend.backend()} backend")
    print(f"{'method':<10} {'fused':>7} " + " ".join(f"{n:>7}" for n in names))
    for method, logs in results.items():
        row = " ".join(f"{logs[f'{n}_accuracy']:>7.4f}" for n in names)
        print(f"{method:<10} {logs['accuracy']:>7.4f} {row}")
    if args.out:
        store.write_json(os.path.join(args.out, "results.json"), results)
    return results


if __name__ == "__main__":
    main()
