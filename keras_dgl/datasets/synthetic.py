"""A small synthetic multimodal task whose modalities differ in strength."""

from __future__ import annotations

import numbers

import numpy as np
import tensorflow as tf

from keras_dgl.datasets.splits import DatasetSplits

_DEFAULT_MODALITIES = {"strong": 0.9, "weak": 0.4}
_DEFAULT_DIM = 16
# Norm of a class mean at informativeness 1, in units of the noise's
# standard deviation. Class means are nearly orthogonal, so two classes'
# means lie about sqrt(2) * _MAX_SEPARATION * informativeness apart.
_MAX_SEPARATION = 4.0
TASKS = ("classification", "multilabel", "regression")
# Multi-label: how often each label is on.
_LABEL_RATE = 0.3
# Regression: dimension of the latent factors every modality and target
# depend on, and the standard deviation of the noise on each target.
_LATENT_DIM = 4
_TARGET_NOISE = 0.1


def synthetic(
    num_classes=6,
    modalities=None,
    num_train=2000,
    num_validation=500,
    num_test=1000,
    batch_size=64,
    seed=0,
    class_ratio=1.0,
    task="classification",
    num_targets=1,
):
    """Builds a modality-imbalanced multimodal task.

    Each modality is a feature vector: a modality-specific signal of
    strength `s_m = 4 * informativeness_m` plus `noise ~ N(0, I)`. The three
    tasks differ in what the signal encodes:

    - `"classification"`: `x_m = s_m * mu_m[y] + noise`, with class means
      `mu_m[k]` random unit vectors (fixed by `seed`); labels are class ids.
      With the default modalities the `"strong"` view is nearly separable (a
      nearest-class-mean classifier scores about 97% on 6 classes) while the
      `"weak"` one is not (about 65%), which is the imbalance DGL is about:
      trained jointly, the fusion leans on the strong view and the weak
      view's encoder is under-trained.
    - `"multilabel"`: each of `num_classes` labels is on independently with
      probability 0.3, and `x_m = s_m * sum_k y_k mu_m[k] + noise`; labels
      are `(num_classes,)` float 0/1 vectors.
    - `"regression"`: latent factors `z ~ N(0, I_4)`, targets
      `y = z @ W + 0.1 * noise` (`num_targets` of them, each of variance
      about 1) and `x_m = s_m * z @ A_m + noise`, with random unit-norm rows
      in `A_m` and unit-norm columns in `W`; labels are `(num_targets,)`
      float vectors. Every modality sees the same factors at its own
      signal-to-noise ratio.

    Generation is NumPy-only and deterministic given `seed` and the
    modalities (in their given order); a modality's features do not change
    when other modalities are added after it. Everything fits in memory,
    so it is fast enough for unit tests.

    Args:
        num_classes: int. Number of classes (>= 2), or of labels for
            `"multilabel"` (>= 1). Ignored for `"regression"`.
        modalities: dict or `None`. Maps a modality name to either its
            informativeness (a float in `[0, 1]`; 0 = pure noise) or a dict
            `{"dim": int, "informativeness": float}`. Feature dimension
            defaults to 16. Any number >= 1 of modalities. Defaults to
            `{"strong": 0.9, "weak": 0.4}`.
        num_train: int. Training examples.
        num_validation: int. Validation examples (0 gives
            `validation=None`).
        num_test: int. Test examples.
        batch_size: int. Batch size of the three `tf.data` pipelines.
        seed: int. Seeds the class means, the samples and the training
            shuffle.
        class_ratio: float >= 1. Ratio of the most to the least frequent
            class prior (priors decay geometrically across class indices);
            1 gives balanced classes. Classification only.
        task: str, one of `"classification"` (default), `"multilabel"`,
            `"regression"`.
        num_targets: int >= 1. Number of regression targets. Defaults to
            `1`.

    Returns:
        A `keras_dgl.datasets.DatasetSplits` with `task` set; features are
        float32 vectors of shape `(dim,)` per modality; labels are int32
        class ids for classification, float32 `(num_classes,)` 0/1 vectors
        for multi-label, float32 `(num_targets,)` vectors for regression.
        `num_classes` is the number of outputs a model needs (classes,
        labels or targets). `info` records the informativeness, signal
        strength and, per split, the class counts (classification), the
        count of each label (multi-label) or the targets' mean and standard
        deviation (regression).

    Example:

    ```python
    splits = keras_dgl.datasets.synthetic(
        num_classes=4,
        modalities={"audio": 0.8, "video": {"dim": 32, "informativeness": 0.3}},
    )
    for features, labels in splits.train.take(1):
        print(features["video"].shape)  # (64, 32)
    splits = keras_dgl.datasets.synthetic(task="regression", num_targets=2)
    features, targets = splits.numpy("train")  # targets: (2000, 2) float32
    ```
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}.")
    num_classes = int(num_classes)
    if task == "classification" and num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}.")
    if task == "multilabel" and num_classes < 1:
        raise ValueError(f"num_classes (labels) must be >= 1, got {num_classes}.")
    if task == "regression" and int(num_targets) < 1:
        raise ValueError(f"num_targets must be >= 1, got {num_targets}.")
    if task != "classification" and class_ratio != 1.0:
        raise ValueError(
            f"class_ratio applies to classification only; task is {task!r}."
        )
    for name, value in (
        ("num_train", num_train),
        ("num_test", num_test),
    ):
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1, got {value}.")
    if int(num_validation) < 0:
        raise ValueError(f"num_validation must be >= 0, got {num_validation}.")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    if not class_ratio >= 1.0:
        raise ValueError(f"class_ratio must be >= 1, got {class_ratio}.")
    specs = _parse_modalities(
        _DEFAULT_MODALITIES if modalities is None else modalities
    )

    counts = {
        "train": int(num_train),
        "validation": int(num_validation),
        "test": int(num_test),
    }
    total = sum(counts.values())
    root = np.random.SeedSequence(seed)
    label_seq, *modality_seqs = root.spawn(1 + len(specs))
    # Modalities get child streams by position, so earlier ones are
    # unchanged when more are appended.
    label_rng = np.random.default_rng(label_seq)
    if task == "classification":
        priors = class_ratio ** (-np.arange(num_classes) / (num_classes - 1))
        priors = priors / priors.sum()
        labels = label_rng.choice(num_classes, size=total, p=priors).astype(np.int32)
        signal_of = lambda means: means[labels]  # noqa: E731
        num_outputs = num_classes
    elif task == "multilabel":
        labels = (label_rng.random((total, num_classes)) < _LABEL_RATE).astype(
            np.float32
        )
        signal_of = lambda means: labels @ means  # noqa: E731
        num_outputs = num_classes
    else:
        latent = label_rng.standard_normal((total, _LATENT_DIM))
        weights = label_rng.standard_normal((_LATENT_DIM, int(num_targets)))
        weights /= np.linalg.norm(weights, axis=0, keepdims=True)
        noise = _TARGET_NOISE * label_rng.standard_normal((total, int(num_targets)))
        labels = (latent @ weights + noise).astype(np.float32)
        signal_of = lambda maps: latent @ maps  # noqa: E731
        num_outputs = int(num_targets)

    features = {}
    strengths = {}
    for (name, dim, informativeness), sequence in zip(specs, modality_seqs):
        rng = np.random.default_rng(sequence)
        rows = num_classes if task != "regression" else _LATENT_DIM
        means = rng.standard_normal((rows, dim))
        means /= np.linalg.norm(means, axis=1, keepdims=True)
        strength = _MAX_SEPARATION * informativeness
        noise = rng.standard_normal((total, dim))
        features[name] = (strength * signal_of(means) + noise).astype(np.float32)
        strengths[name] = strength

    bounds = np.cumsum([0, counts["train"], counts["validation"]])
    arrays = {}
    for split, start in zip(counts, bounds):
        stop = start + counts[split]
        arrays[split] = (
            {name: values[start:stop] for name, values in features.items()},
            labels[start:stop],
        )

    def make(split, shuffle):
        split_features, split_labels = arrays[split]
        dataset = tf.data.Dataset.from_tensor_slices(
            (split_features, split_labels)
        )
        if shuffle:
            dataset = dataset.shuffle(
                len(split_labels), seed=seed, reshuffle_each_iteration=True
            )
        return dataset.batch(int(batch_size)).prefetch(tf.data.AUTOTUNE)

    info = {
        "seed": seed,
        "task": task,
        "informativeness": {name: inf for name, _, inf in specs},
        "signal_strength": strengths,
        "counts": dict(counts),
    }
    if task == "classification":
        info["class_priors"] = priors.tolist()
        info["class_counts"] = {
            split: np.bincount(arrays[split][1], minlength=num_classes).tolist()
            for split in counts
        }
        names = [f"class_{k}" for k in range(num_classes)]
    elif task == "multilabel":
        info["label_counts"] = {
            split: arrays[split][1].sum(axis=0).astype(int).tolist()
            for split in counts
        }
        names = [f"label_{k}" for k in range(num_classes)]
    else:
        info["target_mean"] = {
            split: arrays[split][1].mean(axis=0).tolist() if counts[split] else None
            for split in counts
        }
        info["target_std"] = {
            split: arrays[split][1].std(axis=0).tolist() if counts[split] else None
            for split in counts
        }
        names = [f"target_{k}" for k in range(num_outputs)]
    return DatasetSplits(
        train=make("train", shuffle=True),
        validation=make("validation", False) if counts["validation"] else None,
        test=make("test", shuffle=False),
        num_classes=num_outputs,
        class_names=names,
        input_shapes={name: (dim,) for name, dim, _ in specs},
        info=info,
        sources={s: a for s, a in arrays.items() if counts[s]},
        task=task,
    )


def _parse_modalities(modalities):
    """Returns `[(name, dim, informativeness), ...]` after validation."""
    if not isinstance(modalities, dict) or not modalities:
        raise ValueError(
            "modalities must be a non-empty dict of name -> informativeness "
            f"or name -> dict(dim=..., informativeness=...); got {modalities!r}."
        )
    specs = []
    for name, spec in modalities.items():
        if isinstance(spec, numbers.Real):
            dim, informativeness = _DEFAULT_DIM, float(spec)
        elif isinstance(spec, dict):
            unknown = set(spec) - {"dim", "informativeness"}
            if unknown or "informativeness" not in spec:
                raise ValueError(
                    f"Modality {name!r}: expected keys 'informativeness' and "
                    f"optionally 'dim', got {sorted(spec)}."
                )
            dim = int(spec.get("dim", _DEFAULT_DIM))
            informativeness = float(spec["informativeness"])
        else:
            raise ValueError(
                f"Modality {name!r}: expected a float or a dict, got {spec!r}."
            )
        if not 0.0 <= informativeness <= 1.0:
            raise ValueError(
                f"Modality {name!r}: informativeness must lie in [0, 1], "
                f"got {informativeness}."
            )
        if dim < 1:
            raise ValueError(f"Modality {name!r}: dim must be >= 1, got {dim}.")
        specs.append((str(name), dim, informativeness))
    return specs
