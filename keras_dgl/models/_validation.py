"""Checks of the data handed to a DGLModel, run before any step.

Bad data must fail with a message that names the array and says what to do,
and it must fail before Keras starts a step: on JAX an error inside the first
compiled step of a call leaves the model's variables freed. NumPy arrays are
checked completely, with vectorised reductions, once per call; backend
tensors and `tf.data` datasets by shape and dtype only, since checking their
values would mean computing them here.
"""

import math

import numpy as np

# What the compiled loss expects as labels (see `label_kind`).
CLASS_IDS = "class_ids"
ONE_HOT = "one_hot"
# A loss of unknown form: labels need only be finite numbers.
ANY = "any"

# Tolerance of the row sums of one-hot (or soft) class labels.
_ROW_SUM_TOLERANCE = 1e-3


def label_kind(loss):
    """The label form a compiled per-term loss expects."""
    import keras

    if isinstance(loss, keras.losses.SparseCategoricalCrossentropy):
        return CLASS_IDS
    if isinstance(
        loss,
        (keras.losses.CategoricalCrossentropy, keras.losses.CategoricalFocalCrossentropy),
    ):
        return ONE_HOT
    return ANY


def check_data(
    call,
    x,
    y=None,
    sample_weight=None,
    *,
    names,
    trace=None,
    labels=None,
    input_values=True,
):
    """Checks one call's inputs, labels and sample weights.

    Args:
        call: str. The method being called (`"fit"`, `"predict"`, ...), for
            messages.
        x: dict of arrays or tensors, or a `tf.data.Dataset` (checked from
            its element spec). Other forms (generators, `PyDataset`) are left
            to the training step.
        y, sample_weight: arrays, tensors or `None`.
        names: the model's modality names.
        trace: `None` or callable `(name, example_shape, dtype)` returning
            `None` if the built encoder of `name` takes that per-example
            shape, else `(built example shape, reason)`.
        labels: `None` (no label check) or `(kind, units)`.
        input_values: bool. Whether to check the values of NumPy inputs too
            (labels and sample weights, being small, always are).
    """
    spec = getattr(x, "element_spec", None)
    if spec is not None:
        _check_dataset(call, x, spec, names, trace, labels)
        return
    if not isinstance(x, dict):
        return
    sizes = {}
    for name in names:
        if name not in x:
            continue  # The key check names missing modalities.
        where = f"x[{name!r}]"
        value = _as_array(x[name])
        shape, dtype = _shape_and_dtype(value)
        _check_numeric(call, where, dtype)
        if not shape:
            raise ValueError(
                f"DGLModel.{call}: {where} is a scalar; it must hold one "
                "example per row, shape (num_examples, ...)."
            )
        sizes[where] = shape[0]
        _check_example_shape(call, trace, name, where, shape[1:], dtype)
        if input_values and isinstance(value, np.ndarray) and _is_float(dtype):
            _check_finite(call, where, value, "input")
    if y is not None:
        value = _as_array(y)
        shape, dtype = _shape_and_dtype(value)
        _check_numeric(call, "y", dtype)
        sizes["y"] = shape[0] if shape else None
        if labels is not None:
            _check_labels(call, value, shape, labels, values=True)
    if sample_weight is not None:
        value = _as_array(sample_weight)
        shape, dtype = _shape_and_dtype(value)
        _check_numeric(call, "sample_weight", dtype)
        _check_sample_weight(call, value, shape, values=True)
        sizes["sample_weight"] = shape[0]
    _check_sizes(call, sizes)


def _check_example_shape(call, trace, name, where, shape, dtype, dataset=False):
    mismatch = None if trace is None else trace(name, shape, dtype)
    if mismatch is None:
        return
    built, reason = mismatch
    hint = ""
    if dataset and len(shape) + 1 == len(built):
        hint = " A dataset must yield batches: call `dataset.batch(batch_size)`."
    raise ValueError(
        f"DGLModel.{call}: {where} has per-example shape {_shape_text(shape)}, "
        f"but modality {name!r} was built for per-example shape "
        f"{_shape_text(built)} and its encoder cannot take the new one "
        f"({reason}). Pass {name!r} data of shape "
        f"{_shape_text(('num_examples',) + tuple(built))}.{hint}"
    )


