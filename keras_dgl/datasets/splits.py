"""The container every `keras_dgl.datasets` loader returns."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

_SPLITS = ("train", "validation", "test")


@dataclasses.dataclass
class DatasetSplits:
    """Train, validation and test pipelines of one multimodal data set.

    Each split is a `tf.data.Dataset` of `(features, label)` batches:
    `features` is a dict mapping a modality name to a float32 tensor of
    shape `(batch,) + input_shapes[name]`, and `label` is an int32 tensor of
    shape `(batch,)` (class ids), or for multi-label and regression tasks a
    float32 tensor of shape `(batch, num_classes)`. Keras 3 accepts such a data set in `fit`, `evaluate`
    and `predict` on every backend (TensorFlow, JAX, PyTorch).

    Args:
        train: `tf.data.Dataset`. Shuffled (and, where the loader augments,
            augmented) training batches.
        validation: `tf.data.Dataset` or `None`. Deterministic batches;
            `None` only where a loader was asked for no validation split.
        test: `tf.data.Dataset`. Deterministic batches.
        num_classes: int. Number of outputs a model needs: classes (labels
            lie in `[0, num_classes)`), labels of a multi-label task, or
            regression targets.
        class_names: list of str. `class_names[i]` names class, label or
            target `i`.
        input_shapes: dict. Per-example shape (no batch axis) of each
            modality, e.g. `{"audio": (257, 188, 1)}`.
        info: dict. Free-form facts about the data: counts per split,
            subjects per split, skipped files, preprocessing parameters.
        sources: dict. What `numpy()` reads, per split: either a
            `(features_dict, labels)` tuple of NumPy arrays, or a
            zero-argument callable returning an unshuffled, un-augmented
            `tf.data.Dataset`. Splits missing here are read by iterating
            the split's own data set once.
        preprocessing: dict. Keras layers, by modality, that finish the
            inputs inside the model: the device-side augmentation of
            prepared data read with `augment="device"`. Empty (the default)
            where the pipelines deliver finished float32 tensors. Then the
            pipelines deliver the stored bytes (uint8 frames, int16 waveform
            or float16 spectrogram; `info["delivered"]` gives their shapes
            and dtypes), `input_shapes` stays the shapes the encoders see,
            and `keras_dgl.preprocessing.attach(encoders,
            splits.preprocessing)` puts the layers in front of the encoders.
        task: str. `"classification"` (the default), `"multilabel"` or
            `"regression"`.

    Example:

    ```python
    splits = keras_dgl.datasets.synthetic(num_classes=4)
    features, labels = splits.numpy("test")
    features["strong"].shape  # (num_test, 16)
    model.fit(splits.train, validation_data=splits.validation, epochs=2)
    ```
    """

    train: Any
    validation: Any
    test: Any
    num_classes: int
    class_names: list
    input_shapes: dict
    info: dict = dataclasses.field(default_factory=dict)
    sources: dict = dataclasses.field(default_factory=dict, repr=False)
    preprocessing: dict = dataclasses.field(default_factory=dict, repr=False)
    task: str = "classification"

    def numpy(self, split):
        """Returns one split as NumPy arrays.

        Meant for small data (linear probes, refits of a classical model
        on frozen features). Row order is the loader's deterministic order;
        no shuffling and no random augmentation are applied where the
        loader provides an un-augmented source (all loaders in this
        package do).

        Args:
            split: str. One of `"train"`, `"validation"`, `"test"`.

        Returns:
            A tuple `(features, labels)`: `features` maps each modality name
            to a float32 array of shape `(n,) + input_shapes[name]`, and
            `labels` is an int32 array of shape `(n,)` (float32 `(n,
            num_classes)` for multi-label and regression tasks).
        """
        source = self.unaugmented(split)
        if isinstance(source, tuple):
            features, labels = source
            return (
                {k: np.asarray(v) for k, v in features.items()},
                np.asarray(labels),
            )
        return _collect(source, self.input_shapes)

    def unaugmented(self, split):
        """One split, unshuffled and un-augmented, without loading it whole.

        What scoring and probes read: the same examples as `numpy(split)`,
        in the same order, either as arrays (where the loader holds them in
        memory) or as a `tf.data.Dataset` of `(features, label)` batches.
        Both forms are accepted by `keras_dgl.utils.batches`.

        Args:
            split: str. One of `"train"`, `"validation"`, `"test"`.

        Returns:
            A `(features, labels)` tuple of arrays, or a `tf.data.Dataset`.

        Example:

        ```python
        for x, y in keras_dgl.utils.batches(splits.unaugmented("train")):
            ...
        ```
        """
        if split not in _SPLITS:
            raise ValueError(
                f"Unknown split {split!r}; expected one of {list(_SPLITS)}."
            )
        if getattr(self, split) is None:
            raise ValueError(f"This DatasetSplits has no {split!r} split.")
        source = self.sources.get(split)
        if isinstance(source, tuple):
            return source
        return source() if callable(source) else getattr(self, split)


def _collect(dataset, input_shapes):
    """Concatenates every batch of `dataset` into NumPy arrays."""
    features = {name: [] for name in input_shapes}
    labels = []
    for batch_features, batch_labels in dataset.as_numpy_iterator():
        for name in features:
            features[name].append(batch_features[name])
        labels.append(batch_labels)
    if not labels:
        return (
            {
                name: np.zeros((0,) + tuple(shape), np.float32)
                for name, shape in input_shapes.items()
            },
            np.zeros((0,), np.int32),
        )
    return (
        {name: np.concatenate(parts) for name, parts in features.items()},
        np.concatenate(labels),
    )
