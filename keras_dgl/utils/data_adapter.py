"""One adapter from "arrays or a dataset" to `(features, labels)` NumPy batches.

Everything in keras_dgl that reads data outside `fit` (scoring, probes,
refits, diagnostics, the gradient monitor) goes through `batches`, so the
accepted forms are the same everywhere:

- a `(features, labels)` tuple or list: `features` a dict mapping each
  modality to an array or tensor, `labels` an array or tensor, cut into
  batches of `batch_size`;
- a `tf.data.Dataset` of such batches (read with `as_numpy_iterator`, in
  the data set's own batches);
- any other finite iterable of such batches.
"""

import keras
import numpy as np


def batches(data, batch_size=256):
    """Yields `(features, labels)` NumPy batches of `data`, in order.

    Args:
        data: arrays or batches, in one of the forms of this module's
            docstring.
        batch_size: int. Batch size for data given as arrays. Defaults to
            `256`.

    Yields:
        `(features, labels)`: a dict of NumPy arrays and a NumPy array.

    Raises:
        ValueError: a batch is not a `(features, labels)` pair (sample
            weights are not supported).
        TypeError: features are not a dict keyed by modality.

    Example:

    ```python
    for x, y in keras_dgl.utils.batches(splits.numpy("test"), batch_size=128):
        ...
    ```
    """
    if _is_pair(data):
        x, y = _numpy_pair(data)
        for start in range(0, len(y), int(batch_size)):
            stop = start + int(batch_size)
            yield {name: value[start:stop] for name, value in x.items()}, y[start:stop]
        return
    iterator = data.as_numpy_iterator() if hasattr(data, "as_numpy_iterator") else data
    for batch in iterator:
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise ValueError(
                "Expected `(features, labels)` batches (sample weights are not "
                f"supported); received {type(batch).__name__}"
                + (f" of length {len(batch)}." if isinstance(batch, (tuple, list)) else ".")
            )
        if not isinstance(batch[0], dict):
            raise TypeError(
                "Expected features as a dict keyed by modality. Received: "
                f"{type(batch[0]).__name__}"
            )
        yield _numpy_pair(batch)


def first_batch(data):
    """One `(features, labels)` batch: `data` itself if arrays, else its first batch.

    Args:
        data: arrays or batches (see `batches`).

    Returns:
        `(features, labels)` as NumPy.

    Raises:
        ValueError: `data` holds no batch.

    Example:

    ```python
    x, y = keras_dgl.utils.first_batch(splits.validation)
    ```
    """
    if _is_pair(data):
        return _numpy_pair(data)
    for batch in batches(data):
        return batch
    raise ValueError("The data holds no batch.")


def to_numpy(data):
    """All of `data` as one `(features, labels)` pair of NumPy arrays.

    Args:
        data: arrays or batches (see `batches`).

    Returns:
        `(features, labels)`, batches concatenated in order.

    Raises:
        ValueError: `data` holds no batch.

    Example:

    ```python
    x, y = keras_dgl.utils.to_numpy(splits.test)
    ```
    """
    if _is_pair(data):
        return _numpy_pair(data)
    features, labels = {}, []
    for x, y in batches(data):
        for name, value in x.items():
            features.setdefault(name, []).append(value)
        labels.append(y)
    if not labels:
        raise ValueError("The data holds no batch.")
    return (
        {name: np.concatenate(parts) for name, parts in features.items()},
        np.concatenate(labels),
    )


def _is_pair(data):
    return isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], dict)


def _numpy_pair(batch):
    x, y = batch
    return (
        {name: np.asarray(keras.ops.convert_to_numpy(v)) for name, v in x.items()},
        np.asarray(keras.ops.convert_to_numpy(y)),
    )
