"""InfoReg: the dominant encoder alone is pulled back, while its window is open."""

import keras
import numpy as np
from dgl_test_utils import random_batch
from method_test_utils import (
    applied_update,
    assert_lists_close,
    numpy_values,
    owners,
    softmax,
    term_gradients,
    tiny_model,
)

STRENGTH = 0.95


def _scores(model, x, y):
    unimodal = model(x, training=True)["unimodal"]
    return {
        n: float(softmax(keras.ops.convert_to_numpy(u))[np.arange(len(y)), y].sum())
        for n, u in unimodal.items()
    }


def test_coefficient_scales_exactly_the_dominant_encoders_proximal_term():
    model = tiny_model("inforeg", method_options={"strength": STRENGTH})
    x, y = random_batch(batch=16, seed=4)
    state = model.method_state
    # Epoch-start weights a little away from the current ones.
    rng = np.random.default_rng(0)
    anchors = {}
    for variable in model.trainable_variables:
        for name, encoder in model.encoders.items():
            for i, v in enumerate(encoder.trainable_variables):
                if v is variable:
                    value = numpy_values([v])[0] + rng.normal(size=v.shape) * 0.1
                    getattr(state, f"anchor_{name}_{i}").assign(value.astype("float32"))
                    anchors[id(v)] = value
    state.anchored.assign(1.0)  # the epoch's start is stored
    scores = _scores(model, x, y)
    dominant = max(scores, key=scores.get)
    gap = scores[dominant] - min(scores.values())
    beta = STRENGTH * np.exp(np.tanh(gap))
    terms = term_gradients(model, x, y)
    plain = [sum(terms[t][i] for t in terms) for i in range(len(terms["multimodal"]))]
    update, before = applied_update(model, x, y)
    expected, fisher = [], {n: 0.0 for n in model.modality_names}
    variables = model.trainable_variables
    for g, v, value, owner in zip(plain, variables, before, owners(model)):
        if owner == dominant:
            g = g + beta * (value - anchors[id(v)])
        expected.append(g)
        if owner is not None and g.ndim >= 2:
            fisher[owner] += float(np.mean(g * g))
    assert_lists_close(update, expected, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(state.fisher),
        [fisher[n] for n in model.modality_names], rtol=1e-4,
    )


def test_window_closes_when_the_fisher_trace_stops_growing():
    model = tiny_model("inforeg", method_options={"threshold": 0.05, "window": 2})
    method, state = model._method, model.method_state
    # Traces of the last three epochs, oldest first: audio still grows
    # (moving average 2 -> 3.5, +43%), visual has levelled off (+2%).
    state.traces.assign(np.array([[1.0, 2.0, 5.0], [1.0, 1.0, 1.04]], "float32"))
    state.epochs.assign(3.0)
    method.on_epoch_begin(model, 3, steps=None)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(state.open), [1.0, 0.0])
    assert float(np.sum(keras.ops.convert_to_numpy(state.fisher))) == 0.0
    assert float(keras.ops.convert_to_numpy(state.anchored)) == 0.0
    # The epoch's first step stores the weights it starts from.
    x, y = random_batch(batch=16, seed=4)
    start = {
        f"anchor_{name}_{i}": keras.ops.convert_to_numpy(v)
        for name, encoder in model.encoders.items()
        for i, v in enumerate(encoder.trainable_variables)
    }
    model.train_on_batch(x, y)
    for key, value in start.items():
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(getattr(state, key)), value
        )
    # A closed window: no pull even for the dominant modality.
    state.open.assign(np.zeros(2, "float32"))
    for v in model.encoders["audio"].trainable_variables:
        v.assign(keras.ops.convert_to_numpy(v) + 0.1)  # away from the anchors
    terms = term_gradients(model, x, y)
    plain = [sum(terms[t][i] for t in terms) for i in range(len(terms["multimodal"]))]
    update, _ = applied_update(model, x, y)
    assert_lists_close(update, plain, rtol=1e-3, atol=1e-6)
    # fit's epoch end appends the epoch's trace.
    fisher = keras.ops.convert_to_numpy(state.fisher)
    method.on_epoch_end(model, 3)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(state.traces)[:, -1], fisher)
