"""Base class of the training methods of `keras_dgl.DGLModel`."""

import keras
from keras import ops


class Method:
    """One training method (objective and training step) of a `DGLModel`.

    A `DGLModel` holds one `Method` and asks it, at one point each, for what
    differs between methods: the forward pass from the encoders' features to
    the outputs (`forward`), the objective (`loss`), whether the backend
    needs a step of its own (`own_step`), what that step does (the step
    plan of `keras_dgl.backend.method_train_step`: `substeps`,
    `step_forward`, `step_losses`, `transform_gradients`,
    `merge_predictions`), its state (`build`) and its epoch hooks
    (`on_epoch_begin`, `on_epoch_end`). Everything is written once in
    `keras.ops`; only gradient taking lives in `keras_dgl.backend`.

    A subclass is registered under its `method=` name in
    `keras_dgl.registry.METHODS` (with what it changes and its paper) and
    sets the class attribute `defaults` (its options, `method_options=` of `DGLModel`, with their
    published defaults). State that must survive saving and JAX's stateless
    step (prototypes, stored directions, counters) lives in Keras variables
    of a layer the method attaches to the model (`attach_state`).

    Args:
        model: the `keras_dgl.DGLModel` being constructed (its encoders,
            fusion and `alpha` are set).
        options: dict or `None`. Overrides of `defaults`; unknown keys are
            rejected.

    Example:

    ```python
    method = keras_dgl.models.methods.get("mmpareto")
    method.defaults  # {"gamma": 1.5}
    model = keras_dgl.DGLModel(
        encoders, fusion, method="mmpareto", method_options={"gamma": 1.0}
    )
    ```
    """

    defaults = {}
    # Whether the fused prediction is the fusion layer's fused output (the
    # fusion refit retrains that output; it does not apply otherwise).
    fused_by_fusion_layer = True
    # Whether the method needs its own training step on every backend.
    own_step = False
    per_term_gradients = False

    def __init__(self, model, options=None):
        # The `method=` name, as registered in `keras_dgl.registry.METHODS`.
        self.name = model.method
        self.options = self._check_options(options)

    # Hooks of DGLModel --------------------------------------------------------

    def build(self, model, feature_shapes):
        """Creates the method's state once the feature shapes are known."""

    def forward(self, model, features, training, extras=False):
        """Outputs from the encoders' features: `(outputs, extras or None)`.

        `outputs` is `{"fused": logits, "unimodal": {name: logits}}` (float32),
        possibly with more method-specific entries; `extras` (only when asked
        for, in a training step) holds what `transform_gradients` needs.
        """
        raise NotImplementedError

    def loss(self, model, y, y_pred, sample_weight, training):
        """The objective, a scalar, without the model's `losses`."""
        raise NotImplementedError

    def fit_callbacks(self, model):
        """Keras callbacks `fit` adds (epoch hooks of stateful methods)."""
        if type(self).on_epoch_begin is Method.on_epoch_begin and (
            type(self).on_epoch_end is Method.on_epoch_end
        ):
            return []
        return [_EpochHooks(self)]

    def on_epoch_begin(self, model, epoch, steps):
        """Called before each epoch of `fit` (`steps`: batches per epoch).

        Skipped before the first epoch if the model is not built yet (the
        first step builds it): the initial state must suit epoch 0.
        """

    def on_epoch_end(self, model, epoch):
        """Called after each epoch of `fit`."""

    # The step plan (keras_dgl.backend.method_train_step) -----------------------

    def substeps(self, model):
        return (None,)

    def step_forward(self, model, x, substep):
        return model(x, training=True, return_extras=True)

    def step_losses(self, model, x, y, y_pred, extras, sample_weight, substep):
        loss = model.compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
        )
        return {"loss": loss}

    def transform_gradients(self, model, gradients, y, y_pred, extras, substep):
        return gradients

    def merge_predictions(self, model, predictions):
        return predictions[-1]

    # Helpers -------------------------------------------------------------------

    def _check_options(self, options):
        options = {} if options is None else options
        if not isinstance(options, dict):
            raise TypeError(
                f"`method_options` must be a dict. Received: {options!r}"
            )
        unknown = sorted(set(options) - set(self.defaults))
        if unknown:
            allowed = sorted(self.defaults) or "none"
            raise ValueError(
                f"Unknown `method_options` {unknown} for method {self.name!r}; "
                f"its options are: {allowed}."
            )
        merged = dict(self.defaults)
        for key, value in options.items():
            default = self.defaults[key]
            merged[key] = _check_like(f"{self.name} option '{key}'", value, default)
        return merged

    def _check_at_most(self, model, limit):
        if len(model.modality_names) > limit:
            raise ValueError(
                f"Method {self.name!r} enumerates every subset of the "
                f"modalities, which is exact up to {limit} modalities; "
                f"received {len(model.modality_names)}."
            )


def _check_like(what, value, default):
    """Checks an option against its default's type (bool, int, float, str)."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise TypeError(f"{what} must be True or False. Received: {value!r}")
        return value
    if isinstance(default, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{what} must be a number. Received: {value!r}")
        if value < 0:
            raise ValueError(f"{what} must be non-negative. Received: {value}")
        if isinstance(default, int) and value != int(value):
            raise ValueError(f"{what} must be a whole number. Received: {value}")
        return type(default)(value)
    return value


class _EpochHooks(keras.callbacks.Callback):
    """Calls a method's epoch hooks during `fit`.

    A model that `fit` builds in its first step (TensorFlow, without a
    prior `build`) has no state yet when the first epoch begins; that hook
    is skipped, so a method's initial state must be right for epoch 0.
    """

    def __init__(self, method):
        super().__init__()
        self._method = method

    def on_epoch_begin(self, epoch, logs=None):
        if self.model.built:
            self._method.on_epoch_begin(self.model, epoch, self.params.get("steps"))

    def on_epoch_end(self, epoch, logs=None):
        self._method.on_epoch_end(self.model, epoch)


def outputs(fused, unimodal, **more):
    """The model's output dict, logits cast to float32."""
    result = {
        "fused": ops.cast(fused, "float32"),
        "unimodal": {k: ops.cast(v, "float32") for k, v in unimodal.items()},
    }
    for key, value in more.items():
        result[key] = {k: ops.cast(v, "float32") for k, v in value.items()}
    return result
