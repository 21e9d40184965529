"""The DGL model: modality encoders plus a fusion layer, one objective per method."""

import math
import numbers
import re

import keras
import numpy as np
from keras import ops

from keras_dgl import backend as dgl_backend
from keras_dgl.layers.fusion_layer import FusionLayer
from keras_dgl.models import _validation
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

    Data is checked before any step runs (`fit`, `evaluate`, `predict`, the
    `*_on_batch` calls), each error naming the array and what to do: input
    keys; each modality's per-example shape against the built encoders;
    equal numbers of examples, at least one; numeric dtypes; labels that
    suit the loss (integer class ids in `[0, num_classes)` for sparse
    cross-entropy, rows of `num_classes` summing to 1 for categorical
    cross-entropy); finite labels and sample weights, one non-negative
    weight per example; finite input values (NumPy inputs, not in the
    `*_on_batch` calls). `tf.data` datasets are checked from their element
    spec (keys, shapes, dtypes, label rank), not their values: checking
    every batch's values cost 15-65% of a small model's step time
    (`benchmarks/input_checks.py`). Generators and `PyDataset`s are checked
    only inside the step. On JAX, if a call fails inside its first step
    anyway, the variables Keras detached for it are put back
    (`keras_dgl.backend.state_kept_on_error`).

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
        self._alphas = _check_alpha(alpha, self.modality_names)
        # Plain floats, so that NumPy scalars serialize.
        self.alpha = dict(self._alphas) if isinstance(alpha, dict) else float(alpha)
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
        feature_shapes = {}
        for name in self.modality_names:
            feature = self.encoders[name](keras.KerasTensor(tuple(shapes[name])))
            feature_shapes[name] = self._check_feature_shape(name, feature.shape)
        symbolic_features = {
            name: keras.KerasTensor(shape) for name, shape in feature_shapes.items()
        }
        self.fusion(symbolic_features)
        self.fusion(symbolic_features, unimodal=True)
        # What later data is checked against (`_check_example_shape`).
        self._built_example_shapes = {
            name: tuple(shapes[name])[1:] for name in self.modality_names
        }
        self._feature_dims = {
            name: shape[-1] for name, shape in feature_shapes.items()
        }
        self._accepted_example_shapes = set()
        self._method.build(self, feature_shapes)
        self.built = True

    # Forward pass ----------------------------------------------------------

    def call(self, inputs, training=None, return_extras=False):
        outputs, extras = self._forward(inputs, training, extras=return_extras)
        return (outputs, extras) if return_extras else outputs

    def outputs_from_features(self, features, training=False):
        """What `call` returns, from the encoders' features.

        The method's forward pass from `{modality: (batch, dim) features}`
        to `{"fused": logits, "unimodal": {name: logits}}`, for callers that
        encode once and score many variants (zeroed modalities, subsets).

        Example: `model.outputs_from_features({"a": fa, "b": fb})["fused"]`.
        """
        outputs, _ = self._method.forward(self, features, training)
        return outputs

    @property
    def fused_by_fusion_layer(self):
        """Whether the fused logits are `self.fusion`'s fused output.

        False for methods that combine the unimodal predictions instead
        (`"mla"`, `"reconboost"`); a fusion refit does not apply to them.
        """
        return self._method.fused_by_fusion_layer

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

    def get_compile_config(self):
        config = super().get_compile_config()
        if config and isinstance(config.get("optimizer"), dict):
            config["optimizer"] = _backend_neutral(config["optimizer"])
        return config

    def compile_from_config(self, config):
        if isinstance(config.get("optimizer"), dict):
            # Files saved before optimizers were stored backend-neutrally.
            config = dict(config, optimizer=_backend_neutral(config["optimizer"]))
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    def fit(
        self,
        x=None,
        y=None,
        batch_size=None,
        epochs=1,
        verbose="auto",
        callbacks=None,
        validation_split=0.0,
        validation_data=None,
        shuffle=True,
        class_weight=None,
        sample_weight=None,
        initial_epoch=0,
        steps_per_epoch=None,
        validation_steps=None,
        validation_batch_size=None,
        validation_freq=1,
    ):
        """Trains the model; see `keras.Model.fit`.

        The data (and `validation_data`) are checked before the first step;
        see `DGLModel` for what is checked.
        """
        self._check_data("fit", x, y, sample_weight)
        if isinstance(validation_data, (tuple, list)):
            self._check_data("fit", *validation_data[:3], what="validation_data")
        elif validation_data is not None:
            self._check_data("fit", validation_data, what="validation_data")
        # Stateful methods keep their epoch hooks in a callback.
        callbacks = list(callbacks or []) + self._method.fit_callbacks(self)
        with dgl_backend.state_kept_on_error(self, _input_shapes(x)):
            return super().fit(
                x,
                y,
                batch_size=batch_size,
                epochs=epochs,
                verbose=verbose,
                callbacks=callbacks,
                validation_split=validation_split,
                validation_data=validation_data,
                shuffle=shuffle,
                class_weight=class_weight,
                sample_weight=sample_weight,
                initial_epoch=initial_epoch,
                steps_per_epoch=steps_per_epoch,
                validation_steps=validation_steps,
                validation_batch_size=validation_batch_size,
                validation_freq=validation_freq,
            )

    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto",
                 sample_weight=None, **kwargs):
        """Scores the model; see `keras.Model.evaluate`. Checks the data first."""
        self._check_data("evaluate", x, y, sample_weight)
        with dgl_backend.state_kept_on_error(self, _input_shapes(x)):
            return super().evaluate(
                x, y, batch_size=batch_size, verbose=verbose,
                sample_weight=sample_weight, **kwargs
            )

    def train_on_batch(self, x, y=None, sample_weight=None, **kwargs):
        # Per step: shapes, dtypes and labels only (inputs can be large).
        self._check_data("train_on_batch", x, y, sample_weight, inputs=False)
        return super().train_on_batch(x, y, sample_weight=sample_weight, **kwargs)

    def test_on_batch(self, x, y=None, sample_weight=None, **kwargs):
        self._check_data("test_on_batch", x, y, sample_weight, inputs=False)
        return super().test_on_batch(x, y, sample_weight=sample_weight, **kwargs)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        y = self._check_labels(y, y_pred["fused"])
        total = self._method.loss(self, y, y_pred, sample_weight, training)
        for extra in self.losses:
            total = ops.add(total, ops.cast(ops.sum(extra), total.dtype))
        return total

    def term_loss(self, y, logits, sample_weight=None):
        """The compiled, unweighted loss of one prediction, as float32.

        Every term of the objective uses it (what `multimodal_loss` and
        `<name>_loss` log); diagnostics and the fusion refit score with it.
        Raises `RuntimeError` before `compile()`. Example:
        `model.term_loss(y, model(x, training=False)["fused"])`.
        """
        return self._term(y, logits, sample_weight)

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
        return self._predict(
            "predict", x, batch_size=batch_size, verbose=verbose, steps=steps,
            callbacks=callbacks,
        )["fused"]

    def predict_on_batch(self, x):
        self._check_data("predict_on_batch", x, inputs=False)
        return super().predict_on_batch(x)["fused"]

    def predict_modalities(self, x, **kwargs):
        """Every prediction: `{"fused": logits, "<modality>": logits, ...}`.

        Takes the arguments of `keras.Model.predict`. The per-modality logits
        are the fusion layer's unimodal predictions (the other modalities
        zeroed, or the separate heads).
        """
        outputs = self._predict("predict_modalities", x, **kwargs)
        return {"fused": outputs["fused"], **outputs["unimodal"]}

    def _predict(self, call, x, **kwargs):
        self._check_data(call, x)
        with dgl_backend.state_kept_on_error(self, _input_shapes(x)):
            return super().predict(x, **kwargs)

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
        """Label shape checks inside a step (shapes may be symbolic there)."""
        if y is None:
            raise ValueError("DGLModel needs labels `y` to compute its losses.")
        y_shape = tuple(y.shape)
        labels = self._label_spec()
        if labels is not None:
            _validation.check_label_shape("compute_loss", y_shape, labels)
        batch_size = fused.shape[0]
        if y_shape and None not in (y_shape[0], batch_size) and (
            y_shape[0] != batch_size
        ):
            raise ValueError(
                f"Labels have batch size {y_shape[0]} but the inputs have "
                f"{batch_size} (labels shape {y_shape})."
            )
        return y

    def _label_spec(self):
        """`(label kind, outputs)` for the compiled loss, or `None` uncompiled."""
        if self._term_loss is None:
            return None
        return (_validation.label_kind(self._term_loss), self.fusion.num_classes)

    def _check_data(self, call, x, y=None, sample_weight=None, what=None,
                    inputs=True):
        """Checks a call's data before any step runs (see `_validation`).

        On JAX an error raised inside the first compiled step leaves the
        model's variables freed, so bad data is caught here where its form
        allows it cheaply: dicts of arrays or tensors and `tf.data` datasets
        (from their element spec). Other forms are checked inside the step.
        """
        spec = getattr(x, "element_spec", None)
        inputs_form = x if spec is None else (
            spec[0] if isinstance(spec, tuple) else spec
        )
        if isinstance(inputs_form, dict) or hasattr(inputs_form, "shape"):
            # Generators and PyDatasets are checked inside the step.
            self._check_input_keys(inputs_form, what or "inputs")
        _validation.check_data(
            call,
            x,
            y,
            sample_weight,
            names=self.modality_names,
            trace=self._check_example_shape if self.built else None,
            labels=self._label_spec(),
            input_values=inputs,
        )

    def _check_example_shape(self, name, example_shape, dtype):
        """Why the built encoder of `name` cannot take this example shape.

        Returns `None` if it can, else `(built example shape, reason)`. The
        shape the model was built for always passes. Another shape is traced
        through the encoder symbolically and, when fully known, run on one
        zero example (symbolic shape inference lets some mismatches through,
        e.g. a width of 1 where a `Dense` kernel expects more), so shapes the
        encoder takes by design (any clip length before global pooling)
        pass. The features must keep the width the fusion layer was built for.
        Accepted shapes are remembered.
        """
        example_shape = tuple(example_shape)
        built = self._built_example_shapes[name]
        if _same_shape(example_shape, built) or (
            (name, example_shape) in self._accepted_example_shapes
        ):
            return None
        try:
            dtype = keras.backend.standardize_dtype(dtype)
        except (TypeError, ValueError):
            dtype = "float32"
        encoder = self.encoders[name]
        try:
            shape = tuple(
                encoder(keras.KerasTensor((None,) + example_shape, dtype=dtype)).shape
            )
            if None not in example_shape:
                zeros = ops.zeros((1,) + example_shape, dtype=dtype)
                shape = (None,) + tuple(encoder(zeros, training=False).shape)[1:]
        except Exception as error:  # Keras raises several types for this.
            return built, _first_line(error)
        if len(shape) != 2 or shape[-1] != self._feature_dims[name]:
            return built, (
                f"its features would have shape {shape}, not (batch, "
                f"{self._feature_dims[name]})"
            )
        self._accepted_example_shapes.add((name, example_shape))
        return None

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


