"""PMR: prototypical modal rebalance."""

from keras import ops

from keras_dgl.models.methods import _common
from keras_dgl.models.methods._state import attach_state
from keras_dgl.models.methods.joint import Joint
from keras_dgl.models.methods.method import outputs


class PMR(Joint):
    """PMR, prototypical modal rebalance (Fan et al., CVPR 2023).

    Joint training plus prototype-based terms that act on each modality's
    features alone. The prototype of class `k` for modality `m` is the mean
    of that modality's features over the class's training examples; the
    prototypical logits are `-|f_m - c_k^m|` (Euclidean distance), output
    as `model(x)["prototype"][m]`, and their cross-entropy is the
    prototypical loss `PCE_m`. With `s_m` the batch sum of the prototypical
    probability of the true class, a modality whose `s_m` is below the mean
    of the others' is slow and gets `alpha * PCE_m` (it is pulled towards
    its prototypes, which speeds it up); one above it is dominant and, in
    the first `entropy_epochs` epochs, gets `-entropy_weight * H_m`, the
    negated mean entropy of its prototypical prediction (which slows its
    premature convergence). The objective is `CE(fused) + sum_m beta_m
    PCE_m - sum_m gamma_m H_m`. For two modalities the slow one is the one
    with the smaller score, as in the reference.

    Options (`method_options`):
        alpha: float. Weight of the slow modality's prototypical loss.
            Defaults to `1.0`, the reference code's default (its scripts use
            1-3; 2 for CREMA-D with concat fusion).
        momentum: float in `[0, 1)`. Prototype update `c = (1 - momentum) *
            mean + momentum * c_old`. Defaults to `0.2`, the reference
            code's default (its scripts use 0).
        entropy_weight: float. Weight of the dominant modality's entropy
            regularization. Defaults to `0.1` (the released reference code
            has no entropy term, so this value is ours).
        entropy_epochs: int. Epochs with the entropy regularization (the
            paper's early training stage). Defaults to `5` (ours, likewise).

    State (`model.method_state`): per modality the prototypes
    (`prototypes_<m>`, `(classes, dim)`), the class sums and counts being
    accumulated (`sums_<m>`, `counts`), whether prototypes exist (`ready`)
    and the epoch count (`epochs`).

    Departures from the reference code: prototypes are the class means of
    the training-mode features computed during the previous epoch's steps
    (accumulated as the weights move), not of an inference-mode pass over a
    tenth of the training data before each epoch; the first epoch therefore
    trains without the prototype terms and ends by computing the first
    prototypes. The reference's two-modality rule (the prototypical loss
    on the modality with the smaller score) is generalized to any number of
    modalities by comparing each with the mean of the others.

    Example:

    ```python
    model = keras_dgl.DGLModel(
        encoders,
        keras_dgl.layers.ConcatFusion(num_classes=6),
        method="pmr",
        method_options={"alpha": 2.0},
    )
    ```

    References:
        - [Fan et al., CVPR 2023](https://arxiv.org/abs/2211.07089)
    """

    defaults = {
        "alpha": 1.0,
        "momentum": 0.2,
        "entropy_weight": 0.1,
        "entropy_epochs": 5,
    }
    own_step = True

    def __init__(self, model, options=None):
        super().__init__(model, options)
        if not self.options["momentum"] < 1.0:
            raise ValueError(
                "pmr option 'momentum' must be below 1. "
                f"Received: {self.options['momentum']}"
            )
        self.state = attach_state(model, self.name)

    def build(self, model, feature_shapes):
        classes = model.fusion.num_classes
        for name in model.modality_names:
            dim = feature_shapes[name][-1]
            self.state.add_state(f"prototypes_{name}", (classes, dim))
            self.state.add_state(f"sums_{name}", (classes, dim))
        self.state.add_state("counts", (classes,))
        self.state.add_state("ready")
        self.state.add_state("epochs")
        self.state.built = True

    def forward(self, model, features, training, extras=False):
        result, _ = super().forward(model, features, training)
        prototype = {
            name: -_distances(
                features[name], getattr(self.state, f"prototypes_{name}").value
            )
            for name in model.modality_names
        }
        result = outputs(result["fused"], result["unimodal"], prototype=prototype)
        return result, ({"features": _common.detach(features)} if extras else None)

    def loss(self, model, y, y_pred, sample_weight, training):
        total = super().loss(model, y, y_pred, sample_weight, training)
        prototype = y_pred["prototype"]
        scores = {
            n: ops.sum(_common.true_class_probabilities(prototype[n], y))
            for n in model.modality_names
        }
        early = ops.cast(
            ops.less(self.state.epochs.value, self.options["entropy_epochs"]),
            "float32",
        )
        ready = self.state.ready.value
        for name in model.modality_names:
            gap = scores[name] - _common.mean_of_others(scores, name)
            slow = ops.cast(gap < 0.0, "float32") * ready
            dominant = ops.cast(gap > 0.0, "float32") * ready * early
            total = total + self.options["alpha"] * slow * model._term(
                y, prototype[name], sample_weight
            )
            total = total - self.options["entropy_weight"] * dominant * _entropy(
                prototype[name]
            )
        return total

    def transform_gradients(self, model, gradients, y, y_pred, extras, substep):
        one_hot = _common.targets(y, model.fusion.num_classes)
        for name in model.modality_names:
            sums = getattr(self.state, f"sums_{name}")
            features = ops.cast(extras["features"][name], "float32")
            sums.assign(sums.value + ops.matmul(ops.transpose(one_hot), features))
        counts = self.state.counts
        counts.assign(counts.value + ops.sum(one_hot, axis=0))
        return gradients

    def on_epoch_end(self, model, epoch):
        state = self.state
        counts = state.counts.value
        seen = ops.expand_dims(counts > 0.0, -1)
        momentum = self.options["momentum"] * state.ready.value
        for name in model.modality_names:
            prototypes = getattr(state, f"prototypes_{name}")
            sums = getattr(state, f"sums_{name}")
            means = sums.value / ops.expand_dims(ops.maximum(counts, 1.0), -1)
            new = (1.0 - momentum) * means + momentum * prototypes.value
            prototypes.assign(ops.where(seen, new, prototypes.value))
            sums.assign(ops.zeros(sums.shape))
        state.counts.assign(ops.zeros(counts.shape))
        state.ready.assign(ops.ones(()))
        state.epochs.assign(state.epochs.value + 1.0)


def _distances(features, prototypes):
    """Euclidean distance of each example to each prototype, `(batch, classes)`."""
    features = ops.cast(features, "float32")
    # Inside a mixed-precision call a float32 variable reads as bfloat16.
    prototypes = ops.stop_gradient(ops.cast(prototypes, "float32"))
    difference = ops.expand_dims(features, 1) - ops.expand_dims(prototypes, 0)
    # The square root's gradient is infinite at 0: keep it off 0.
    return ops.sqrt(ops.maximum(ops.sum(difference * difference, axis=-1), 1e-12))


def _entropy(logits):
    log_probabilities = ops.log_softmax(logits, axis=-1)
    return ops.mean(-ops.sum(ops.exp(log_probabilities) * log_probabilities, axis=-1))
