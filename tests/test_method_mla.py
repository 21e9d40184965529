"""MLA: alternating updates through a shared head with projected gradients."""

import keras
import numpy as np
import pytest
from dgl_test_utils import make_encoder, make_fusion, random_batch
from method_test_utils import (
    assert_lists_close,
    cross_entropy,
    gradients,
    numpy_values,
    softmax,
    tiny_model,
)

import keras_dgl
from keras_dgl.models.methods.mla import project_gradient


def _numpy_projection(p, r, alpha):
    k = p @ r[:, None]
    p = p - (k @ k.T) / (alpha + float(r @ k[:, 0]))
    return p / np.linalg.norm(p)


def test_projected_gradient_is_orthogonal_to_the_stored_directions():
    rng = np.random.default_rng(0)
    dim, classes = 6, 3
    p = np.eye(dim, dtype="float32")
    stored = [3.0 * rng.normal(size=dim).astype("float32") for _ in range(3)]
    for r in stored:
        new_p, _ = project_gradient(
            keras.ops.convert_to_tensor(p), keras.ops.convert_to_tensor(r), 0.1,
            keras.ops.zeros((dim, classes)),
        )
        expected = _numpy_projection(p, r, 0.1)
        np.testing.assert_allclose(keras.ops.convert_to_numpy(new_p), expected,
                                   rtol=1e-4, atol=1e-6)
        p = expected
    gradient = rng.normal(size=(dim, classes)).astype("float32")
    _, projected = project_gradient(
        keras.ops.convert_to_tensor(p), keras.ops.convert_to_tensor(stored[-1]),
        0.1, keras.ops.convert_to_tensor(gradient),
    )
    projected = keras.ops.convert_to_numpy(projected)
    # The projected update barely changes the head's response to any input
    # seen before, while it keeps a fair share of the gradient elsewhere.
    basis = np.linalg.qr(np.stack(stored, axis=1))[0]
    inside = np.linalg.norm(basis.T @ projected)
    outside = np.linalg.norm(projected - basis @ (basis.T @ projected))
    assert inside < 0.05 * outside, (inside, outside)


def test_one_step_updates_each_modality_in_turn_through_the_shared_head():
    model = tiny_model("mla")
    x, y = random_batch(batch=16, seed=7)
    state = model.method_state
    head = state.head.trainable_variables
    audio = model.encoders["audio"].trainable_variables
    visual = model.encoders["visual"].trainable_variables
    fusion_before = numpy_values(model.fusion.trainable_variables)
    start = numpy_values(head + audio + visual)

    def loss_of(name):
        return lambda: cross_entropy(
            y, state.head(model.encoders[name](x[name], training=True))
        )

    # First update (audio): plain gradient descent, lr 1.
    g_audio = gradients(loss_of("audio"), head + audio)
    after_audio = [v - g for v, g in zip(start[: len(head + audio)], g_audio)]
    # Second update (visual) from there, with the head's kernel gradient
    # projected by P from the visual features' batch mean (a = 0.1 at step 0).
    for variable, value in zip(head, after_audio[: len(head)]):
        variable.assign(value)
    g_visual = gradients(loss_of("visual"), head + visual)
    r = keras.ops.convert_to_numpy(
        model.encoders["visual"](x["visual"], training=True)).mean(axis=0)
    p = _numpy_projection(np.eye(6, dtype="float32"), r, 0.1)
    g_visual[0] = p @ g_visual[0]  # the kernel; the bias is not projected
    expected = (
        [v - g for v, g in zip(after_audio[: len(head)], g_visual[: len(head)])]
        + after_audio[len(head):]
        + [v - g for v, g in zip(start[len(head + audio):], g_visual[len(head):])]
    )
    for variable, value in zip(head, start[: len(head)]):
        variable.assign(value)
    model.optimizer.iterations.assign(0)
    model.train_on_batch(x, y)
    assert_lists_close(numpy_values(head + audio + visual), expected, rtol=1e-4)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(state.projection), p,
                               rtol=1e-4, atol=1e-6)
    assert_lists_close(numpy_values(model.fusion.trainable_variables), fusion_before)
    assert int(keras.ops.convert_to_numpy(model.optimizer.iterations)) == 2


def test_fused_prediction_weights_each_example_by_its_certainty():
    model = tiny_model("mla")
    x, _ = random_batch(batch=8, seed=8)
    outputs = model(x)
    logits = np.stack([keras.ops.convert_to_numpy(outputs["unimodal"][n])
                       for n in model.modality_names])
    p = softmax(logits)
    entropy = -(p * np.log(p)).sum(axis=-1)
    weights = softmax(-entropy.T).T
    np.testing.assert_allclose(keras.ops.convert_to_numpy(outputs["fused"]),
                               (weights[..., None] * logits).sum(axis=0), rtol=1e-5)


def test_rejects_encoders_of_different_widths():
    model = keras_dgl.DGLModel(
        {"audio": make_encoder(4), "visual": make_encoder(6)},
        make_fusion("concat"), method="mla",
    )
    with pytest.raises(ValueError, match="same size.*'audio': 4"):
        model.build({"audio": (None, 5), "visual": (None, 4)})
