"""Every encoder's features of some data, computed once, in inference mode."""

import keras
import numpy as np

from keras_dgl import backend as dgl_backend
from keras_dgl.utils.data_adapter import batches


def encoder_features(encoders, data, batch_size=256):
    """Each encoder's inference-mode features of `data`, and its labels.

    Each encoder is called with `training=False` (dropout off, batch
    normalization on its moving statistics, none of them updated) on its
    modality of every batch; nothing records gradients.

    Args:
        encoders: dict mapping a modality name to its encoder (e.g.
            `model.encoders`). Only these modalities are read.
        data: arrays or batches (see `keras_dgl.utils.batches`).
        batch_size: int. Batch size for data given as arrays. Defaults to
            `256`.

    Returns:
        `(features, labels)`: a dict mapping each modality to a float32
        array of shape `(n, dim)`, and the labels as a NumPy array.

    Raises:
        ValueError: `data` holds no batch.

    Example:

    ```python
    features, labels = keras_dgl.utils.encoder_features(
        model.encoders, splits.test
    )
    features["audio"].shape  # (num_test, 512)
    ```
    """
    names = list(encoders)
    parts = {name: [] for name in names}
    labels = []
    with dgl_backend.no_grad():
        for x, y in batches(data, batch_size):
            for name in names:
                value = encoders[name](x[name], training=False)
                parts[name].append(np.asarray(keras.ops.convert_to_numpy(value), "float32"))
            labels.append(y)
    if not labels:
        raise ValueError("The data holds no batch.")
    return (
        {name: np.concatenate(chunks) for name, chunks in parts.items()},
        np.concatenate(labels),
    )
