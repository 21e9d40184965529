"""Argument checks and small helpers of DGLModel (kept out of the model's file)."""

import math
import numbers
import re

import keras
import numpy as np
from keras import ops

# Log names that a modality name would collide with.
RESERVED_NAMES = ("fused", "multimodal", "loss")


def check_encoders(encoders):
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


def check_non_negative(name, value, where=None):
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


def check_alpha(alpha, modality_names):
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
        name: check_non_negative(
            "alpha", value, where=f"`alpha` for modality '{name}'"
        )
        for name, value in alphas.items()
    }


def same_shape(shape, other):
    """Equal rank and equal dims wherever both are known."""
    return len(shape) == len(other) and all(
        a is None or b is None or a == b for a, b in zip(shape, other)
    )


def input_shapes(x):
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


def backend_neutral(optimizer_config):
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


def first_line(error):
    """The informative line of a (possibly multi-line) Keras error."""
    for line in _ANSI.sub("", str(error)).splitlines():
        line = line.strip()
        if line and not line.startswith(("Exception encountered", "Arguments received")):
            return line
    return type(error).__name__


def check_example_shape(model, name, example_shape, dtype):
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
    built = model._built_example_shapes[name]
    if same_shape(example_shape, built) or (
        (name, example_shape) in model._accepted_example_shapes
    ):
        return None
    try:
        dtype = keras.backend.standardize_dtype(dtype)
    except (TypeError, ValueError):
        dtype = "float32"
    encoder = model.encoders[name]
    try:
        shape = tuple(
            encoder(keras.KerasTensor((None,) + example_shape, dtype=dtype)).shape
        )
        if None not in example_shape:
            zeros = ops.zeros((1,) + example_shape, dtype=dtype)
            shape = (None,) + tuple(encoder(zeros, training=False).shape)[1:]
    except Exception as error:  # Keras raises several types for this.
        return built, first_line(error)
    if len(shape) != 2 or shape[-1] != model._feature_dims[name]:
        return built, (
            f"its features would have shape {shape}, not (batch, "
            f"{model._feature_dims[name]})"
        )
    model._accepted_example_shapes.add((name, example_shape))
    return None


def check_input_keys(modality_names, inputs, what):
    """`inputs`, checked to be a dict keyed by exactly the modalities."""
    if not isinstance(inputs, dict):
        raise TypeError(
            f"DGLModel expects its {what} as a dict keyed by modality "
            f"{modality_names}. Received: {type(inputs).__name__}"
        )
    missing = sorted(set(modality_names) - set(inputs))
    extra = sorted(set(inputs) - set(modality_names))
    if missing or extra:
        raise ValueError(
            f"DGLModel {what} keys must match the encoders "
            f"{modality_names}. Missing: {missing}; unexpected: {extra}."
        )
    return inputs
