"""Fused accuracy with one modality removed at test time."""

import numpy as np

from keras_dgl.utils.accuracy import accuracy
from keras_dgl.utils.data_adapter import to_numpy

MODES = ("zero", "noise")


def modality_contribution(model, data, mode="zero", seed=0, batch_size=256):
    """Fused accuracy with each modality's input zeroed or replaced by noise.

    For each modality in turn, its input is replaced and the fused accuracy
    recomputed; the drop from the intact accuracy is that modality's
    contribution. `mode="zero"` feeds zeros (a missing modality);
    `mode="noise"` feeds Gaussian noise with that input's per-feature mean
    and standard deviation over `data`, which keeps its scale but removes
    its information. A modality whose removal costs nothing is ignored by
    the fused prediction.

    Args:
        model: a `keras_dgl.DGLModel`.
        data: `(x, y)` arrays or a finite iterable of `(x, y)` batches.
        mode: str, `"zero"` or `"noise"`. Defaults to `"zero"`.
        seed: int. Seed of the noise. Defaults to `0`.
        batch_size: int. Prediction batch size. Defaults to `256`.

    Returns:
        A dict: `"mode"`, `"fused"` (intact accuracy), `"ablated"`
        `{modality: accuracy without it}` and `"drop"`
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
    x, y = to_numpy(data)
    rng = np.random.default_rng(seed)
    full = accuracy(model.predict(x, batch_size=batch_size, verbose=0), y)
    ablated = {}
    for name in model.modality_names:
        values = x[name].astype("float32")
        if mode == "zero":
            replacement = np.zeros_like(values)
        else:
            mean, std = values.mean(axis=0), values.std(axis=0)
            replacement = (rng.standard_normal(values.shape) * std + mean).astype(
                values.dtype
            )
        logits = model.predict(
            {**x, name: replacement}, batch_size=batch_size, verbose=0
        )
        ablated[name] = accuracy(logits, y)
    return {
        "mode": mode,
        "fused": full,
        "ablated": ablated,
        "drop": {name: full - value for name, value in ablated.items()},
    }
