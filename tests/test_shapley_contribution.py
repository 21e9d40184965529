"""Shapley values of the modalities: exact, efficient, symmetric; Monte Carlo beyond."""

import itertools

import keras
import numpy as np
import pytest
from dgl_test_utils import random_batch
from method_test_utils import tiny_model

from keras_dgl.diagnostics import shapley_contribution

DIMS = {"audio": 5, "text": 3, "visual": 4}


def _brute_force(model, x, y):
    """Average marginal gain over all N! orders (the definition)."""
    names = model.modality_names

    def v(subset):
        inputs = {n: x[n] if n in subset else np.zeros_like(x[n]) for n in names}
        logits = model.predict(inputs, verbose=0)
        return float(np.mean(np.argmax(logits, -1) == y))

    orders = list(itertools.permutations(names))
    phi = dict.fromkeys(names, 0.0)
    for order in orders:
        for i, name in enumerate(order):
            phi[name] += (v(order[: i + 1]) - v(order[:i])) / len(orders)
    return phi


def test_exact_values_are_the_definition_and_add_up_to_full_minus_empty():
    model = tiny_model("dgl", dims=DIMS)
    x, y = random_batch(dims=DIMS, batch=64, seed=1)
    result = shapley_contribution(model, (x, y), per_example=True)
    assert result["method"] == "exact"
    expected = _brute_force(model, x, y)
    for name in DIMS:
        assert result["accuracy"][name] == pytest.approx(expected[name], abs=1e-9)
    for metric in ("accuracy", "loss"):
        total = sum(result[metric].values())
        gain = result["full"][metric] - result["empty"][metric]
        assert total == pytest.approx(gain, abs=1e-9)
        per_example = sum(result["per_example"][metric].values())
        assert per_example.shape == (64,)
        np.testing.assert_allclose(per_example.mean(), gain, atol=1e-9)
    logits = model.predict(x, verbose=0)
    assert result["full"]["accuracy"] == np.mean(np.argmax(logits, -1) == y)


def test_identical_modalities_get_identical_values():
    dims = {"left": 4, "right": 4}
    model = tiny_model("dgl", dims=dims)
    left, right = model.encoders["left"], model.encoders["right"]
    right.set_weights(left.get_weights())
    kernel = keras.ops.convert_to_numpy(model.fusion.kernel)
    half = kernel.shape[0] // 2
    model.fusion.kernel.assign(np.concatenate([kernel[:half], kernel[:half]]))
    x, y = random_batch(dims={"left": 4}, batch=64, seed=2)
    x = {"left": x["left"], "right": x["left"].copy()}
    result = shapley_contribution(model, (x, y))
    for metric in ("accuracy", "loss"):
        assert result[metric]["left"] == pytest.approx(result[metric]["right"])
    assert result["accuracy"]["left"] != 0.0


def test_monte_carlo_beyond_the_exact_limit_is_seeded_and_close():
    model = tiny_model("dgl", dims=DIMS)
    x, y = random_batch(dims=DIMS, batch=64, seed=1)
    exact = shapley_contribution(model, (x, y))
    first = shapley_contribution(model, (x, y), max_exact=2, num_permutations=300)
    again = shapley_contribution(model, (x, y), max_exact=2, num_permutations=300)
    assert first["method"] == "monte_carlo" and first["num_permutations"] == 300
    assert first["accuracy"] == again["accuracy"]
    for name in DIMS:
        estimate, value = first["accuracy"][name], exact["accuracy"][name]
        assert estimate == pytest.approx(value, abs=0.03)
    # Each ordering's gains telescope: the estimate is efficient too.
    assert sum(first["loss"].values()) == pytest.approx(
        first["full"]["loss"] - first["empty"]["loss"]
    )
    with pytest.raises(ValueError, match="exact Shapley values are computed up to 2"):
        shapley_contribution(model, (x, y), max_exact=2, num_permutations=None)
