"""Fused score with one modality removed at test time."""

import numpy as np

from keras_dgl.diagnostics._task import score
from keras_dgl.diagnostics._task import task_of
from keras_dgl.utils.data_adapter import batches

MODES = ("zero", "noise")


def modality_contribution(model, data, mode="zero", seed=0, batch_size=256):
    """Fused score with each modality's input zeroed or replaced by noise.

    For each modality in turn, its input is replaced and the fused score
    recomputed; the drop from the intact score is that modality's
    contribution. The score follows the model's `task`: accuracy for
    classification, mean per-label accuracy for multi-label, R² for
    regression. `mode="zero"` feeds zeros (a missing modality);
    `mode="noise"` feeds Gaussian noise with that input's per-feature mean
    and standard deviation over `data`, which keeps its scale but removes
    its information. `data` is streamed one batch at a time (read twice in
    noise mode: first for the statistics), so a split need not fit in
    memory. A modality whose removal costs nothing is ignored by
    the fused prediction.

    Args:
        model: a `keras_dgl.DGLModel`.
        data: `(x, y)` arrays or a finite iterable of `(x, y)` batches.
        mode: str, `"zero"` or `"noise"`. Defaults to `"zero"`.
        seed: int. Seed of the noise. Defaults to `0`.
        batch_size: int. Prediction batch size. Defaults to `256`.

    Returns:
        A dict: `"mode"`, `"fused"` (intact score), `"ablated"`
        `{modality: score without it}` and `"drop"`
        `{modality: fused - ablated}`.

    Example:

    ```python
    result = keras_dgl.diagnostics.modality_contribution(
        model, splits.numpy("test"), mode="noise"
    )
    result["drop"]  # {"strong": 0.41, "weak": 0.02}
    ```
    """
    if mode not in MODES:
        raise ValueError(f"`mode` must be one of {MODES}. Received: {mode!r}")
    task = task_of(model, "modality_contribution")
    names = list(model.modality_names)
    moments = _moments(data, names, batch_size) if mode == "noise" else None
    # One generator per modality: the noise does not depend on the batching.
    rngs = {n: np.random.default_rng([seed, i]) for i, n in enumerate(names)}
    fused, ablated, labels = [], {n: [] for n in names}, []
    # Streamed: only one batch of inputs is held at a time.
    for x, y in batches(data, batch_size):
        fused.append(np.asarray(model.predict_on_batch(x)))
        for name in names:
            values = x[name].astype("float32")
            if mode == "zero":
                replacement = np.zeros_like(values)
            else:
                mean, std = moments[name]
                noise = rngs[name].standard_normal(values.shape)
                replacement = (noise * std + mean).astype(values.dtype)
            ablated[name].append(
                np.asarray(model.predict_on_batch({**x, name: replacement}))
            )
        labels.append(y)
    y = np.concatenate(labels) if labels else np.zeros((0,))
    if moments is not None and len(y) != moments["count"]:
        raise ValueError(
            "modality_contribution(mode='noise') reads `data` twice (for the "
            f"inputs' statistics, then to score), and got {moments['count']} "
            f"then {len(y)} examples; pass arrays or a re-iterable dataset, "
            "not a one-shot generator."
        )
    if not len(y):
        raise ValueError("modality_contribution: `data` holds no batch.")
    full = score(np.concatenate(fused), y, task)
    scores = {n: score(np.concatenate(ablated[n]), y, task) for n in names}
    return {
        "mode": mode,
        "fused": full,
        "ablated": scores,
        "drop": {name: full - value for name, value in scores.items()},
    }


def _moments(data, names, batch_size):
    """Per-feature mean and standard deviation of each input over `data`."""
    sums, squares, count = {}, {}, 0
    for x, y in batches(data, batch_size):
        for name in names:
            values = x[name].astype("float64")
            sums[name] = sums.get(name, 0.0) + values.sum(axis=0)
            squares[name] = squares.get(name, 0.0) + (values**2).sum(axis=0)
        count += len(y)
    if not count:
        raise ValueError("modality_contribution: `data` holds no batch.")
    moments = {"count": count}
    for name in names:
        mean = sums[name] / count
        variance = np.maximum(squares[name] / count - mean**2, 0.0)
        moments[name] = (mean, np.sqrt(variance))
    return moments
