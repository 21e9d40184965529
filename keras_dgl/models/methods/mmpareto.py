"""MMPareto: Pareto integration of multimodal and unimodal gradients."""

from keras import ops

from keras_dgl.models.methods import _common
from keras_dgl.models.methods.joint_aux import JointAux
from keras_dgl.models.methods.method import outputs

# Bounds of the min-norm weight, as in the reference solver.
_MIN_WEIGHT, _MAX_WEIGHT = 0.001, 0.999


class MMPareto(JointAux):
    """MMPareto (Wei and Hu, ICML 2024): innocent unimodal assistance.

    The objective is the multimodal loss plus every unimodal loss, with unit
    weights (`CE(fused) + sum_m CE(unimodal_m)`, nothing detached; `alpha`
    and `fused_weight` are not used). In each step the gradients of each
    encoder `m` from the multimodal term (`g_mm`) and from its own unimodal
    term (`g_u`) are taken separately and combined:

    - direction: when they agree (`cos(g_mm, g_u) > 0`, over all of the
      encoder's variables) with equal weights `1/2`; when they conflict with
      the min-norm (Pareto) weights of the two, `c g_mm + (1 - c) g_u` with
      `c = clip(<g_u, g_u - g_mm> / |g_mm - g_u|^2, 0.001, 0.999)`;
    - magnitude: the combination `g = 2 (c g_mm + (1 - c) g_u)` is scaled,
      per variable, up to the norm of the plain sum of the terms' gradients
      when it is shorter (`g * max(1, |sum| / |g|)`), then by `gamma`.

    So when the gradients agree the encoder gets `gamma` times the plain sum
    of the terms' gradients. Variables outside the encoders (the fusion
    layer, separate heads) get the plain sum. Works for any number of
    modalities: each encoder has exactly two objectives.

    Options (`method_options`):
        gamma: float. Magnitude factor applied to the encoders' combined
            gradients. Defaults to `1.5`, the reference code's value (also
            BalanceBenchmark's `alpha`).

    Departures from the reference code: the reference recognises encoder
    variables by the strings "audio"/"visual" in their names; here they are
    the encoders' own variables. Its unimodal heads are separate linear
    layers; here the unimodal predictions are the fusion layer's (the
    fusion with the other modalities zeroed, or `unimodal_head="separate"`
    for the reference's setup). Regularization losses of the model are
    added to the combined gradients unchanged.

    Example:

    ```python
    model = keras_dgl.DGLModel(
        encoders,
        keras_dgl.layers.ConcatFusion(num_classes=6),
        method="mmpareto",
        method_options={"gamma": 1.5},
    )
    ```

    References:
        - [Wei and Hu, ICML 2024](https://arxiv.org/abs/2405.17730)
    """

    defaults = {"gamma": 1.5}
    own_step = True
    per_term_gradients = True

    def forward(self, model, features, training, extras=False):
        fused = model.fusion(features, training=training)
        unimodal = model.fusion(features, unimodal=True, training=training)
        return outputs(fused, unimodal), None

    def loss(self, model, y, y_pred, sample_weight, training):
        terms = self._terms(model, y, y_pred, sample_weight)
        return ops.sum(ops.stack(list(terms.values())))

    def _terms(self, model, y, y_pred, sample_weight):
        terms = {"multimodal": model._term(y, y_pred["fused"], sample_weight)}
        for name in model.modality_names:
            terms[name] = model._term(y, y_pred["unimodal"][name], sample_weight)
        return terms

    def step_losses(self, model, x, y, y_pred, extras, sample_weight, substep):
        y = model._check_labels(y, y_pred["fused"])
        terms = self._terms(model, y, y_pred, sample_weight)
        if model.losses:
            terms["regularization"] = ops.sum(
                ops.stack([ops.cast(ops.sum(e), "float32") for e in model.losses])
            )
        return terms

    def transform_gradients(self, model, gradients, y, y_pred, extras, substep):
        variables = model.trainable_variables
        owners = _common.encoder_owners(model)
        terms = [t for t in gradients if t != "regularization"]
        combined = []
        for index, variable in enumerate(variables):
            total = _sum([gradients[t][index] for t in terms])
            combined.append(total)
        for name in model.modality_names:
            indices = [i for i, owner in enumerate(owners) if owner == name]
            if not indices:
                continue
            new = pareto_combination(
                [_zero(gradients["multimodal"][i], variables[i]) for i in indices],
                [_zero(gradients[name][i], variables[i]) for i in indices],
                [_zero(combined[i], variables[i]) for i in indices],
                self.options["gamma"],
            )
            for i, gradient in zip(indices, new):
                combined[i] = gradient
        if "regularization" in gradients:
            combined = [
                _sum([g, r]) for g, r in zip(combined, gradients["regularization"])
            ]
        return combined


def pareto_combination(multimodal, unimodal, total, gamma):
    """MMPareto's combination of one encoder's two gradients, in `keras.ops`.

    Args:
        multimodal: list of tensors, the multimodal term's gradient of each
            of the encoder's variables.
        unimodal: list of tensors, the encoder's unimodal term's gradient.
        total: list of tensors, the plain sum of every term's gradient (the
            magnitude the combination is scaled up to).
        gamma: float. The final magnitude factor.

    Returns:
        The list of combined gradients, one per variable.

    Example:

    ```python
    g = pareto_combination([g_mm], [g_u], [g_mm + g_u], gamma=1.5)
    ```
    """
    dot = _sum([ops.sum(a * b) for a, b in zip(multimodal, unimodal)])
    mm = _sum([ops.sum(a * a) for a in multimodal])
    uu = _sum([ops.sum(b * b) for b in unimodal])
    # The minimum-norm point of the segment between the two gradients.
    pareto = ops.clip(
        (uu - dot) / ops.maximum(mm + uu - 2.0 * dot, _common.EPSILON),
        _MIN_WEIGHT,
        _MAX_WEIGHT,
    )
    weight = ops.where(dot > 0.0, 0.5, pareto)
    result = []
    for a, b, s in zip(multimodal, unimodal, total):
        w = ops.cast(weight, a.dtype)
        new = 2.0 * (w * a + (1.0 - w) * b)
        new_norm = ops.sqrt(ops.sum(new * new))
        sum_norm = ops.sqrt(ops.sum(s * s))
        scale = ops.where(
            new_norm > 0.0,
            ops.maximum(1.0, sum_norm / ops.maximum(new_norm, _common.EPSILON)),
            1.0,
        )
        result.append(gamma * scale * new)
    return result


def _zero(gradient, variable):
    return _common.zero_gradient_if_none(gradient, variable)


def _sum(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    total = values[0]
    for value in values[1:]:
        total = total + value
    return total
