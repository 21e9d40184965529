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


def predictions_from_features(predict, features, batch_size=256):
    """Inference-mode predictions computed from encoder features, in chunks.

    Args:
        predict: a callable from `{modality: (batch, dim)}` features to
            `{"fused": logits, "unimodal": {modality: logits}}`, e.g.
            `model.outputs_from_features` of a `keras_dgl.DGLModel`.
        features: dict mapping each modality to an `(n, dim)` array (e.g.
            from `encoder_features`).
        batch_size: int. Examples per call. Defaults to `256`.

    Returns:
        dict: `"fused"` and one entry per modality, float32 `(n, outputs)`
        arrays.

    Example:

    ```python
    features, labels = keras_dgl.utils.encoder_features(model.encoders, splits.test)
    logits = keras_dgl.utils.predictions_from_features(
        model.outputs_from_features, features
    )["fused"]
    ```
    """
    names = list(features)
    count = len(next(iter(features.values())))
    parts = {key: [] for key in ["fused"] + names}
    with dgl_backend.no_grad():
        for start in range(0, count, batch_size):
            # Tensors: a method's forward pass may use ops (torch's
            # `stop_gradient`) that take no NumPy arrays.
            chunk = {
                n: keras.ops.convert_to_tensor(features[n][start:start + batch_size])
                for n in names
            }
            outputs = predict(chunk)
            parts["fused"].append(_float32(outputs["fused"]))
            for name in names:
                parts[name].append(_float32(outputs["unimodal"][name]))
    return {key: np.concatenate(chunks) for key, chunks in parts.items()}


def _float32(tensor):
    return np.asarray(keras.ops.convert_to_numpy(tensor), "float32")
