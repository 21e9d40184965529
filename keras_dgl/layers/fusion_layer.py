"""Base class shared by every fusion layer."""

import numbers

import keras
import numpy as np
from keras import ops

from keras_dgl.registry import UNIMODAL_HEADS


@keras.saving.register_keras_serializable(package="keras_dgl")
class FusionLayer(keras.layers.Layer):
    """Base class of fusion layers: fused outputs plus one prediction per modality.

    A fusion layer takes a dict `{modality name: (batch, dim) features}` and
    returns the fused outputs `(batch, units)`: class logits for
    classification (`units` = number of classes), one logit per label for
    multi-label tasks, or the predicted targets for regression (`units=1`
    for one target). Called with `unimodal=True` it instead returns a dict
    `{modality name: outputs}` with one prediction per modality made from
    that modality's features alone.

    With `unimodal_head="shared"` (the published DGL setup) the unimodal
    prediction of modality `m` is the fused prediction with every other
    modality's features replaced by zeros, so it reuses the fusion weights.
    With `unimodal_head="separate"` each modality gets its own linear head
    instead (the paper's ablation).

    Subclasses implement `build_fusion(feature_shapes)` and
    `fuse(features, training)`; they may override `shared_unimodal_logits`
    where a cheaper formula gives the same result as zeroing, and
    `assign_fused_from_heads` where the fused path can express the sum of
    separate heads. Modality names are always processed in sorted order, so
    the layer does not depend on the order of dict keys.

    Args:
        units: int. Number of outputs, at least 1. For classification this is
            the number of classes, which may be given as `num_classes`
            instead.
        unimodal_head: str, `"shared"` or `"separate"`. How each modality's
            own prediction is made. Defaults to `"shared"`.
        kernel_initializer: initializer for the kernels of linear maps.
            Defaults to `"glorot_uniform"` (Xavier, as in the reference).
        num_classes: int or `None`. Another name for `units`, for
            classification. Defaults to `None`.
        **kwargs: standard `keras.layers.Layer` arguments.
    """

    def __init__(
        self,
        units=None,
        unimodal_head="shared",
        kernel_initializer="glorot_uniform",
        num_classes=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = _check_units(units, num_classes, type(self).__name__)
        if unimodal_head not in UNIMODAL_HEADS:
            raise ValueError(
                f"`unimodal_head` must be one of {tuple(UNIMODAL_HEADS)}. "
                f"Received: {unimodal_head!r}"
            )
        self.unimodal_head = unimodal_head
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.modalities = None
        self.unimodal_heads = {}

    @property
    def num_classes(self):
        """The number of outputs, `units`, under its classification name."""
        return self.units

    # Hooks for subclasses -------------------------------------------------

    def build_fusion(self, feature_shapes):
        """Creates the fusion weights. `feature_shapes`: name -> shape."""
        raise NotImplementedError

    def fuse(self, features, training=None):
        """Fused outputs from a dict of features (all modalities present)."""
        raise NotImplementedError

    def shared_unimodal_logits(self, features, modality, training=None):
        """Prediction of `modality` alone: fuse with the others zeroed."""
        zeroed = {
            name: value if name == modality else ops.zeros_like(value)
            for name, value in features.items()
        }
        return self.fuse(zeroed, training=training)

    # Keras API -------------------------------------------------------------

    def build(self, input_shape):
        feature_shapes = self._check_feature_shapes(input_shape)
        self.modalities = sorted(feature_shapes)
        self.build_fusion(feature_shapes)
        if self.unimodal_head == "separate":
            for name in self.modalities:
                self.unimodal_heads[name] = self._add_dense(
                    self.units, f"{name}_unimodal_head", feature_shapes[name]
                )
        self.built = True

    def call(self, features, unimodal=False, training=None):
        features = self._check_features(features)
        if not unimodal:
            return self.fuse(features, training=training)
        if self.unimodal_head == "separate":
            return {
                name: self.unimodal_heads[name](features[name])
                for name in self.modalities
            }
        return {
            name: self.shared_unimodal_logits(features, name, training=training)
            for name in self.modalities
        }

    def set_fused_from_unimodal_heads(self):
        """Makes the fused logits the sum of the separate unimodal heads' logits.

        With `unimodal_head="separate"`, overwrites the fused path so that
        `fused(f) = sum_m head_m(f_m)`: a late fusion (product of experts)
        of the per-modality classifiers, which under `method="dgl"` were
        trained with their own encoders. A fusion refit started from it
        (`model.refit_fusion`) keeps it as its epoch 0 and replaces it only
        where the validation score improves. Only `ConcatFusion` (the kernel
        stacked from the heads' kernels, the bias their sum) and `SumFusion`
        (each modality's classifier set to its head) can express this sum.

        Example:

        ```python
        fusion = keras_dgl.layers.ConcatFusion(7, unimodal_head="separate")
        fusion(features)
        fusion.set_fused_from_unimodal_heads()
        ```
        """
        name = self.__class__.__name__
        if self.unimodal_head != "separate":
            raise ValueError(
                f"{name}.set_fused_from_unimodal_heads needs "
                "unimodal_head='separate'; this layer shares the fusion "
                "weights for its unimodal predictions."
            )
        if not self.built:
            raise ValueError(
                f"Build {name} (call it on features once) before "
                "set_fused_from_unimodal_heads."
            )
        self.assign_fused_from_heads(
            {m: self.unimodal_heads[m] for m in self.modalities}
        )

    def assign_fused_from_heads(self, heads):
        """Hook: sets the fused path to the sum of `heads` (name -> `Dense`)."""
        raise ValueError(
            f"{self.__class__.__name__} cannot make its fused logits the sum "
            "of the unimodal heads' logits; ConcatFusion and SumFusion can."
        )

    def fused_path_variables(self):
        """Trainable variables that the fused prediction depends on."""
        head_ids = {
            id(v) for head in self.unimodal_heads.values() for v in head.weights
        }
        return [v for v in self.trainable_variables if id(v) not in head_ids]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "unimodal_head": self.unimodal_head,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
            }
        )
        return config

    # Helpers ---------------------------------------------------------------

    def _add_sublayer(self, layer_class, input_shape, *args, **kwargs):
        """Creates and builds a sublayer that follows this layer's dtype policy."""
        layer = layer_class(*args, dtype=self.dtype_policy, **kwargs)
        layer.build(input_shape)
        return layer

    def _add_dense(self, units, name, input_shape, **kwargs):
        return self._add_sublayer(
            keras.layers.Dense,
            input_shape,
            units,
            kernel_initializer=self._new_kernel_initializer(),
            name=name,
            **kwargs,
        )

    def _new_kernel_initializer(self):
        # A fresh initializer object per weight, so seeded initializers do not
        # hand identical values to every kernel.
        return self.kernel_initializer.__class__.from_config(
            self.kernel_initializer.get_config()
        )

    def _check_feature_shapes(self, input_shape):
        name = self.__class__.__name__
        if not isinstance(input_shape, dict):
            raise TypeError(
                f"{name} expects a dict {{modality: features}}. "
                f"Received input shape: {input_shape}"
            )
        if len(input_shape) < 2:
            raise ValueError(
                f"{name} needs at least two modalities. "
                f"Received: {sorted(input_shape)}"
            )
        shapes = {}
        for key, shape in input_shape.items():
            shape = tuple(shape)
            if len(shape) != 2 or shape[-1] is None:
                raise ValueError(
                    f"{name}: the features of modality '{key}' must be one "
                    "vector per example, shape (batch, dim) with a known dim. "
                    f"Received shape: {shape}"
                )
            shapes[key] = shape
        return shapes

    def _check_features(self, features):
        if not isinstance(features, dict):
            raise TypeError(
                f"{self.__class__.__name__} expects a dict of features. "
                f"Received: {type(features).__name__}"
            )
        if self.modalities is not None and sorted(features) != self.modalities:
            raise ValueError(
                f"{self.__class__.__name__} was built for modalities "
                f"{self.modalities}; received {sorted(features)}."
            )
        return features


def _check_units(units, num_classes, layer_name):
    """`units` (or its other name `num_classes`) checked as an int >= 1."""
    if units is None and num_classes is None:
        raise TypeError(
            f"{layer_name} needs the number of outputs: `units` (or "
            "`num_classes` for classification)."
        )
    if units is not None and num_classes is not None and units != num_classes:
        raise ValueError(
            f"{layer_name}: `units` ({units!r}) and `num_classes` "
            f"({num_classes!r}) name the same number; pass one of them."
        )
    value = units if units is not None else num_classes
    name = "`units`" if units is not None else "`num_classes`"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{layer_name}: {name} must be an int. Received: {value!r}")
    if value < 1:
        raise ValueError(
            f"{layer_name}: {name} must be at least 1. Received: {value}"
        )
    return int(value)
