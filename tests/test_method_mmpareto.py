"""MMPareto: the encoders' gradients are the Pareto integration of two terms."""

import keras
import numpy as np
from method_test_utils import (
    applied_update,
    assert_lists_close,
    owners,
    term_gradients,
    tiny_model,
)
from dgl_test_utils import random_batch

from keras_dgl.models.methods.mmpareto import pareto_combination

GAMMA = 1.5


def _numpy_pareto(multimodal, unimodal, total, gamma):
    """MMPareto's combination (Wei and Hu, 2024), written in NumPy."""
    dot = sum(float((a * b).sum()) for a, b in zip(multimodal, unimodal))
    mm = sum(float((a * a).sum()) for a in multimodal)
    uu = sum(float((b * b).sum()) for b in unimodal)
    pareto = np.clip((uu - dot) / (mm + uu - 2 * dot), 1e-3, 0.999)
    c = 0.5 if dot > 0 else float(pareto)
    result = []
    for a, b, s in zip(multimodal, unimodal, total):
        new = 2 * (c * a + (1 - c) * b)
        scale = max(1.0, np.linalg.norm(s) / np.linalg.norm(new))
        result.append(gamma * scale * new)
    return result, c


def _combine(multimodal, unimodal, total):
    tensors = [[keras.ops.convert_to_tensor(v) for v in group]
               for group in (multimodal, unimodal, total)]
    return [keras.ops.convert_to_numpy(g) for g in pareto_combination(*tensors, GAMMA)]


def test_conflicting_gradients_get_the_min_norm_combination():
    # Two variables; their joint gradients conflict (negative inner product).
    g_mm = [np.array([1.0, 0.0], "float32"), np.array([[0.5]], "float32")]
    g_u = [np.array([-0.8, 1.0], "float32"), np.array([[-0.5]], "float32")]
    total = [a + b for a, b in zip(g_mm, g_u)]
    combined = _combine(g_mm, g_u, total)
    expected, c = _numpy_pareto(g_mm, g_u, total, GAMMA)
    assert_lists_close(combined, expected, rtol=1e-5)
    # The min-norm point of the segment is orthogonal to it: the Pareto
    # direction is equally aligned with both gradients.
    direction = [2 * (c * a + (1 - c) * b) for a, b in zip(g_mm, g_u)]
    along = sum(float((d * (a - b)).sum()) for d, a, b in zip(direction, g_mm, g_u))
    assert abs(along) < 1e-6
    assert sum(float((d * a).sum()) for d, a in zip(direction, g_mm)) > 0
    assert sum(float((d * b).sum()) for d, b in zip(direction, g_u)) > 0


def test_agreeing_gradients_get_the_rescaled_plain_sum():
    g_mm = [np.array([1.0, 0.0], "float32"), np.array([[0.2]], "float32")]
    g_u = [np.array([0.5, 0.5], "float32"), np.array([[0.1]], "float32")]
    total = [a + b for a, b in zip(g_mm, g_u)]
    combined = _combine(g_mm, g_u, total)
    assert_lists_close(combined, [GAMMA * s for s in total], rtol=1e-6)


def test_training_step_applies_the_combination_to_each_encoder():
    # Separate unimodal heads, as in the reference; with these weights one
    # encoder's two gradients agree and the other's conflict.
    model = tiny_model(
        "mmpareto", unimodal_head="separate", method_options={"gamma": GAMMA}
    )
    rng = np.random.default_rng(11)
    for variable in model.trainable_variables:
        variable.assign(rng.normal(scale=0.5, size=variable.shape).astype("float32"))
    x, y = random_batch(batch=16, seed=3)
    terms = term_gradients(model, x, y)
    update, _ = applied_update(model, x, y)
    variables = model.trainable_variables
    plain_sum = [sum(terms[t][i] for t in terms) for i in range(len(variables))]
    expected = list(plain_sum)  # the fusion layer and heads get the plain sum
    agreement = {}
    for name in model.modality_names:
        index = [i for i, owner in enumerate(owners(model)) if owner == name]
        agreement[name] = sum(
            float((terms["multimodal"][i] * terms[name][i]).sum()) for i in index
        )
        combined, _ = _numpy_pareto(
            [terms["multimodal"][i] for i in index],
            [terms[name][i] for i in index],
            [plain_sum[i] for i in index],
            GAMMA,
        )
        for i, g in zip(index, combined):
            expected[i] = g
    assert agreement["audio"] > 0.01 and agreement["visual"] < -0.01, agreement
    assert_lists_close(update, expected, rtol=2e-3, atol=1e-6)
