"""AGM: each encoder's gradient is scaled by its Shapley-response coefficient."""

import itertools
import math

import keras
import numpy as np
from dgl_test_utils import random_batch
from method_test_utils import (
    applied_update,
    assert_lists_close,
    cross_entropy,
    gradients,
    owners,
    softmax,
    tiny_model,
)

ALPHA = 0.7


def _numpy_shapley(model, x):
    """Per-modality Shapley responses of the fused logits, v(empty) = 0."""
    names = model.modality_names
    features = {n: model.encoders[n](x[n], training=True) for n in names}
    value = {(): 0.0}
    for size in range(1, len(names) + 1):
        for subset in itertools.combinations(names, size):
            zeroed = {
                n: features[n] if n in subset else keras.ops.zeros_like(features[n])
                for n in names
            }
            value[subset] = keras.ops.convert_to_numpy(model.fusion(zeroed))
    count = len(names)
    phi = {}
    for name in names:
        others = [n for n in names if n != name]
        phi[name] = sum(
            math.factorial(k) * math.factorial(count - k - 1) / math.factorial(count)
            * (value[tuple(sorted(s + (name,)))] - value[s])
            for k in range(count)
            for s in itertools.combinations(others, k)
        )
    return phi


def _expected_coefficients(phi, y, running):
    scores = {
        n: float(np.mean(-np.log(np.maximum(softmax(p)[np.arange(len(y)), y], 1e-8))))
        for n, p in phi.items()
    }
    k = {}
    for n in scores:
        others = np.mean([s for m, s in scores.items() if m != n])
        running_others = np.mean([s for m, s in running.items() if m != n])
        ratio = np.exp(others - scores[n])
        target = np.exp(running_others - running[n])
        k[n] = float(np.exp(ALPHA * min(target - ratio, 10.0)))
    return k, scores


def test_responses_sum_to_the_fused_logits_for_three_modalities():
    dims = {"audio": 5, "text": 3, "visual": 4}
    model = tiny_model("agm", dims=dims)
    x, _ = random_batch(dims=dims)
    phi = _numpy_shapley(model, x)
    fused = keras.ops.convert_to_numpy(model(x)["fused"])
    np.testing.assert_allclose(sum(phi.values()), fused, rtol=1e-5, atol=1e-6)


def test_coefficients_scale_exactly_each_encoders_gradient_over_two_steps():
    model = tiny_model("agm", method_options={"alpha": ALPHA})
    variables = model.trainable_variables
    running = {n: 0.0 for n in model.modality_names}
    for step in range(2):
        x, y = random_batch(batch=16, seed=10 + step)
        phi = _numpy_shapley(model, x)
        k, scores = _expected_coefficients(phi, y, running)
        plain = gradients(
            lambda: cross_entropy(y, model(x, training=True)["fused"]), variables
        )
        update, _ = applied_update(model, x, y)
        expected = [
            g if owner is None else k[owner] * g
            for g, owner in zip(plain, owners(model))
        ]
        assert_lists_close(update, expected, rtol=1e-3, what=f"step {step}")
        # Running means of the scores over the steps seen so far.
        running = {n: (running[n] * step + scores[n]) / (step + 1) for n in running}
        state = model.method_state
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(state.scores),
            [running[n] for n in model.modality_names], rtol=1e-5,
        )
        assert float(keras.ops.convert_to_numpy(state.iteration)) == step + 1
    assert all(abs(v - 1.0) > 1e-3 for v in k.values())  # both were modulated
