"""Accuracy of logits, from sparse or one-hot labels (NumPy)."""

import numpy as np


def class_ids(y):
    """Integer class ids from sparse `(n,)`, `(n, 1)` or one-hot `(n, c)` labels.

    Args:
        y: array-like of labels.

    Returns:
        An int64 array of shape `(n,)`.

    Example:

    ```python
    keras_dgl.utils.class_ids([[0, 1], [1, 0]])  # array([1, 0])
    ```
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return np.argmax(y, axis=-1)
    return y.reshape(-1).astype("int64")


def accuracy(logits, y):
    """The fraction of examples whose highest logit is their label.

    Args:
        logits: array-like of shape `(n, num_classes)`.
        y: labels, sparse or one-hot (see `class_ids`).

    Returns:
        A float in `[0, 1]`.

    Example:

    ```python
    keras_dgl.utils.accuracy([[2.0, 0.0], [0.0, 1.0]], [0, 0])  # 0.5
    ```
    """
    predicted = np.argmax(np.asarray(logits), axis=-1)
    return float(np.mean(predicted == class_ids(y)))