def _check_sizes(call, sizes):
    known = {where: n for where, n in sizes.items() if n is not None}
    if len(set(known.values())) > 1:
        listed = ", ".join(f"{where}: {n}" for where, n in known.items())
        raise ValueError(
            f"DGLModel.{call}: the arrays hold different numbers of examples "
            f"({listed}). Give every modality, `y` and `sample_weight` the "
            "same number of rows, one per example."
        )
    for where, n in known.items():
        if n == 0:
            raise ValueError(
                f"DGLModel.{call}: {where} holds no examples (0 rows). Pass "
                "at least one example."
            )


def check_label_shape(call, shape, labels):
    """Raises unless labels of `shape` suit `labels`, `(kind, units)`."""
    kind, units = labels
    if kind == CLASS_IDS:
        if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
            raise ValueError(
                f"DGLModel.{call}: labels must be integer class ids of shape "
                f"(batch,) or (batch, 1); received labels of shape "
                f"{_shape_text(shape)}. For one-hot labels compile with "
                "loss='categorical_crossentropy'."
            )
    elif kind == ONE_HOT:
        if len(shape) != 2 or shape[1] not in (None, units):
            raise ValueError(
                f"DGLModel.{call}: one-hot labels for loss "
                f"'categorical_crossentropy' must have shape (batch, {units}) "
                f"({units} = the fusion layer's outputs); received "
                f"{_shape_text(shape)}. For integer class ids compile with "
                "loss='sparse_categorical_crossentropy' (the default)."
            )


def _check_labels(call, y, shape, labels, values):
    check_label_shape(call, shape, labels)
    kind, units = labels
    if not (values and isinstance(y, np.ndarray)) or y.size == 0:
        return
    if _is_float(y.dtype):
        _check_finite(call, "y", y, "label")
    if kind == CLASS_IDS:
        ids = y.reshape(-1)
        if _is_float(ids.dtype):
            fractional = np.flatnonzero(ids != np.round(ids))
            if fractional.size:
                index = int(fractional[0])
                raise ValueError(
                    f"DGLModel.{call}: y holds the non-integer class id "
                    f"{_number(ids[index])} (example {index}); class ids must be "
                    "whole numbers, which would otherwise be truncated. For "
                    "soft targets pass (batch, classes) probabilities and "
                    "compile with loss='categorical_crossentropy'."
                )
        low, high = ids.min(), ids.max()
        if low < 0 or high >= units:
            bad = low if low < 0 else high
            index = int(np.flatnonzero(ids == bad)[0])
            raise ValueError(
                f"DGLModel.{call}: y holds the class id {_number(bad)} "
                f"(example {index}), outside [0, {units}): the fusion layer "
                f"has {units} outputs (`num_classes`). Map the labels to "
                f"0..{units - 1}, or build the fusion layer with more classes."
            )
    elif kind == ONE_HOT:
        low, high = y.min(), y.max()
        if low < 0 or high > 1:
            raise ValueError(
                f"DGLModel.{call}: one-hot labels must lie in [0, 1]; y holds "
                f"{_number(low if low < 0 else high)}."
            )
        sums = y.sum(axis=-1, dtype=np.float64)
        off = np.flatnonzero(np.abs(sums - 1.0) > _ROW_SUM_TOLERANCE)
        if off.size:
            index = int(off[0])
            raise ValueError(
                f"DGLModel.{call}: each row of one-hot labels must sum to 1 "
                f"(one class per example); row {index} sums to "
                f"{float(sums[index]):g}. For several labels per example, "
                "compile with loss=keras.losses.BinaryCrossentropy("
                "from_logits=True)."
            )


def _check_sample_weight(call, weights, shape, values):
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
        raise ValueError(
            f"DGLModel.{call}: sample_weight must hold one weight per "
            f"example, shape (num_examples,); received shape "
            f"{_shape_text(shape)}."
        )
    if values and isinstance(weights, np.ndarray) and weights.size:
        if _is_float(weights.dtype):
            _check_finite(call, "sample_weight", weights, "weight")
        low = weights.min()
        if low < 0:
            index = int(np.flatnonzero(weights.reshape(-1) == low)[0])
            raise ValueError(
                f"DGLModel.{call}: sample_weight holds the negative weight "
                f"{_number(low)} (example {index}); weights must be >= 0."
            )


