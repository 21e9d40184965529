"""Hyperparameter search for `keras_dgl.DGLModel` with KerasTuner.

`DGLHyperModel` describes the search space of a DGL model (the unimodal
loss weight `alpha`, the learning rate, the fusion layer and the training
method) and builds one fresh, compiled and built model per trial, so any
KerasTuner tuner (`RandomSearch`, `Hyperband`, `BayesianOptimization`) can
search it on TensorFlow, JAX and PyTorch. `run_tune` runs a small search on
a built-in data set; it is the logic behind `keras-dgl tune`.
"""

from __future__ import annotations

import math
import numbers
import os
import time
import weakref

import keras
import keras_tuner

from keras_dgl.layers import AttentionFusion
from keras_dgl.layers import ConcatFusion
from keras_dgl.layers import FiLMFusion
from keras_dgl.layers import GatedFusion
from keras_dgl.layers import SumFusion
from keras_dgl.models.dgl_model import METHODS
from keras_dgl.models.dgl_model import DGLModel

FUSIONS = {
    "sum": SumFusion,
    "concat": ConcatFusion,
    "gated": GatedFusion,
    "film": FiLMFusion,
    "attention": AttentionFusion,
}
DEFAULT_METHODS = ("dgl", "joint", "joint_aux")
# Methods whose objective weighs the unimodal losses with `alpha`; for the
# others (joint-like ones with shared unimodal heads) alpha changes nothing,
# so it is searched only while one of these is selected.
ALPHA_METHODS = ("dgl", "joint_aux", "gblend")
OPTIMIZERS = ("sgd", "adam")
TUNERS = ("random", "hyperband", "bayesian")
TUNE_DATASETS = ("smartwatch", "synthetic")
# Default learning-rate ranges per optimizer (log-uniform).
_LEARNING_RATE_RANGES = {"sgd": (1e-3, 1e-1), "adam": (1e-4, 1e-2)}
_ALPHA_RANGE = (0.5, 8.0)


