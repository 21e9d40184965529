"""Shapley values of the modalities for the fused accuracy and loss."""

import itertools
import math

import numpy as np

from keras_dgl.utils.accuracy import class_ids
from keras_dgl.utils.data_adapter import to_numpy

# Subsets are enumerated exactly up to this many modalities (2**8 passes).
MAX_EXACT_MODALITIES = 8


def shapley_contribution(
    model,
    data,
    per_example=False,
    max_exact=MAX_EXACT_MODALITIES,
    num_permutations=200,
    seed=0,
    batch_size=256,
):
    """Shapley value of each modality for the fused accuracy and loss.

    The value of a subset `S` of the modalities is the model's fused
    accuracy (and cross-entropy loss) with the inputs of the modalities
    outside `S` zeroed. The Shapley value of modality `m` is its marginal
    gain averaged over every order in which the modalities can be added:
    `phi_m = sum_{S not containing m} |S|! (N - |S| - 1)! / N! (v(S + m) -
    v(S))`. The values add up to the full model's metric minus the
    all-absent one (`full - empty`), and modalities that play the same role
    get the same value. Unlike `modality_contribution` (what is lost when
    one modality is removed), this credits shared and redundant
    information fairly among the modalities.

    Up to `max_exact` modalities every subset is evaluated (`2**N`
    prediction passes over `data`). Beyond, the values are estimated by
    Monte Carlo over `num_permutations` random orders drawn with `seed`
    (each distinct subset still predicted once); pass
    `num_permutations=None` to get an error instead.

    Args:
        model: a `keras_dgl.DGLModel` (anything with `modality_names` and a
            `predict` returning fused logits).
        data: `(x, y)` arrays or a finite iterable of `(x, y)` batches.
        per_example: bool. Also return each example's values (its 0/1
            correctness and its loss). Defaults to `False`.
        max_exact: int. Most modalities computed exactly. Defaults to `8`.
        num_permutations: int or `None`. Orders sampled beyond
            `max_exact`. Defaults to `200`.
        seed: int. Seed of the sampled orders. Defaults to `0`.
        batch_size: int. Prediction batch size. Defaults to `256`.

    Returns:
        A dict: `"method"` (`"exact"` or `"monte_carlo"`), `"accuracy"` and
        `"loss"` (`{modality: Shapley value}`), `"full"` and `"empty"`
        (`{"accuracy": ..., "loss": ...}` with every modality present and
        none), `"num_permutations"` (`None` when exact), and with
        `per_example=True` `"per_example"`: `{"accuracy": {modality:
        (n,) array}, "loss": {...}}`.

    Example:

    ```python
    result = keras_dgl.diagnostics.shapley_contribution(
        model, splits.numpy("test")
    )
    result["accuracy"]  # {"strong": 0.52, "weak": 0.09}
    ```
    """
    names = list(model.modality_names)
    exact = _check_budget(len(names), max_exact, num_permutations)
    x, y = to_numpy(data)
    labels = class_ids(y)
    cache = {}

    def value(subset):
        """Per-example (correct, loss) with the modalities outside `subset` zeroed."""
        key = frozenset(subset)
        if key not in cache:
            inputs = {
                n: x[n] if n in key else np.zeros_like(x[n]) for n in names
            }
            logits = np.asarray(
                model.predict(inputs, batch_size=batch_size, verbose=0), "float64"
            )
            cache[key] = (
                (np.argmax(logits, axis=-1) == labels).astype("float64"),
                _cross_entropy(logits, labels),
            )
        return cache[key]

    method, phi = shapley_values(names, value, max_exact, num_permutations, seed)
    full, empty = value(names), value(())
    result = {
        "method": method,
        "accuracy": {n: float(np.mean(phi[n][0])) for n in names},
        "loss": {n: float(np.mean(phi[n][1])) for n in names},
        "full": {"accuracy": float(np.mean(full[0])), "loss": float(np.mean(full[1]))},
        "empty": {
            "accuracy": float(np.mean(empty[0])),
            "loss": float(np.mean(empty[1])),
        },
        "num_permutations": None if exact else int(num_permutations),
    }
    if per_example:
        result["per_example"] = {
            "accuracy": {n: phi[n][0] for n in names},
            "loss": {n: phi[n][1] for n in names},
        }
    return result


def shapley_values(names, value, max_exact=MAX_EXACT_MODALITIES,
                   num_permutations=200, seed=0):
    """Shapley values of `names` for any value function of their subsets.

    The combinatorics of `shapley_contribution`, for callers that evaluate
    a subset their own way (the experiment runner scores subsets from
    cached encoder features).

    Args:
        names: list of str, the players (modalities).
        value: callable taking a tuple of names (the present ones) and
            returning a tuple of arrays (or floats), one per metric; it is
            called once per distinct subset it needs.
        max_exact: int. Most names computed exactly. Defaults to `8`.
        num_permutations: int or `None`. Orders sampled beyond
            `max_exact`. Defaults to `200`.
        seed: int. Seed of the sampled orders. Defaults to `0`.

    Returns:
        `(method, phi)`: `"exact"` or `"monte_carlo"`, and `{name: [value
        per metric]}` (arrays where `value` returns arrays).

    Example:

    ```python
    method, phi = keras_dgl.diagnostics.shapley_values(
        ["a", "b"], lambda subset: (float(len(subset)),)
    )
    phi  # {"a": [1.0], "b": [1.0]}
    ```
    """
    count = len(names)
    exact = _check_budget(count, max_exact, num_permutations)
    cache = {}

    def cached(subset):
        key = frozenset(subset)
        if key not in cache:
            cache[key] = tuple(value(tuple(n for n in names if n in key)))
        return cache[key]

    metrics = len(cached(tuple(names)))
    phi = {n: [0.0] * metrics for n in names}
    if exact:
        for name in names:
            others = [n for n in names if n != name]
            for size in range(count):
                weight = (
                    math.factorial(size)
                    * math.factorial(count - size - 1)
                    / math.factorial(count)
                )
                for subset in itertools.combinations(others, size):
                    with_name, without = cached(subset + (name,)), cached(subset)
                    for k in range(metrics):
                        phi[name][k] = phi[name][k] + weight * (
                            with_name[k] - without[k]
                        )
    else:
        rng = np.random.default_rng(seed)
        for _ in range(int(num_permutations)):
            order = [names[i] for i in rng.permutation(count)]
            for position, name in enumerate(order):
                with_name = cached(order[: position + 1])
                without = cached(order[:position])
                for k in range(metrics):
                    phi[name][k] = phi[name][k] + (
                        with_name[k] - without[k]
                    ) / num_permutations
    return ("exact" if exact else "monte_carlo"), phi


def _check_budget(count, max_exact, num_permutations):
    """Whether `count` players are computed exactly; errors for a bad budget."""
    exact = count <= int(max_exact)
    if not exact and num_permutations is None:
        raise ValueError(
            f"The model has {count} modalities; exact Shapley values are "
            f"computed up to {max_exact} (2**N prediction passes). Pass "
            "`num_permutations` for a Monte Carlo estimate, or raise "
            "`max_exact`."
        )
    if not exact and int(num_permutations) < 1:
        raise ValueError(
            f"`num_permutations` must be at least 1. Received: {num_permutations}"
        )
    return exact


def _cross_entropy(logits, labels):
    """Per-example cross-entropy of logits, computed stably in float64."""
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_normalizer = np.log(np.exp(shifted).sum(axis=-1))
    return log_normalizer - shifted[np.arange(len(labels)), labels]