def _check_dataset(call, dataset, spec, names, trace, labels):
    if isinstance(spec, tuple):
        parts = list(spec) + [None] * (3 - len(spec))
        x_spec, y_spec, weight_spec = parts[:3]
    else:
        x_spec, y_spec, weight_spec = spec, None, None
    cardinality = getattr(dataset, "cardinality", None)
    if cardinality is not None and int(cardinality()) == 0:
        raise ValueError(
            f"DGLModel.{call}: the dataset holds no batches. Pass a dataset "
            "with at least one example."
        )
    if not isinstance(x_spec, dict):
        return
    for name in names:
        if name not in x_spec:
            continue
        where = f"the dataset's {name!r} input"
        shape, dtype = _spec_shape_and_dtype(x_spec[name])
        if shape is None:
            continue
        _check_numeric(call, where, dtype)
        if not shape:
            raise ValueError(
                f"DGLModel.{call}: {where} is a scalar per element; batch the "
                "dataset (`dataset.batch(batch_size)`)."
            )
        _check_example_shape(call, trace, name, where, shape[1:], dtype, True)
    if y_spec is not None:
        shape, dtype = _spec_shape_and_dtype(y_spec)
        if shape is not None:
            _check_numeric(call, "the dataset's labels", dtype)
            if labels is not None:
                _check_labels(call, None, shape, labels, values=False)
    if weight_spec is not None:
        shape, dtype = _spec_shape_and_dtype(weight_spec)
        if shape is not None:
            _check_numeric(call, "the dataset's sample weights", dtype)
            _check_sample_weight(call, None, shape, values=False)


# Helpers -------------------------------------------------------------------


def _as_array(value):
    if isinstance(value, (list, tuple)):
        return np.asarray(value)
    return value


def _shape_and_dtype(value):
    shape = getattr(value, "shape", None)
    if shape is None:
        value = np.asarray(value)
        shape = value.shape
    return tuple(shape), getattr(value, "dtype", None)


def _spec_shape_and_dtype(spec):
    shape = getattr(spec, "shape", None)
    if shape is None or getattr(shape, "rank", 0) is None:
        return None, None
    return tuple(shape.as_list() if hasattr(shape, "as_list") else shape), spec.dtype


def _dtype_name(dtype):
    name = getattr(dtype, "name", None)
    return str(dtype) if name is None else name


def _check_numeric(call, where, dtype):
    if dtype is None:
        return
    kind = getattr(dtype, "kind", None)
    name = _dtype_name(dtype)
    if kind in ("U", "S") or name == "string":
        raise TypeError(
            f"DGLModel.{call}: {where} holds strings (dtype {name}); the model "
            "needs numbers. Encode them first (class names to integer ids, "
            "text to token ids or features)."
        )
    if kind == "O":
        raise TypeError(
            f"DGLModel.{call}: {where} holds Python objects (dtype object); "
            "pass a numeric array of one dtype, e.g. "
            "np.asarray(values, dtype='float32')."
        )


def _is_float(dtype):
    kind = getattr(dtype, "kind", None)
    return kind in ("f", "c") or (kind is None and "float" in _dtype_name(dtype))


def _check_finite(call, where, array, what):
    # One pass, no temporary the size of the array; float64 accumulation keeps
    # large finite values from overflowing to inf.
    if math.isfinite(float(np.sum(array, dtype=np.float64))):
        return
    rows = array.reshape(len(array), -1) if array.ndim > 1 else array.reshape(-1, 1)
    bad = np.flatnonzero(~np.isfinite(rows).all(axis=1))
    if not bad.size:  # The finite values' sum itself overflowed.
        return
    index = int(bad[0])
    raise ValueError(
        f"DGLModel.{call}: {where} holds NaN or infinite values ({bad.size} "
        f"example(s), the first at index {index}). Remove or impute them; a "
        f"non-finite {what} would silently corrupt the weights."
    )


def _number(value):
    value = value.item() if hasattr(value, "item") else value
    return f"{value:g}" if isinstance(value, float) else str(value)


def _shape_text(shape):
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + (
        ",)" if len(shape) == 1 else ")"
    )