def _check_non_negative(name, value, where=None):
    """A finite, non-negative number (NumPy scalars included) as a float."""
    where = where or f"`{name}`"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{where} must be a number. Received: {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number. Received: {value}")
    if value < 0:
        raise ValueError(f"{where} must be non-negative. Received: {value}")
    return value


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
    return {
        name: _check_non_negative(
            "alpha", value, where=f"`alpha` for modality '{name}'"
        )
        for name, value in alphas.items()
    }


def _same_shape(shape, other):
    """Equal rank and equal dims wherever both are known."""
    return len(shape) == len(other) and all(
        a is None or b is None or a == b for a, b in zip(shape, other)
    )


def _input_shapes(x):
    """Input shapes `{modality: (None, ...)}` of a dict of arrays or a dataset."""
    spec = getattr(x, "element_spec", None)
    if spec is not None:
        x = spec[0] if isinstance(spec, tuple) else spec
    if not isinstance(x, dict):
        return None
    shapes = {}
    for name, value in x.items():
        shape = getattr(value, "shape", None)
        if shape is None or getattr(shape, "rank", 0) is None:
            return None
        shapes[name] = (None,) + tuple(shape)[1:]
    return shapes


# Keras modules of backend-specific subclasses of its public optimizers.
_BACKEND_MODULE = re.compile(r"^keras\.src\.backend\.")


def _backend_neutral(optimizer_config):
    """An optimizer's serialized config that loads under every backend.

    On the torch backend `keras.optimizers.Adam(...)` is an instance of a
    torch-specific subclass, and Keras stores that subclass' module, which
    imports torch. The public class of the same name rebuilds the same
    optimizer (and its variables) on any backend.
    """
    module = optimizer_config.get("module")
    if isinstance(module, str) and _BACKEND_MODULE.match(module):
        public = getattr(keras.optimizers, optimizer_config.get("class_name", ""), None)
        if public is not None:
            return dict(optimizer_config, module="keras.optimizers")
    return optimizer_config


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _first_line(error):
    """The informative line of a (possibly multi-line) Keras error."""
    for line in _ANSI.sub("", str(error)).splitlines():
        line = line.strip()
        if line and not line.startswith(("Exception encountered", "Arguments received")):
            return line
    return type(error).__name__
