"""On-the-fly Gradient Modulation (OGM, OGM-GE) written once in `keras.ops`.

The backend-specific part, taking the gradients inside a training step and
handing them to the optimizer, lives in `keras_dgl.backend`; what is done to
the gradients is here, shared by every backend.
"""

import keras
from keras import ops

# Guards the score ratio against a modality whose batch score underflows to 0.
_EPSILON = 1e-12


def ogm_coefficients(unimodal_logits, y, alpha):
    """Per-modality OGM gradient coefficients of one batch (Peng et al., 2022).

    The confidence score of modality `m` is `s_m = sum_i softmax(u_m_i)[y_i]`
    over the batch, from its unimodal logits `u_m`. Its discrepancy ratio is
    `rho_m = s_m / mean(s_n for n != m)` (with two modalities, the paper's
    `s_a / s_v`), and its coefficient is Eq. 10 of the paper:
    `k_m = 1 - tanh(alpha * rho_m)` when `rho_m > 1` (the modality leads),
    else `1`.

    Args:
        unimodal_logits: dict mapping each modality to `(batch, classes)`
            logits.
        y: class ids `(batch,)` or `(batch, 1)`, or one-hot `(batch, classes)`.
        alpha: float. Modulation strength (`ogm_alpha` of `DGLModel`).

    Returns:
        `(coefficients, ratios)`: two dicts of scalar tensors, modality -> value.
        No gradient flows through them.
    """
    names = sorted(unimodal_logits)
    first = unimodal_logits[names[0]]
    num_classes = first.shape[-1]
    if len(y.shape) == 2 and y.shape[-1] not in (None, 1):
        targets = ops.cast(y, "float32")
    else:
        ids = ops.cast(ops.reshape(y, (-1,)), "int32")
        targets = ops.one_hot(ids, num_classes, dtype="float32")
    scores = {}
    for name in names:
        logits = ops.convert_to_tensor(unimodal_logits[name])
        probabilities = ops.softmax(
            ops.cast(ops.stop_gradient(logits), "float32"), axis=-1
        )
        scores[name] = ops.sum(probabilities * targets)
    coefficients, ratios = {}, {}
    for name in names:
        others = ops.mean(ops.stack([scores[n] for n in names if n != name]))
        ratio = scores[name] / ops.maximum(others, _EPSILON)
        ratios[name] = ratio
        coefficients[name] = ops.where(
            ratio > 1.0, 1.0 - ops.tanh(alpha * ratio), ops.ones_like(ratio)
        )
    return coefficients, ratios


def modulate_gradients(gradients, owners, coefficients, noise_seed=None):
    """Scales each encoder's gradients by its coefficient, optionally adding GE noise.

    `g' = k_m * g`, and with `noise_seed` (OGM-GE's generalization
    enhancement) `g' = k_m * g + std(g) * eps`, `eps ~ N(0, I)`, where
    `std(g)` is the standard deviation of the entries of that variable's
    unmodulated gradient, as in the reference code.

    Args:
        gradients: list of gradient tensors (or `None`).
        owners: list, same length: the modality whose encoder owns each
            variable, or `None` for variables left untouched (fusion, heads).
        coefficients: dict modality -> scalar coefficient `k_m`.
        noise_seed: a `keras.random.SeedGenerator`, or `None` for no noise.

    Returns:
        The list of modulated gradients.
    """
    modulated = []
    for gradient, owner in zip(gradients, owners):
        if gradient is None or owner is None:
            modulated.append(gradient)
            continue
        new = gradient * ops.cast(coefficients[owner], gradient.dtype)
        if noise_seed is not None:
            noise = keras.random.normal(
                tuple(gradient.shape), dtype=gradient.dtype, seed=noise_seed
            )
            new = new + ops.std(gradient) * noise
        modulated.append(new)
    return modulated
