"""Which parameters receive which gradient, checked numerically per method.

The reference gradients come from the separate loss terms computed without
any stop-gradient: the multimodal loss L(fusion(f), y) and each unimodal
loss L(fusion_m(f_m), y), with L the compiled loss: cross-entropy for
classification, and (issue 12) binary cross-entropy for multi-label
targets, mean squared error and Huber for regression. DGLModel's single
objective must hand each parameter group exactly the terms that its method
prescribes.
"""

import keras
import numpy as np
import pytest
from dgl_test_utils import FUSION_CLASSES, METHODS, make_model, random_batch

from keras_dgl import backend as dgl_backend

ALPHA = {"audio": 2.0, "visual": 0.5}


def _cross_entropy(y, logits):
    return keras.ops.mean(
        keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    )


# Per task: the compiled loss, the same loss written out, and labels for a
# batch of class ids `y` (3 outputs).
TASK_LOSSES = {
    "multilabel": (
        lambda: keras.losses.BinaryCrossentropy(from_logits=True),
        lambda y, out: keras.ops.mean(
            keras.losses.binary_crossentropy(y, out, from_logits=True)
        ),
        lambda y: np.eye(3, dtype="float32")[y] + np.eye(3, dtype="float32")[(y + 1) % 3],
    ),
    "regression_mse": (
        lambda: "mse",
        lambda y, out: keras.ops.mean(keras.ops.square(keras.ops.subtract(out, y))),
        lambda y: np.random.default_rng(5).normal(size=(len(y), 3)).astype("float32"),
    ),
    "regression_huber": (
        lambda: keras.losses.Huber(delta=0.5),
        lambda y, out: keras.ops.mean(keras.losses.huber(y, out, delta=0.5)),
        lambda y: np.random.default_rng(6).normal(size=(len(y), 3)).astype("float32"),
    ),
}


def _groups(model):
    fusion_core = model.fusion.fused_path_variables()
    heads = {
        name: head.trainable_variables
        for name, head in model.fusion.unimodal_heads.items()
    }
    encoders = {
        name: encoder.trainable_variables for name, encoder in model.encoders.items()
    }
    return encoders, fusion_core, heads


def _reference_terms(model, x, y, loss=_cross_entropy):
    """Loss functions of each term, with no stop-gradient anywhere."""

    def features():
        return {
            name: model.encoders[name](x[name], training=True)
            for name in model.modality_names
        }

    def multimodal():
        return loss(y, model.fusion(features(), training=True))

    def unimodal(name):
        return lambda: loss(
            y, model.fusion(features(), unimodal=True, training=True)[name]
        )

    return multimodal, {name: unimodal(name) for name in model.modality_names}


def _grads(loss_fn, variables):
    return dgl_backend.value_and_gradients(loss_fn, variables)[1]


def _combine(*weighted):
    """Sums weighted lists of gradient arrays: _combine((1.0, g1), (2.0, g2))."""
    total = None
    for weight, grads in weighted:
        scaled = [weight * g for g in grads]
        total = scaled if total is None else [a + b for a, b in zip(total, scaled)]
    return total


def _assert_grads_equal(actual, expected, what):
    assert len(actual) == len(expected)
    for index, (a, e) in enumerate(zip(actual, expected)):
        np.testing.assert_allclose(
            a, e, rtol=1e-4, atol=1e-6, err_msg=f"{what}, variable {index}"
        )


@pytest.mark.parametrize("unimodal_head", ["shared", "separate"])
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("fusion", sorted(FUSION_CLASSES))
def test_each_group_receives_exactly_its_terms(fusion, method, unimodal_head):
    model = make_model(fusion, method, alpha=ALPHA, unimodal_head=unimodal_head)
    x, y = random_batch()
    _check_routing(model, method, x, y, _cross_entropy)


@pytest.mark.parametrize("task", sorted(TASK_LOSSES))
@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("fusion", ["concat", "attention"])
def test_each_group_receives_exactly_its_terms_for_other_losses(fusion, method, task):
    compiled, written_out, make_labels = TASK_LOSSES[task]
    model = make_model(fusion, method, alpha=ALPHA)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=compiled())
    x, ids = random_batch()
    _check_routing(model, method, x, make_labels(ids), written_out)


