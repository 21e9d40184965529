"""Data handling shared by the diagnostics and the gradient monitor."""

import keras
import numpy as np


def to_numpy(data):
    """`(features, labels)` NumPy arrays from `(x, y)` or an iterable of batches.

    `data` is either a `(x, y)` tuple (`x` a dict of arrays or tensors) or a
    finite iterable of such batches, e.g. a `tf.data.Dataset`; batches are
    concatenated in iteration order.
    """
    if _is_pair(data):
        x, y = data
        return _numpy_dict(x), np.asarray(keras.ops.convert_to_numpy(y))
    batches = data.as_numpy_iterator() if hasattr(data, "as_numpy_iterator") else data
    features, labels = {}, []
    for batch in batches:
        if not _is_pair(batch):
            raise ValueError(
                "Expected `(features_dict, labels)` batches; received "
                f"{type(batch).__name__}."
            )
        x, y = batch
        for name, value in _numpy_dict(x).items():
            features.setdefault(name, []).append(value)
        labels.append(np.asarray(keras.ops.convert_to_numpy(y)))
    if not labels:
        raise ValueError("The data holds no batch.")
    return (
        {name: np.concatenate(parts) for name, parts in features.items()},
        np.concatenate(labels),
    )


def first_batch(data):
    """One `(features, labels)` batch: `data` itself or its first batch."""
    if _is_pair(data):
        x, y = data
        return _numpy_dict(x), np.asarray(keras.ops.convert_to_numpy(y))
    batches = data.as_numpy_iterator() if hasattr(data, "as_numpy_iterator") else data
    for batch in batches:
        return first_batch(tuple(batch))
    raise ValueError("The data holds no batch.")


def class_ids(y):
    """Integer class ids from sparse `(n,)`, `(n, 1)` or one-hot `(n, c)` labels."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return np.argmax(y, axis=-1)
    return y.reshape(-1).astype("int64")


def accuracy(logits, y):
    return float(np.mean(np.argmax(np.asarray(logits), axis=-1) == class_ids(y)))


# Tasks the diagnostics can score (`DGLModel.task`), each with its score.
SCORED_TASKS = ("classification", "multilabel", "regression")


def task_of(model, what):
    """The model's task, checked to be one `what` can score."""
    task = getattr(model, "task", None) or "classification"
    if task not in SCORED_TASKS:
        raise ValueError(
            f"{what} scores classification, multilabel or regression models; "
            f"this model's loss makes it a {task!r} task."
        )
    return task


def score(outputs, y, task):
    """A higher-is-better score of a model's outputs on labels `y`.

    Accuracy for classification, the mean per-label accuracy at logit 0
    (probability 0.5) for multi-label targets, R² (averaged over targets)
    for regression.
    """
    outputs = np.asarray(outputs)
    if task == "classification":
        return accuracy(outputs, y)
    y = np.asarray(y, "float64").reshape(outputs.shape)
    if task == "multilabel":
        return float(np.mean((outputs > 0) == (y > 0.5)))
    residual = np.sum((y - outputs) ** 2, axis=0)
    total = np.sum((y - y.mean(axis=0)) ** 2, axis=0)
    return float(np.mean(1.0 - residual / total))


def encoder_features(model, x, batch_size=256):
    """Each encoder's features in inference mode, `{modality: (n, dim) array}`."""
    features = {}
    for name in model.modality_names:
        values = x[name]
        parts = [
            keras.ops.convert_to_numpy(
                model.encoders[name](values[start : start + batch_size], training=False)
            )
            for start in range(0, len(values), batch_size)
        ]
        features[name] = np.concatenate(parts)
    return features


def _is_pair(data):
    return (
        isinstance(data, (tuple, list))
        and len(data) == 2
        and isinstance(data[0], dict)
    )


def _numpy_dict(x):
    return {name: np.asarray(keras.ops.convert_to_numpy(v)) for name, v in x.items()}
