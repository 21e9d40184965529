"""The DGL model: modality encoders plus a fusion layer, one objective per method."""

import keras
from keras import ops

from keras_dgl import backend as dgl_backend
from keras_dgl.layers.fusion_layer import FusionLayer
from keras_dgl.models import methods as dgl_methods

METHODS = dgl_methods.METHODS
# Log names that a modality name would collide with.
RESERVED_NAMES = ("fused", "multimodal", "loss")


@keras.saving.register_keras_serializable(package="keras_dgl")
class DGLModel(keras.Model):
    """Multimodal classifier trained with Disentangled Gradient Learning.

    One encoder per modality maps that modality's input to a feature vector;
    a fusion layer (`keras_dgl.layers`) maps the features to fused class
    logits and, per modality, to a unimodal prediction. `method` chooses
    the objective and training step; each is a class in
    `keras_dgl.models.methods` that documents it (options, published
    defaults, departures from the reference code, paper):

    - `"dgl"`: each encoder is trained only by `alpha * CE(unimodal_m, y)`,
      its own unimodal loss (the fusion weights used for that prediction are
      frozen in it); the fusion layer is trained only by the multimodal loss
      `CE(fused, y)`, computed on stop-gradient features. One backward pass
      of the sum gives each parameter exactly one of the two gradients.
    - `"joint"`: the multimodal loss trains everything (unimodal
      predictions on detached features, for monitoring).
    - `"joint_aux"`: multimodal loss plus `alpha` times the unimodal
      losses, nothing detached (the ablation of DGL).
    - baselines: `"ogm"`, `"ogm_ge"` (Peng et al., 2022), `"gblend"`
      (Wang et al., 2020), `"mmpareto"` (Wei and Hu, 2024), `"agm"` (Li et
      al., 2023), `"inforeg"` (Huang et al., 2025), `"pmr"` (Fan et al.,
      2023), `"mla"` (Zhang et al., 2024) and `"reconboost"` (Hua et al.,
      2024).

    What `alpha` does depends on the optimizer. Under `"dgl"` the encoders
    see only the unimodal term, so with plain SGD `alpha` multiplies the
    encoders' step (it is an encoder learning-rate multiplier), while with
    scale-invariant optimizers such as Adam, AdamW or RMSprop it has no
    effect beyond epsilon (measured: identical accuracy within 0.1 point for
    alpha 1, 2 and 4). `global_clipnorm` couples the two groups again, since
    it clips their joint norm; `clipnorm` clips per variable.

    `model(x)` returns a dict `{"fused": logits, "unimodal": {name: logits}}`
    with float32 logits (`"pmr"` adds `"prototype": {name: logits}`).
    `model.predict(x)` returns the fused logits only;
    `model.predict_modalities(x)` returns every prediction. `compile()` uses
    sparse categorical cross-entropy on logits when it gets no `loss`; a
    given `loss` is used for every term. Compiled metrics apply to the fused
    logits. Logs: `loss` (the total objective), `multimodal_loss`, one
    `<name>_loss` (unweighted) and one `<name>_accuracy` per modality, and
    the compiled metrics; with `val_` prefixes on validation data.

    Args:
        encoders: dict mapping each modality name to a Keras layer or model
            that maps that modality's batch to `(batch, dim)` features. At
            least two modalities. Inputs are dicts with the same keys.
        fusion: a `keras_dgl.layers.FusionLayer` (e.g. `ConcatFusion`).
        alpha: float, or dict mapping every modality name to a float. Weight
            of each unimodal loss; must be non-negative. Defaults to `1.0`.
        method: str, one of `keras_dgl.models.methods.METHODS`. Defaults to
            `"dgl"`.
        fused_weight: float. Weight of the multimodal loss term; must be
            non-negative. Meant for `"gblend"`. Defaults to `1.0`.
        ogm_alpha: float. Modulation strength of `"ogm"` / `"ogm_ge"` (the
            paper's alpha). Defaults to `0.1`, the reference code's default;
            its authors recommend 0.1 for VGGSound and 0.8 for CREMA-D.
        method_options: dict or `None`. Options of the method (see its class
            in `keras_dgl.models.methods`, e.g. `{"gamma": 1.5}` for
            `"mmpareto"`); unset ones take the published defaults.
            Defaults to `None`.
        **kwargs: standard `keras.Model` arguments (e.g. `name`).

    Example:

    ```python
    encoders = {
        "audio": keras_dgl.encoders.ResNet18(input_channels=1),
        "visual": keras_dgl.encoders.ResNet18(input_channels=3),
    }
    fusion = keras_dgl.layers.ConcatFusion(num_classes=6)
    model = keras_dgl.DGLModel(encoders, fusion, alpha=4.0)
    model.compile(
        optimizer=keras.optimizers.SGD(2e-3, momentum=0.9),
        metrics=["accuracy"],
    )
    model.fit(train_ds, validation_data=val_ds, epochs=100)
    logits = model.predict(test_inputs)  # (batch, num_classes)
    ```

    References:
        - [Wei, Luo and Luo, ICCV 2025](https://arxiv.org/abs/2507.10213)
        - [Peng et al., CVPR 2022](https://arxiv.org/abs/2203.15332) (OGM-GE)
        - [Wang, Tran and Feiszli, CVPR 2020](https://arxiv.org/abs/1905.12681)
          (Gradient-Blending)
    """

    def __init__(
        self,
        encoders,
        fusion,
        alpha=1.0,
        method="dgl",
        fused_weight=1.0,
        ogm_alpha=0.1,
        method_options=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.modality_names = _check_encoders(encoders)
        if not isinstance(fusion, FusionLayer):
            raise TypeError(
                "`fusion` must be a keras_dgl.layers.FusionLayer (for example "
                "keras_dgl.layers.ConcatFusion(num_classes=...)), which gives "
                "both the fused and the per-modality predictions. Received: "
                f"{type(fusion).__name__}"
            )
        method_class = dgl_methods.get(method)
        self.encoders = {name: encoders[name] for name in self.modality_names}
        self.fusion = fusion
        self.method = method
        self.alpha = alpha
        self._alphas = _check_alpha(alpha, self.modality_names)
        self.fused_weight = _check_non_negative("fused_weight", fused_weight)
        self.ogm_alpha = _check_non_negative("ogm_alpha", ogm_alpha)
        self.method_options = method_options
        # Validates the options; a stateful method attaches its state here.
        self._method = method_class(self, method_options)
        self._term_loss = None
        self._term_trackers = {
            "multimodal_loss": keras.metrics.Mean(name="multimodal_loss")
        }
        for name in self.modality_names:
            self._term_trackers[f"{name}_loss"] = keras.metrics.Mean(
                name=f"{name}_loss"
            )
            self._term_trackers[f"{name}_accuracy"] = keras.metrics.Mean(
                name=f"{name}_accuracy"
            )

    # Building --------------------------------------------------------------

    def build(self, input_shape):
        shapes = self._check_input_keys(input_shape, "input shape")
        # Tracing call() symbolically builds every sublayer (the unimodal
        # heads included) and validates the encoders' outputs; KerasTuner and
        # load_model rely on this.
        symbolic = {
            name: keras.KerasTensor(tuple(shape)) for name, shape in shapes.items()
        }
        feature_shapes = {}
        for name in self.modality_names:
            feature = self.encoders[name](symbolic[name])
            feature_shapes[name] = self._check_feature_shape(name, feature.shape)
        symbolic_features = {
            name: keras.KerasTensor(shape) for name, shape in feature_shapes.items()
        }
        self.fusion(symbolic_features)
        self.fusion(symbolic_features, unimodal=True)
        self._method.build(self, feature_shapes)
        self.built = True

    # Forward pass ----------------------------------------------------------

    def call(self, inputs, training=None, return_extras=False):
        outputs, extras = self._forward(inputs, training, extras=return_extras)
        return (outputs, extras) if return_extras else outputs

    def _forward(self, inputs, training, extras=False):
        inputs = self._check_input_keys(inputs, "inputs")
        features = {}
        for name in self.modality_names:
            feature = self.encoders[name](inputs[name], training=training)
            self._check_feature_shape(name, feature.shape)
            features[name] = feature
        return self._method.forward(self, features, training, extras=extras)

    # Objective -------------------------------------------------------------

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, **kwargs):
        """Configures training; see `keras.Model.compile`.

        `loss` (default: sparse categorical cross-entropy on logits) is
        applied to the fused logits and to every unimodal prediction. Use
        `alpha` instead of `loss_weights`, which is not accepted.
        """
        if loss_weights is not None:
            raise ValueError(
                "DGLModel does not take `loss_weights`; weight the unimodal "
                "losses with the `alpha` argument of DGLModel."
            )
        super().compile(optimizer=optimizer, loss=loss, **kwargs)
        self._term_loss = _logits_loss(loss)
        # The objective is assembled from per-term losses in compute_loss; the
        # stock per-output CompileLoss would expect one loss per output.
        self._compile_loss = None

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def fit(self, x=None, y=None, *args, validation_data=None, **kwargs):
        self._check_data(x, y)
        if isinstance(validation_data, (tuple, list)):
            self._check_data(*validation_data[:2])
        elif validation_data is not None:
            self._check_data(validation_data)
        # Stateful methods keep their epoch hooks in a callback.
        hooks = self._method.fit_callbacks(self)
        if hooks and len(args) > 3:
            args = args[:3] + (list(args[3] or []) + hooks,) + args[4:]
        elif hooks:
            kwargs["callbacks"] = list(kwargs.get("callbacks") or []) + hooks
        return super().fit(x, y, *args, validation_data=validation_data, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self._check_data(x, y)
        return super().evaluate(x, y, *args, **kwargs)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        y = self._check_labels(y, y_pred["fused"])
        total = self._method.loss(self, y, y_pred, sample_weight, training)
        for extra in self.losses:
            total = ops.add(total, ops.cast(ops.sum(extra), total.dtype))
        return total

    def _term(self, y, logits, sample_weight):
        if self._term_loss is None:
            raise RuntimeError("Call `compile()` before training the model.")
        return ops.cast(self._term_loss(y, logits, sample_weight), "float32")

    def train_step(self, *args):
        # The stock TensorFlow step can apply an update before a stop-gradient
        # read of the same weight has been consumed; methods that edit the
        # gradients need their own step on every backend. Both are thin
        # per-backend adapters around the method's step plan.
        if self._method.own_step or dgl_backend.needs_ordered_step():
            return dgl_backend.method_train_step(self, self._method, *args)
        return super().train_step(*args)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        fused = y_pred["fused"]
        y = self._check_labels(y, fused)
        if self._compile_metrics is not None:
            self._compile_metrics.update_state(y, fused, sample_weight)
        trackers = self._term_trackers
        trackers["multimodal_loss"].update_state(
            self._term(y, fused, sample_weight)
        )
        labels = _class_ids(y)
        for name in self.modality_names:
            logits = y_pred["unimodal"][name]
            trackers[f"{name}_loss"].update_state(
                self._term(y, logits, sample_weight)
            )
            hits = ops.cast(
                ops.equal(ops.argmax(logits, axis=-1), labels), "float32"
            )
            trackers[f"{name}_accuracy"].update_state(hits, sample_weight)
        return self.get_metrics_result()

    @property
    def metrics(self):
        return super().metrics + list(self._term_trackers.values())

    # Prediction ------------------------------------------------------------

    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Fused logits, `(num_examples, num_classes)`; see `keras.Model.predict`."""
        self._check_data(x)
        outputs = super().predict(
            x, batch_size=batch_size, verbose=verbose, steps=steps, callbacks=callbacks
        )
        return outputs["fused"]

    def predict_on_batch(self, x):
        return super().predict_on_batch(x)["fused"]

    def predict_modalities(self, x, **kwargs):
        """Every prediction: `{"fused": logits, "<modality>": logits, ...}`.

        Takes the arguments of `keras.Model.predict`. The per-modality logits
        are the fusion layer's unimodal predictions (the other modalities
        zeroed, or the separate heads).
        """
        self._check_data(x)
        outputs = super().predict(x, **kwargs)
        return {"fused": outputs["fused"], **outputs["unimodal"]}

    # Serialization -----------------------------------------------------------

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "encoders": {
                    name: keras.layers.serialize(layer)
                    for name, layer in self.encoders.items()
                },
                "fusion": keras.layers.serialize(self.fusion),
                "alpha": self.alpha,
                "method": self.method,
                "fused_weight": self.fused_weight,
                "ogm_alpha": self.ogm_alpha,
                "method_options": self.method_options,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoders"] = {
            name: keras.layers.deserialize(layer)
            for name, layer in config["encoders"].items()
        }
        config["fusion"] = keras.layers.deserialize(config["fusion"])
        return cls(**config)

    # Validation --------------------------------------------------------------

    def _check_input_keys(self, inputs, what):
        if not isinstance(inputs, dict):
            raise TypeError(
                f"DGLModel expects its {what} as a dict keyed by modality "
                f"{self.modality_names}. Received: {type(inputs).__name__}"
            )
        missing = sorted(set(self.modality_names) - set(inputs))
        extra = sorted(set(inputs) - set(self.modality_names))
        if missing or extra:
            raise ValueError(
                f"DGLModel {what} keys must match the encoders "
                f"{self.modality_names}. Missing: {missing}; unexpected: {extra}."
            )
        return inputs

    def _check_feature_shape(self, name, shape):
        shape = tuple(shape)
        if len(shape) != 2 or shape[-1] is None:
            raise ValueError(
                f"The encoder of modality '{name}' must return one feature "
                f"vector per example, shape (batch, dim); it returned shape "
                f"{shape}. Add pooling or flattening to the encoder."
            )
        return shape

    def _check_labels(self, y, fused):
        if y is None:
            raise ValueError("DGLModel needs labels `y` to compute its losses.")
        self._check_label_shape(tuple(y.shape), fused.shape[0])
        return y

    def _check_label_shape(self, y_shape, batch_size=None):
        sparse = isinstance(
            self._term_loss, keras.losses.SparseCategoricalCrossentropy
        )
        if sparse and not (
            len(y_shape) == 1 or (len(y_shape) == 2 and y_shape[1] == 1)
        ):
            raise ValueError(
                "Labels must be integer class ids of shape (batch,) or "
                f"(batch, 1); received labels of shape {y_shape}. For one-hot "
                "labels compile with loss='categorical_crossentropy' and "
                "from_logits=True."
            )
        if y_shape and None not in (y_shape[0], batch_size) and (
            y_shape[0] != batch_size
        ):
            raise ValueError(
                f"Labels have batch size {y_shape[0]} but the inputs have "
                f"{batch_size} (labels shape {y_shape})."
            )

    def _check_data(self, x, y=None):
        """Checks input keys and label shapes before any step runs.

        On JAX an error raised inside the first compiled step leaves the
        model's variables purged (Keras frees them during training), so bad
        data is caught here where its form allows it cheaply: dicts of arrays
        and `tf.data` datasets (from their element spec). Other forms are
        checked inside the step.
        """
        spec = getattr(x, "element_spec", None)
        if spec is not None:
            if isinstance(spec, tuple):
                x, y = spec[0], (spec[1] if len(spec) > 1 else None)
            else:
                x, y = spec, None
        if not isinstance(x, dict):
            return
        self._check_input_keys(x, "inputs")
        if y is not None and self._term_loss is not None:
            self._check_label_shape(tuple(getattr(y, "shape", ())) or (None,))

    # Fusion refit --------------------------------------------------------------

    def refit_fusion(self, train_data, validation_data=None, **kwargs):
        """Re-trains only the fused path of `self.fusion` on frozen encoders.

        Features are computed once in inference mode; the encoders and this
        model's optimizer are left untouched. Delegates to
        `keras_dgl.refit.refit_fusion`, which documents the result dict.

        Args:
            train_data: `(features, labels)` arrays or a finite iterable of
                such batches (e.g. a `tf.data.Dataset`).
            validation_data: `None` or data of the same forms; chooses the
                epoch. Defaults to `None`.
            **kwargs: `epochs`, `optimizer`, `batch_size`, `patience`,
                `monitor`, `reinitialize`, `verbose` of `refit_fusion`.

        Example:

        ```python
        result = model.refit_fusion(splits.numpy("train"), splits.validation)
        ```
        """
        from keras_dgl.refit import refit_fusion

        return refit_fusion(self, train_data, validation_data, **kwargs)


# Losses that would read the model's logits as probabilities when named by string.
_LOGIT_LOSSES = {
    "sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy,
    "categorical_crossentropy": keras.losses.CategoricalCrossentropy,
}


def _logits_loss(loss):
    """The per-term loss, checked to read logits (the model outputs logits)."""
    if loss is None:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if isinstance(loss, str) and loss in _LOGIT_LOSSES:
        return _LOGIT_LOSSES[loss](from_logits=True)
    loss = keras.losses.get(loss)
    if isinstance(loss, keras.losses.Loss):
        if loss.get_config().get("from_logits") is False:
            raise ValueError(
                f"DGLModel outputs logits, but the loss {loss.name!r} expects "
                "probabilities. Pass `from_logits=True` to the loss."
            )
    return loss


def _class_ids(y):
    """Integer class ids from sparse or one-hot labels."""
    if len(y.shape) == 2 and y.shape[1] not in (None, 1):
        return ops.argmax(y, axis=-1)
    return ops.cast(ops.reshape(y, (-1,)), "int32")


def _check_encoders(encoders):
    if not isinstance(encoders, dict):
        raise TypeError(
            "`encoders` must be a dict mapping modality names to Keras layers. "
            f"Received: {type(encoders).__name__}"
        )
    if len(encoders) < 2:
        raise ValueError(
            "DGLModel needs at least two modalities (encoders); received "
            f"{sorted(encoders)}. For one modality, train the encoder with a "
            "plain classification head."
        )
    for name, encoder in encoders.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(
                f"Modality name {name!r} must be a string usable as an "
                "identifier (letters, digits, underscores)."
            )
        if name in RESERVED_NAMES:
            raise ValueError(
                f"Modality name '{name}' is reserved; rename it "
                f"(reserved: {RESERVED_NAMES})."
            )
        if not isinstance(encoder, keras.layers.Layer):
            raise TypeError(
                f"The encoder of modality '{name}' must be a Keras layer or "
                f"model. Received: {type(encoder).__name__}"
            )
    return sorted(encoders)


def _check_non_negative(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"`{name}` must be a number. Received: {value!r}")
    if value < 0:
        raise ValueError(f"`{name}` must be non-negative. Received: {value}")
    return float(value)


def _check_alpha(alpha, modality_names):
    if isinstance(alpha, dict):
        unknown = sorted(set(alpha) - set(modality_names))
        if unknown:
            raise ValueError(
                f"`alpha` names unknown modalities {unknown}; the modalities "
                f"are {modality_names}."
            )
        missing = sorted(set(modality_names) - set(alpha))
        if missing:
            raise ValueError(
                f"`alpha` as a dict must give a weight for every modality; "
                f"missing: {missing}."
            )
        alphas = dict(alpha)
    else:
        alphas = {name: alpha for name in modality_names}
    for name, value in alphas.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(
                f"`alpha` for modality '{name}' must be a number. "
                f"Received: {value!r}"
            )
        if value < 0:
            raise ValueError(
                f"`alpha` for modality '{name}' must be non-negative. "
                f"Received: {value}"
            )
    return {name: float(value) for name, value in alphas.items()}
