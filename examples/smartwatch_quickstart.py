"""Quickstart: train a DGL model on the built-in smartwatch data.

The data: 6-axis inertial recordings of shoulder exercises (7 classes),
shipped with seglearn, split by subject. Two modalities, the accelerometer
and the gyroscope, each read by a small 1D convolutional encoder; a concat
fusion layer classifies their features. Under DGL each encoder learns only
from its own unimodal loss and the fusion layer only from the multimodal
loss. The script prints the fused test accuracy and the accuracy of each
modality's own prediction (the fusion layer's unimodal head).

Run (about a minute on a laptop CPU; any backend):

    python examples/smartwatch_quickstart.py
    KERAS_BACKEND=jax python examples/smartwatch_quickstart.py --method joint
    python examples/smartwatch_quickstart.py --quick      # a smoke test
"""

import argparse

import keras

import keras_dgl
from keras_dgl import datasets
from keras_dgl import encoders
from keras_dgl import layers


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="dgl", choices=("dgl", "joint", "joint_aux"),
                        help="training method (default: dgl)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs (default: 10)")
    parser.add_argument("--alpha", type=float, default=1.0,
                        help="weight of the unimodal losses (default: 1; with Adam "
                             "it does not change DGL)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="cap every split at this many batches (smoke tests)")
    parser.add_argument("--quick", action="store_true",
                        help="1 epoch of 2 batches per split, to check that it runs")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the subject split and the initialisation")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.max_steps = 1, 2
    # For 2 batches TensorFlow runs faster eagerly than after compiling the
    # step; JAX does not (run eagerly, it compiles every op on its own).
    args.run_eagerly = args.quick and keras.backend.backend() == "tensorflow"
    return args


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    # 50% window overlap for training (the loader's default is 75%) halves
    # an epoch's cost at about the same accuracy.
    splits = datasets.smartwatch(split_seed=args.seed, overlap=0.5)
    train, validation, test = splits.train, splits.validation, splits.test
    if args.max_steps:
        train, validation, test = (
            d.take(args.max_steps) for d in (train, validation, test)
        )

    model = keras_dgl.DGLModel(
        {
            name: encoders.Conv1DEncoder(filters=(16, 32, 64), kernel_size=5)
            for name in splits.input_shapes  # accelerometer, gyroscope
        },
        layers.ConcatFusion(num_classes=splits.num_classes),
        alpha=args.alpha,
        method=args.method,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-3), metrics=["accuracy"],
                  run_eagerly=args.run_eagerly)
    model.fit(train, validation_data=validation, epochs=args.epochs, verbose=2)

    logs = model.evaluate(test, verbose=0, return_dict=True)
    print(f"\n{args.method} on smartwatch ({keras.backend.backend()} backend), "
          f"test subjects {splits.info['subjects']['test']}:")
    print(f"  fused         accuracy {logs['accuracy']:.4f}")
    for name in model.modality_names:
        print(f"  {name:<13} accuracy {logs[f'{name}_accuracy']:.4f}")
    return logs


if __name__ == "__main__":
    main()
