"""`run_tune`: a small KerasTuner search on a built-in data set (`keras-dgl tune`)."""

import os
import time

import keras

from keras_dgl import registry
from keras_dgl.experiments.errors import ExperimentError
from keras_dgl.experiments.factories import check_data_options
from keras_dgl.experiments.factories import make_encoder
from keras_dgl.experiments.presets import PRESETS
from keras_dgl.tuner import DGLHyperModel


def run_tune(
    dataset="smartwatch",
    max_trials=6,
    epochs=6,
    directory="dgl-tune",
    tuner="random",
    fusion=None,
    method=None,
    alpha=None,
    learning_rate=None,
    optimizer="sgd",
    batch_size=None,
    seed=0,
    overwrite=False,
    data_options=None,
    verbose=0,
    log=print,
):
    """Searches DGL hyperparameters on a built-in data set and scores the best.

    Trials are compared on `val_accuracy` (the validation split); the test
    split is used once, to score the best model. The smartwatch data uses
    `keras_dgl.encoders.Conv1DEncoder` encoders (filters 16, 32, 64) and
    validation / test subjects chosen by `seed`; the synthetic data uses
    `MLPEncoder`s. With the defaults (6 trials of 6 epochs) the smartwatch
    search takes a few minutes on two CPU cores. Works on any backend.

    Args:
        dataset: str. `"smartwatch"` (default) or `"synthetic"`.
        max_trials: int. Trials of `"random"` and `"bayesian"`; for
            `"hyperband"` it is ignored (Hyperband's budget follows from
            `epochs`). Defaults to `6`.
        epochs: int. Epochs per trial (Hyperband's `max_epochs`). Defaults
            to `6`.
        directory: str. Folder of the tuner's state; running again with the
            same folder resumes the search unless `overwrite`. Defaults to
            `"dgl-tune"`.
        tuner: str. `"random"` (default), `"hyperband"` or `"bayesian"`.
        fusion, method, alpha, learning_rate: overrides of the search
            space, as in `DGLHyperModel` (`None`: default space; a value:
            fixed; a list: choices).
        optimizer: `"sgd"` (default, momentum 0.9) or `"adam"`. With Adam,
            alpha does not change DGL.
        batch_size: int or `None` (the loader's default: 32 for
            smartwatch, 64 for synthetic).
        seed: int. Seeds the data split, the initialisation and the tuner.
            Defaults to `0`.
        overwrite: bool. Start the search afresh in `directory`. Defaults to
            `False`.
        data_options: dict or `None`. Extra arguments of the data loader.
        verbose: int. Keras `fit` verbosity during trials. Defaults to `0`.
        log: callable taking one string, for the report. Defaults to
            `print`.

    Returns:
        A dict: `best_hyperparameters` (the active values), `val_accuracy`
        (the best trial's score), `test_accuracy` (of the best model),
        `trials` (count), `seconds`, `backend` and `model` (the best model).

    Example:

    ```python
    result = keras_dgl.experiments.run_tune(
        "smartwatch", max_trials=4, epochs=4, directory="/tmp/dgl-tune"
    )
    result["best_hyperparameters"]  # {"method": "dgl", "alpha": 2.7, ...}
    ```
    """
    datasets = registry.builtin_datasets()
    if dataset not in datasets:
        raise ValueError(f"Unknown `dataset` {dataset!r}. Expected one of {datasets}.")
    if tuner not in registry.TUNERS:
        raise ValueError(
            f"Unknown `tuner` {tuner!r}. Expected one of {tuple(registry.TUNERS)}."
        )
    for name, value in (("max_trials", max_trials), ("epochs", epochs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive int. Received: {value!r}")
    start = time.perf_counter()
    preset = PRESETS[dataset]
    options = {**preset["data_options"], **(data_options or {})}
    if batch_size is not None:
        options["batch_size"] = batch_size
    try:
        check_data_options(dataset, options)
    except ExperimentError as error:
        raise ValueError(str(error)) from None
    entry = registry.DATASETS[dataset]
    splits = registry.dataset_loader(dataset)(**{entry.seed_argument: seed}, **options)

    def encoder_builder(hp):
        return {
            name: make_encoder(dataset, shape)
            for name, shape in splits.input_shapes.items()
        }

    keras.utils.set_random_seed(seed)
    hypermodel = DGLHyperModel(
        encoder_builder,
        num_classes=splits.num_classes,
        input_shapes=splits.input_shapes,
        alpha=alpha,
        learning_rate=learning_rate,
        fusion=fusion,
        method=method,
        optimizer=optimizer,
        fusion_kwargs=preset["fusion_config"],
    )
    common = dict(
        objective="val_accuracy",
        seed=seed,
        directory=directory,
        project_name=f"{dataset}-{keras.backend.backend()}",
        overwrite=overwrite,
    )
    search_class = registry.tuner_class(tuner)
    if tuner == "hyperband":
        search = search_class(
            hypermodel, max_epochs=epochs, factor=3, hyperband_iterations=1, **common
        )
    else:
        search = search_class(hypermodel, max_trials=max_trials, **common)
    log(
        f"Searching {tuner} on {dataset} ({keras.backend.backend()} backend): "
        + (f"{max_trials} trials x {epochs} epochs" if tuner != "hyperband"
           else f"Hyperband, max {epochs} epochs")
        + f"; state in {os.path.abspath(directory)}"
    )
    search.search(
        splits.train,
        validation_data=splits.validation,
        epochs=epochs,
        shuffle=False,  # The training pipeline shuffles; silences Keras' warning.
        verbose=verbose,
    )
    best_hp = search.get_best_hyperparameters(1)[0]
    best_trial = search.oracle.get_best_trials(1)[0]
    model = search.get_best_models(1)[0]
    test_logs = model.evaluate(splits.test, verbose=0, return_dict=True)
    seconds = time.perf_counter() - start
    result = {
        "best_hyperparameters": dict(best_hp.values),
        "val_accuracy": float(best_trial.score),
        "test_accuracy": float(test_logs["accuracy"]),
        "test_modality_accuracy": {
            name: float(test_logs[f"{name}_accuracy"]) for name in model.modality_names
        },
        "trials": len(search.oracle.trials),
        "seconds": seconds,
        "backend": keras.backend.backend(),
        "model": model,
    }
    log(f"Best hyperparameters ({result['trials']} trials, chosen on validation):")
    for name, value in result["best_hyperparameters"].items():
        shown = f"{value:.4g}" if isinstance(value, float) else value
        log(f"  {name}: {shown}")
    log(f"Best validation accuracy: {result['val_accuracy']:.4f}")
    modality = ", ".join(
        f"{name} {acc:.4f}" for name, acc in result["test_modality_accuracy"].items()
    )
    log(f"Test accuracy of the best model: {result['test_accuracy']:.4f} "
        f"(unimodal heads: {modality})")
    log(f"Done in {seconds:.0f} s.")
    return result