class DGLHyperModel(keras_tuner.HyperModel):
    """A KerasTuner search space over `keras_dgl.DGLModel` configurations.

    Each trial builds new encoders with `encoder_builder(hp)`, a new fusion
    layer and a `DGLModel`, compiles it and (given `input_shapes`) builds
    it, so `tuner.get_best_models()` returns a model ready to `predict` on
    every backend. The tuner clears the Keras session between trials, which
    is why the encoders must be created inside `encoder_builder` and never
    reused across calls (a reused encoder raises an error).

    Four hyperparameters are searched; each can be overridden: a single
    value fixes it (`hp.Fixed`), a list or tuple makes it a `hp.Choice`,
    `None` keeps the default space:

    - `"alpha"`: weight of the unimodal losses. Default: log-uniform in
      `[0.5, 8]`. It is registered under a condition on `"method"` and is
      active only for methods that use it (`"dgl"`, `"joint_aux"`,
      `"gblend"`); under `"joint"` it would change nothing. With plain SGD
      it scales the encoders' step under DGL; with Adam it has no effect on
      `"dgl"` (see `keras_dgl.DGLModel`), so search it with SGD.
    - `"learning_rate"`: log-uniform in `[1e-3, 1e-1]` for SGD and in
      `[1e-4, 1e-2]` for Adam (and for a callable `optimizer`).
    - `"fusion"`: one of `"sum"`, `"concat"`, `"gated"`, `"film"`,
      `"attention"` (the `keras_dgl.layers` fusion layers).
    - `"method"`: `"dgl"`, `"joint"` or `"joint_aux"` (any `DGLModel`
      method may be given as an override).

    Hyperparameters created by `encoder_builder` share the same `hp` and
    must use other names.

    Args:
        encoder_builder: callable taking a `keras_tuner.HyperParameters` and
            returning a new dict mapping each modality name to a new Keras
            layer (its encoder). It may define hyperparameters of its own
            (e.g. `hp.Int("width", 16, 64)`).
        num_classes: int. Number of classes.
        input_shapes: dict or `None`. Per-example input shape of every
            modality (no batch axis), e.g. `splits.input_shapes`. Given, each
            trial's model is built right away; otherwise the tuner builds
            the best models from the shapes seen in training, and restores
            their weights but not their optimizer state (Keras then warns
            "Skipping variable loading for optimizer"). Defaults to `None`.
        alpha: `None`, a float, or a list of floats. Defaults to `None`.
        learning_rate: `None`, a float, or a list of floats. Defaults to
            `None`.
        fusion: `None`, a fusion name, or a list of fusion names. Defaults
            to `None`.
        method: `None`, a method name, or a list of method names. Defaults
            to `None`.
        optimizer: `"sgd"` (momentum 0.9, as in the DGL paper), `"adam"`,
            or a callable taking the learning rate and returning a new
            `keras.optimizers.Optimizer`. Defaults to `"sgd"`.
        metrics: sequence of metrics compiled on the fused logits (names,
            or instances, which are copied for every trial); the objective
            is usually `"val_accuracy"`. Defaults to `("accuracy",)`.
        fusion_kwargs: dict or `None`. Maps a fusion name to extra keyword
            arguments of its layer, e.g. `{"gated": {"hidden_dim": 64}}`.
            Defaults to `None`.
        compile_kwargs: dict or `None`. Extra arguments of `model.compile`,
            e.g. `{"jit_compile": False}`: for trials of a few steps,
            compiling the step (XLA on TensorFlow, `jax.jit`) can cost more
            than running it. Defaults to `None`.
        **kwargs: arguments of `keras_tuner.HyperModel` (`name`, `tunable`).

    Example:

    ```python
    splits = keras_dgl.datasets.synthetic(num_classes=4)

    def encoder_builder(hp):
        width = hp.Int("width", 16, 64, step=16)
        return {
            name: keras_dgl.encoders.MLPEncoder(hidden_units=(width,))
            for name in splits.input_shapes
        }

    hypermodel = keras_dgl.tuner.DGLHyperModel(
        encoder_builder,
        num_classes=splits.num_classes,
        input_shapes=splits.input_shapes,
        fusion=["concat", "gated"],  # a Choice
        method="dgl",  # Fixed
    )
    tuner = keras_tuner.RandomSearch(
        hypermodel, objective="val_accuracy", max_trials=5,
        directory="/tmp/dgl-search",
    )
    tuner.search(splits.train, validation_data=splits.validation, epochs=5)
    best = tuner.get_best_models(1)[0]
    logits = best.predict(splits.numpy("test")[0])  # (1000, 4)
    ```
    """

    def __init__(
        self,
        encoder_builder,
        num_classes,
        input_shapes=None,
        alpha=None,
        learning_rate=None,
        fusion=None,
        method=None,
        optimizer="sgd",
        metrics=("accuracy",),
        fusion_kwargs=None,
        compile_kwargs=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not callable(encoder_builder):
            raise TypeError(
                "`encoder_builder` must be a callable hp -> dict of new "
                f"encoders. Received: {type(encoder_builder).__name__}"
            )
        if isinstance(num_classes, bool) or not isinstance(num_classes, int):
            raise TypeError(f"`num_classes` must be an int. Received: {num_classes!r}")
        if num_classes < 2:
            raise ValueError(f"`num_classes` must be >= 2. Received: {num_classes}")
        if not (callable(optimizer) or optimizer in OPTIMIZERS):
            raise ValueError(
                f"`optimizer` must be one of {OPTIMIZERS} or a callable "
                f"learning_rate -> optimizer. Received: {optimizer!r}"
            )
        self.encoder_builder = encoder_builder
        self.num_classes = num_classes
        self.input_shapes = (
            None
            if input_shapes is None
            else {name: tuple(shape) for name, shape in input_shapes.items()}
        )
        self.alpha = _check_override("alpha", alpha, _positive_number)
        self.learning_rate = _check_override(
            "learning_rate", learning_rate, _positive_number
        )
        self.fusion = _check_override("fusion", fusion, _one_of(tuple(FUSIONS)))
        self.method = _check_override("method", method, _one_of(METHODS))
        self.optimizer = optimizer
        self.metrics = list(metrics)
        self.fusion_kwargs = dict(fusion_kwargs or {})
        unknown = sorted(set(self.fusion_kwargs) - set(FUSIONS))
        if unknown:
            raise ValueError(
                f"`fusion_kwargs` names unknown fusion types {unknown}; "
                f"expected names among {tuple(FUSIONS)}."
            )
        self.compile_kwargs = dict(compile_kwargs or {})
        clashes = sorted({"optimizer", "metrics", "loss_weights"} & set(self.compile_kwargs))
        if clashes:
            raise ValueError(
                f"`compile_kwargs` must not set {clashes}; use the "
                "`optimizer` and `metrics` arguments of DGLHyperModel."
            )
        # Encoders handed out so far, to catch a builder that returns the
        # same layer objects twice (they belong to a cleared session).
        self._handed_out = weakref.WeakValueDictionary()

    def build(self, hp):
        """Builds, compiles and (given `input_shapes`) builds one trial's model.

        Args:
            hp: `keras_tuner.HyperParameters` of the trial.

        Returns:
            A compiled `keras_dgl.DGLModel`.
        """
        method = _register(hp, "method", self.method, DEFAULT_METHODS)
        # Only methods that weigh the unimodal losses make alpha active.
        with hp.conditional_scope("method", list(ALPHA_METHODS)):
            alpha = _register(hp, "alpha", self.alpha, _ALPHA_RANGE)
        fusion_name = _register(hp, "fusion", self.fusion, tuple(FUSIONS))
        default_range = _LEARNING_RATE_RANGES.get(
            self.optimizer if isinstance(self.optimizer, str) else "adam"
        )
        learning_rate = _register(
            hp, "learning_rate", self.learning_rate, default_range
        )

        encoders = self._new_encoders(hp)
        fusion = FUSIONS[fusion_name](
            num_classes=self.num_classes, **self.fusion_kwargs.get(fusion_name, {})
        )
        model = DGLModel(
            encoders,
            fusion,
            alpha=1.0 if alpha is None else alpha,
            method=method,
        )
        if self.input_shapes is not None:
            model.build({name: (None,) + s for name, s in self.input_shapes.items()})
        model.compile(
            optimizer=self._make_optimizer(learning_rate),
            metrics=[_fresh_metric(m) for m in self.metrics],
            **self.compile_kwargs,
        )
        if model.built:
            # Checkpoints hold the optimizer's slots; a built optimizer lets
            # the tuner reload them into the best model without a mismatch.
            model.optimizer.build(model.trainable_variables)
        return model

    def _new_encoders(self, hp):
        encoders = self.encoder_builder(hp)
        if not isinstance(encoders, dict):
            raise TypeError(
                "`encoder_builder(hp)` must return a dict mapping modality "
                f"names to new Keras layers. It returned {type(encoders).__name__}."
            )
        for name, encoder in encoders.items():
            if self._handed_out.get(id(encoder)) is encoder:
                raise ValueError(
                    f"`encoder_builder` returned the encoder of modality "
                    f"'{name}' of an earlier trial. Create new layers inside "
                    "`encoder_builder`: the tuner clears the Keras session "
                    "between trials, and a reused encoder would carry the "
                    "weights of the previous trial."
                )
        for encoder in encoders.values():
            if isinstance(encoder, keras.layers.Layer):
                self._handed_out[id(encoder)] = encoder
        if self.input_shapes is not None and set(encoders) != set(self.input_shapes):
            raise ValueError(
                f"`encoder_builder` returned encoders for {sorted(encoders)}, "
                f"but `input_shapes` names {sorted(self.input_shapes)}."
            )
        return encoders

    def _make_optimizer(self, learning_rate):
        if callable(self.optimizer):
            return self.optimizer(learning_rate)
        if self.optimizer == "sgd":
            return keras.optimizers.SGD(learning_rate, momentum=0.9)
        return keras.optimizers.Adam(learning_rate)


def _fresh_metric(metric):
    """A new copy of a metric instance (its state must not outlive a trial)."""
    if isinstance(metric, keras.metrics.Metric):
        return metric.__class__.from_config(metric.get_config())
    return metric


def _register(hp, name, override, default_space):
    """Registers one hyperparameter: Fixed, Choice, or the default space.

    `default_space` is either a tuple of choices (strings) or a
    `(low, high)` pair of floats, searched log-uniformly.
    """
    if override is None:
        if isinstance(default_space[0], str):
            return hp.Choice(name, list(default_space))
        low, high = default_space
        return hp.Float(name, low, high, sampling="log")
    if isinstance(override, list):
        return hp.Choice(name, override)
    return hp.Fixed(name, override)


def _check_override(name, value, check):
    """`None`, one checked value, or a non-empty list of distinct checked values."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        values = [check(name, v) for v in value]
        if not values:
            raise ValueError(f"`{name}` must not be an empty list.")
        if len(set(values)) != len(values):
            raise ValueError(f"`{name}` lists a value twice: {list(value)}.")
        return values
    return check(name, value)


def _positive_number(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` values must be numbers. Received: {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"`{name}` values must be positive. Received: {value!r}")
    return float(value)


def _one_of(allowed):
    def check(name, value):
        if value not in allowed:
            raise ValueError(
                f"Unknown `{name}` {value!r}. Expected one of {allowed}."
            )
        return value

    return check


# The built-in search -----------------------------------------------------------

# Fusion widths for the small built-in data sets (the library defaults, made
# for 512-d ResNet features, are several times slower here for no gain).
_SMALL_FUSION_KWARGS = {
    "gated": {"hidden_dim": 64},
    "film": {"hidden_dim": 64},
    "attention": {"embed_dim": 64, "num_heads": 4},
}


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
    result = keras_dgl.tuner.run_tune("smartwatch", max_trials=4, epochs=4,
                                      directory="/tmp/dgl-tune")
    result["best_hyperparameters"]  # {"method": "dgl", "alpha": 2.7, ...}
    ```
    """
    from keras_dgl import datasets
    from keras_dgl import encoders as dgl_encoders

    if dataset not in TUNE_DATASETS:
        raise ValueError(f"Unknown `dataset` {dataset!r}. Expected one of {TUNE_DATASETS}.")
    if tuner not in TUNERS:
        raise ValueError(f"Unknown `tuner` {tuner!r}. Expected one of {TUNERS}.")
    for name, value in (("max_trials", max_trials), ("epochs", epochs)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive int. Received: {value!r}")
    start = time.perf_counter()
    options = dict(data_options or {})
    if batch_size is not None:
        options["batch_size"] = batch_size
    if dataset == "smartwatch":
        # Training windows overlapping by half (a 2 s step) halve an epoch's
        # cost at the same accuracy.
        options.setdefault("overlap", 0.5)
        splits = datasets.smartwatch(split_seed=seed, **options)

        def encoder_builder(hp):
            return {
                name: dgl_encoders.Conv1DEncoder(filters=(16, 32, 64), kernel_size=5)
                for name in splits.input_shapes
            }

    else:
        splits = datasets.synthetic(seed=seed, **options)

        def encoder_builder(hp):
            return {
                name: dgl_encoders.MLPEncoder(hidden_units=(64, 32))
                for name in splits.input_shapes
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
        fusion_kwargs=_SMALL_FUSION_KWARGS,
    )
    common = dict(
        objective="val_accuracy",
        seed=seed,
        directory=directory,
        project_name=f"{dataset}-{keras.backend.backend()}",
        overwrite=overwrite,
    )
    if tuner == "random":
        search = keras_tuner.RandomSearch(hypermodel, max_trials=max_trials, **common)
    elif tuner == "bayesian":
        search = keras_tuner.BayesianOptimization(
            hypermodel, max_trials=max_trials, **common
        )
    else:
        search = keras_tuner.Hyperband(
            hypermodel, max_epochs=epochs, factor=3, hyperband_iterations=1, **common
        )
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
