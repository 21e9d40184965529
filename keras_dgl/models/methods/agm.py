"""AGM: adaptive gradient modulation from Shapley mono-modal responses."""

import itertools
import math

from keras import ops

from keras_dgl.models.methods import _common
from keras_dgl.models.methods._state import attach_state
from keras_dgl.models.methods.joint import Joint

# Cap of the exponent of the coefficient, as in the reference code.
_MAX_EXPONENT = 10.0
# Smallest probability whose log enters a score, as in the reference code.
_MIN_PROBABILITY = 1e-8
# Subsets are enumerated exactly; 2**8 fusion calls per step at most.
MAX_MODALITIES = 8


class AGM(Joint):
    """AGM, adaptive gradient modulation (Li et al., ICCV 2023).

    The objective is that of `"joint"` (the multimodal loss). In each step
    the fused prediction is split into one mono-modal response per modality
    by the Shapley value over subsets of modalities (absent modalities'
    features zeroed): `phi_m = sum_{S not containing m} |S|! (N-|S|-1)! / N!
    (v(S + m) - v(S))`, with `v(S)` the fusion layer's logits on subset `S`
    and `v(empty) = 0` (so the responses sum to the fused logits, as the
    reference's two-modality formula does). With `s_m` the batch-mean
    cross-entropy of `phi_m`, and `r_m = exp(mean_{n != m} s_n - s_m)` the
    current lead of modality `m` (for two modalities the reference's
    `exp(s_v - s_a)`), the same ratio `o_m` of the running means of the
    scores over all previous steps is the target, and encoder `m`'s
    gradients are multiplied by `k_m = exp(alpha * min(o_m - r_m, 10))`: a
    modality ahead of its usual lead is slowed down, one behind it is sped
    up. For two modalities this is the reference's formula.

    Options (`method_options`):
        alpha: float. Modulation strength. Defaults to `1.0`, the reference
            code's default (its README runs AV-MNIST with 2.5;
            BalanceBenchmark uses 0.1).

    The running means and the step counter are Keras variables of
    `model.method_state` (`iteration`, `scores`).

    Departures from the reference code: absent modalities are zeroed
    features of this step (as everywhere in this library) instead of zeroed
    inputs run through the whole network again in inference mode, so the
    responses cost `2**N - 1` fusion calls, not network passes; they are
    computed without gradient, and the coefficient scales encoder `m`'s
    gradient directly (as BalanceBenchmark does for any number of
    modalities) instead of the gradient flowing through `phi_m` (which in
    the reference also reaches the other encoder through the zero-input
    passes). The reference clips the gradient norm to 1 when a fusion
    gradient entry exceeds 1; use the optimizer's `clipnorm` for that.
    Modulation is applied at every step. At most 8 modalities (the subsets
    are enumerated exactly).

    Example:

    ```python
    model = keras_dgl.DGLModel(
        encoders,
        keras_dgl.layers.ConcatFusion(num_classes=6),
        method="agm",
        method_options={"alpha": 1.0},
    )
    ```

    References:
        - [Li et al., ICCV 2023](https://arxiv.org/abs/2308.07686)
    """

    defaults = {"alpha": 1.0}
    own_step = True

    def __init__(self, model, options=None):
        super().__init__(model, options)
        self._check_at_most(model, MAX_MODALITIES)
        self.state = attach_state(model, self.name)

    def build(self, model, feature_shapes):
        self.state.add_state("iteration")
        self.state.add_state("scores", (len(model.modality_names),))
        self.state.built = True

    def forward(self, model, features, training, extras=False):
        outputs, _ = super().forward(model, features, training)
        if not extras:
            return outputs, None
        return outputs, {"shapley": shapley_responses(model.fusion, features)}

    def transform_gradients(self, model, gradients, y, y_pred, extras, substep):
        names = model.modality_names
        scores = {}
        for name in names:
            probabilities = _common.true_class_probabilities(
                extras["shapley"][name], y
            )
            scores[name] = ops.mean(
                -ops.log(ops.maximum(probabilities, _MIN_PROBABILITY))
            )
        running = self.state.scores.value
        running = {name: running[i] for i, name in enumerate(names)}
        coefficients = agm_coefficients(scores, running, self.options["alpha"])
        iteration = self.state.iteration.value + 1.0
        self.state.scores.assign(
            ops.stack(
                [
                    running[n] * (iteration - 1.0) / iteration + scores[n] / iteration
                    for n in names
                ]
            )
        )
        self.state.iteration.assign(iteration)
        return [
            g if g is None or owner is None
            else g * ops.cast(coefficients[owner], g.dtype)
            for g, owner in zip(gradients, _common.encoder_owners(model))
        ]


def agm_coefficients(scores, running_scores, alpha):
    """AGM's coefficient of each modality, `exp(alpha * min(o_m - r_m, 10))`.

    Args:
        scores: dict modality -> scalar, this step's score (cross-entropy of
            the mono-modal response).
        running_scores: dict modality -> scalar, their running means.
        alpha: float. Modulation strength.

    Returns:
        dict modality -> scalar coefficient.

    Example:

    ```python
    k = agm_coefficients({"a": 0.5, "v": 1.2}, {"a": 0.7, "v": 1.0}, alpha=1.0)
    ```
    """
    coefficients = {}
    for name in scores:
        ratio = ops.exp(_common.mean_of_others(scores, name) - scores[name])
        target = ops.exp(
            _common.mean_of_others(running_scores, name) - running_scores[name]
        )
        coefficients[name] = ops.exp(
            alpha * ops.minimum(target - ratio, _MAX_EXPONENT)
        )
    return coefficients


def shapley_responses(fusion, features):
    """Shapley value of each modality for the fused logits, per example.

    `v(S)` is `fusion` applied with the features of modalities outside `S`
    zeroed (inference mode, no gradient), and `v(empty) = 0`.

    Args:
        fusion: a built `keras_dgl.layers.FusionLayer`.
        features: dict modality -> `(batch, dim)` features.

    Returns:
        dict modality -> `(batch, num_classes)` responses; they sum to the
        fused logits.

    Example:

    ```python
    phi = shapley_responses(model.fusion, features)
    ```
    """
    names = sorted(features)
    count = len(names)
    detached = _common.detach(features)
    values = {(): None}
    for size in range(1, count + 1):
        for subset in itertools.combinations(names, size):
            zeroed = {
                n: detached[n] if n in subset else ops.zeros_like(detached[n])
                for n in names
            }
            values[subset] = ops.cast(fusion(zeroed, training=False), "float32")
    responses = {}
    for name in names:
        others = [n for n in names if n != name]
        total = None
        for size in range(count):
            weight = (
                math.factorial(size) * math.factorial(count - size - 1)
                / math.factorial(count)
            )
            for subset in itertools.combinations(others, size):
                with_name = tuple(sorted(subset + (name,)))
                gain = values[with_name]
                if values[subset] is not None:
                    gain = gain - values[subset]
                term = weight * gain
                total = term if total is None else total + term
        responses[name] = ops.stop_gradient(total)
    return responses
