"""Search DGL hyperparameters with KerasTuner and `DGLHyperModel`.

`keras_dgl.tuner.DGLHyperModel` searches alpha, the learning rate, the
fusion layer and the method; here the encoders' width is searched too, by
defining a hyperparameter inside `encoder_builder`. Every trial gets new
encoders (the tuner clears the Keras session between trials). Trials are
compared on validation accuracy; the test split scores the best model once.

Run:

    python examples/tuner_search.py                        # synthetic data
    python examples/tuner_search.py --dataset smartwatch --tuner bayesian
    python examples/tuner_search.py --quick                # a smoke test
"""

import argparse

import keras
import keras_tuner

from keras_dgl import datasets
from keras_dgl import encoders
from keras_dgl.tuner import DGLHyperModel


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic", choices=("synthetic", "smartwatch"))
    parser.add_argument("--tuner", default="random", choices=("random", "hyperband", "bayesian"))
    parser.add_argument("--max-trials", type=int, default=8,
                        help="trials (random, bayesian; default: 8)")
    parser.add_argument("--epochs", type=int, default=5,
                        help="epochs per trial (Hyperband's max; default: 5)")
    parser.add_argument("--directory", default="dgl-tuner-search",
                        help="tuner state; runs resume from it unless --overwrite")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="cap every split at this many batches (smoke tests)")
    parser.add_argument("--quick", action="store_true",
                        help="2 trials of 1 epoch with 2 batches per split: a smoke test")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.quick:
        args.max_trials, args.epochs, args.max_steps = 2, 1, 2
    # For 2 batches TensorFlow runs faster eagerly than after compiling the
    # step; JAX does not (run eagerly, it compiles every op on its own).
    args.run_eagerly = args.quick and keras.backend.backend() == "tensorflow"
    return args


def main(argv=None):
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    if args.dataset == "smartwatch":
        splits = datasets.smartwatch(split_seed=args.seed, overlap=0.5)
    else:
        splits = datasets.synthetic(num_classes=6, seed=args.seed)
    train, validation, test = splits.train, splits.validation, splits.test
    if args.max_steps:
        train, validation, test = (
            d.take(args.max_steps) for d in (train, validation, test)
        )

    def encoder_builder(hp):
        # Searched with the DGL hyperparameters; new layers on every call.
        width = hp.Choice("encoder_width", [16, 32, 64])
        if args.dataset == "smartwatch":
            return {
                name: encoders.Conv1DEncoder(filters=(width // 2, width), kernel_size=5)
                for name in splits.input_shapes
            }
        return {
            name: encoders.MLPEncoder(hidden_units=(2 * width, width))
            for name in splits.input_shapes
        }

    hypermodel = DGLHyperModel(
        encoder_builder,
        num_classes=splits.num_classes,
        input_shapes=splits.input_shapes,
        # A Choice; None would search all five fusion layers.
        fusion=["concat", "gated", "film"],
        method=["dgl", "joint"],
        optimizer="sgd",  # alpha scales the encoders' step only with SGD
        fusion_kwargs={"gated": {"hidden_dim": 64}, "film": {"hidden_dim": 64}},
        compile_kwargs={"run_eagerly": args.run_eagerly},
    )
    common = dict(objective="val_accuracy", seed=args.seed, directory=args.directory,
                  project_name=f"{args.dataset}-{keras.backend.backend()}",
                  overwrite=args.overwrite)
    if args.tuner == "hyperband":
        tuner = keras_tuner.Hyperband(hypermodel, max_epochs=args.epochs, factor=3, **common)
    elif args.tuner == "bayesian":
        tuner = keras_tuner.BayesianOptimization(
            hypermodel, max_trials=args.max_trials, **common)
    else:
        tuner = keras_tuner.RandomSearch(hypermodel, max_trials=args.max_trials, **common)

    # shuffle=False: the training pipeline already shuffles.
    tuner.search(train, validation_data=validation, epochs=args.epochs,
                 shuffle=False, verbose=0)
    tuner.results_summary(num_trials=3)

    best_hp = tuner.get_best_hyperparameters(1)[0]
    best_model = tuner.get_best_models(1)[0]
    logs = best_model.evaluate(test, verbose=0, return_dict=True)
    print("\nBest hyperparameters:", best_hp.values)
    print(f"Test accuracy of the best model: {logs['accuracy']:.4f}")
    return best_hp, logs


if __name__ == "__main__":
    main()
