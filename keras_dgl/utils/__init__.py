"""Small helpers every part of keras_dgl shares: one place decides what the data is.

- `batches`, `first_batch`, `to_numpy`: `(features, labels)` NumPy batches from
  arrays, a `tf.data.Dataset` or any iterable of batches;
- `encoder_features`: every encoder's inference-mode features of some data, and
  `predictions_from_features`: a model's outputs computed from them;
- `accuracy`, `class_ids`: accuracy of logits against sparse or one-hot labels.
"""

from keras_dgl.utils.accuracy import accuracy
from keras_dgl.utils.accuracy import class_ids
from keras_dgl.utils.data_adapter import batches
from keras_dgl.utils.data_adapter import first_batch
from keras_dgl.utils.data_adapter import to_numpy
from keras_dgl.utils.encoder_features import encoder_features
from keras_dgl.utils.encoder_features import predictions_from_features

__all__ = [
    "accuracy",
    "batches",
    "class_ids",
    "encoder_features",
    "first_batch",
    "predictions_from_features",
    "to_numpy",
]