def _check_routing(model, method, x, y, loss):
    encoders, fusion_core, heads = _groups(model)
    multimodal, unimodal = _reference_terms(model, x, y, loss)

    def total():
        return model.compute_loss(x, y, model(x, training=True))

    # Fusion weights on the fused path.
    expected = _grads(multimodal, fusion_core)
    if method == "joint_aux":
        expected = _combine(
            (1.0, expected),
            *[(ALPHA[m], _grads(unimodal[m], fusion_core)) for m in unimodal],
        )
    _assert_grads_equal(_grads(total, fusion_core), expected, f"{method}: fusion")

    # Each encoder.
    for name, variables in encoders.items():
        if method == "dgl":
            expected = _combine((ALPHA[name], _grads(unimodal[name], variables)))
        elif method == "joint":
            expected = _grads(multimodal, variables)
        else:
            expected = _combine(
                (1.0, _grads(multimodal, variables)),
                (ALPHA[name], _grads(unimodal[name], variables)),
            )
        _assert_grads_equal(
            _grads(total, variables), expected, f"{method}: encoder '{name}'"
        )

    # Separate unimodal heads learn from their own term under every method
    # (under "joint" as probes on detached features).
    for name, variables in heads.items():
        expected = _combine((ALPHA[name], _grads(unimodal[name], variables)))
        _assert_grads_equal(
            _grads(total, variables), expected, f"{method}: head '{name}'"
        )


@pytest.mark.parametrize("unimodal_head", ["shared", "separate"])
@pytest.mark.parametrize("fusion", sorted(FUSION_CLASSES))
def test_dgl_trains_every_weight(fusion, unimodal_head):
    """No weight is left at its initial value (the reference's gated defect)."""
    model = make_model(fusion, "dgl", unimodal_head=unimodal_head)
    x, y = random_batch(batch=16)
    variables = model.trainable_variables
    grads = _grads(lambda: model.compute_loss(x, y, model(x, training=True)), variables)
    for variable, grad in zip(variables, grads):
        assert np.abs(grad).max() > 0, f"{variable.path} receives no gradient"


def test_dgl_encoder_gradient_is_alpha_times_unimodal_on_the_multimodal_free_path():
    """Under DGL the fused loss alone sends nothing into the encoders."""
    model = make_model("concat", "dgl", alpha=3.0)
    x, y = random_batch()
    encoder_vars = [v for e in model.encoders.values() for v in e.trainable_variables]

    def fused_only():
        return _cross_entropy(y, model(x, training=True)["fused"])

    for grad in _grads(fused_only, encoder_vars):
        assert np.all(grad == 0)


def test_alpha_scales_encoder_gradient_linearly():
    x, y = random_batch()
    grads = {}
    for alpha in (1.0, 4.0):
        keras.utils.set_random_seed(7)  # identical initial weights
        model = make_model("concat", "dgl", alpha=alpha)
        variables = model.encoders["audio"].trainable_variables
        grads[alpha] = _grads(
            lambda: model.compute_loss(x, y, model(x, training=True)), variables
        )
    for g1, g4 in zip(grads[1.0], grads[4.0]):
        np.testing.assert_allclose(g4, 4.0 * g1, rtol=1e-5, atol=1e-7)


def test_three_modalities_route_like_two():
    dims = {"audio": 5, "text": 3, "visual": 4}
    alpha = {"audio": 1.0, "text": 2.0, "visual": 3.0}
    model = make_model("attention", "dgl", alpha=alpha, dims=dims)
    x, y = random_batch(dims=dims)
    _, unimodal = _reference_terms(model, x, y)
    for name in dims:
        variables = model.encoders[name].trainable_variables
        actual = _grads(lambda: model.compute_loss(x, y, model(x, training=True)), variables)
        expected = _combine((alpha[name], _grads(unimodal[name], variables)))
        _assert_grads_equal(actual, expected, f"encoder '{name}'")
