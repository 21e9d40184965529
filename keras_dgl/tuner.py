"""Hyperparameter search for `keras_dgl.DGLModel` with KerasTuner.

`DGLHyperModel` describes the search space of a DGL model (the unimodal
loss weight `alpha`, the learning rate, the fusion layer and the training
method) and builds one fresh, compiled and built model per trial, so any
KerasTuner tuner (`RandomSearch`, `Hyperband`, `BayesianOptimization`) can
search it on TensorFlow, JAX and PyTorch. `keras_dgl.experiments.run_tune`
runs a small search on a built-in data set (the logic behind
`keras-dgl tune`).
"""

from __future__ import annotations

import math
import numbers
import weakref

import keras
import keras_tuner

from keras_dgl import registry
from keras_dgl.models.dgl_model import METHODS
from keras_dgl.models.dgl_model import DGLModel
from keras_dgl.optimizers import make_optimizer

# The methods searched when `method` is not given.
DEFAULT_METHODS = ("dgl", "joint", "joint_aux")
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
        if not (callable(optimizer) or optimizer in registry.OPTIMIZERS):
            raise ValueError(
                f"`optimizer` must be one of {tuple(registry.OPTIMIZERS)} or a callable "
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
        self.fusion = _check_override("fusion", fusion, _one_of(tuple(registry.FUSIONS)))
        self.method = _check_override("method", method, _one_of(METHODS))
        self.optimizer = optimizer
        self.metrics = list(metrics)
        self.fusion_kwargs = dict(fusion_kwargs or {})
        unknown = sorted(set(self.fusion_kwargs) - set(registry.FUSIONS))
        if unknown:
            raise ValueError(
                f"`fusion_kwargs` names unknown fusion types {unknown}; "
                f"expected names among {tuple(registry.FUSIONS)}."
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
        with hp.conditional_scope("method", list(registry.alpha_methods())):
            alpha = _register(hp, "alpha", self.alpha, _ALPHA_RANGE)
        fusion_name = _register(hp, "fusion", self.fusion, tuple(registry.FUSIONS))
        default_range = _LEARNING_RATE_RANGES.get(
            self.optimizer if isinstance(self.optimizer, str) else "adam"
        )
        learning_rate = _register(
            hp, "learning_rate", self.learning_rate, default_range
        )

        encoders = self._new_encoders(hp)
        fusion = registry.fusion_class(fusion_name)(
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
        return make_optimizer(self.optimizer, learning_rate)


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
