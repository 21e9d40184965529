"""MLA: multimodal learning by alternating unimodal adaptation."""

import keras
from keras import ops

from keras_dgl.models.methods import _common
from keras_dgl.models.methods._state import attach_state
from keras_dgl.models.methods.method import Method
from keras_dgl.models.methods.method import outputs


class MLA(Method):
    """MLA, alternating unimodal adaptation (Zhang, Latham and Yao, CVPR 2024).

    The modalities are trained in turn through one shared linear head
    (`model.method_state.head`, `Dense(num_classes)` on the features; every
    encoder must return features of the same size): in each step, for each
    modality in sorted order, `CE(head(f_m), y)` is differentiated and
    applied to that modality's encoder and the head only, before the next
    modality's forward pass. To keep the shared head from forgetting the
    modalities it learned before, its kernel gradient is projected
    (orthogonal weight modification): with `r` the batch mean of the
    modality's features, the projector `P` (identity at first) is updated
    by `k = P r`, `P <- P - k k^T / (a + r^T k)`, normalized to unit
    Frobenius norm, and the kernel gradient `G` (features x classes)
    becomes `P G`; directions of inputs seen so far are thereby damped by
    about `a / (a + |r|^2)`. `a = 0.1 ** (1 + t / T)` at step `t` of an
    epoch of `T` steps. The very first update is not projected. At test
    time (and in `model(x)`) the modalities are fused by uncertainty: per
    example, `fused = sum_m w_m head(f_m)` with `w = softmax(-H)`, `H_m` the
    entropy of modality `m`'s predicted class distribution.

    The fusion layer is not used by this method (it only sets the number
    of classes; its weights stay as initialized), and `alpha` and
    `fused_weight` are not used. The logged loss is the sum of the
    modalities' losses of a step; `compute_loss` (e.g. for validation) is
    `sum_m CE(head(f_m), y)`.

    Options (`method_options`):
        dynamic_fusion: bool. Fuse by per-example uncertainty (the paper's
            and the reference's best setting, `--dynamic`); `False` averages
            the modalities' logits. Defaults to `True`.

    State (`model.method_state`): the shared `head`, the projector
    (`projection`), the count of head updates (`updates`), and the step
    within the epoch and steps per epoch (`step`, `steps_per_epoch`, set by
    `fit`'s epoch hooks; until the first epoch's length is known, which is
    at its end for an epoch of unknown length or a model built by its first
    step, `a` stays 0.1).

    Departures from the reference code: its uncertainty weights apply a
    softmax over the batch axis and sum the entropy over the whole batch
    (one weight per modality and batch, so a prediction depends on the
    other examples in its batch); here each example is weighted by its own
    class distribution. Without dynamic fusion the reference uses fixed
    per-dataset weights; here the plain mean. Each modality's update uses
    the model's one optimizer, whose iteration count therefore advances
    once per modality per step, as the reference's `optimizer.step()` does.

    Example:

    ```python
    model = keras_dgl.DGLModel(
        encoders,
        keras_dgl.layers.ConcatFusion(num_classes=6),
        method="mla",
    )
    ```

    References:
        - [Zhang, Latham and Yao, CVPR 2024](https://arxiv.org/abs/2311.10707)
    """

    defaults = {"dynamic_fusion": True}
    # The fused prediction combines the unimodal ones, not the fusion layer's.
    fused_by_fusion_layer = False
    own_step = True

    def __init__(self, model, options=None):
        super().__init__(model, options)
        self.state = attach_state(model, self.name)
        fusion = model.fusion
        self.state.head = keras.layers.Dense(
            fusion.num_classes,
            kernel_initializer=fusion._new_kernel_initializer(),
            dtype=fusion.dtype_policy,
            name="shared_head",
        )

    def build(self, model, feature_shapes):
        dims = {name: shape[-1] for name, shape in feature_shapes.items()}
        if len(set(dims.values())) != 1:
            raise ValueError(
                "Method 'mla' trains one head shared by every modality, so "
                "all encoders must return features of the same size; "
                f"received {dims}. Give the encoders the same output width."
            )
        dim = next(iter(dims.values()))
        self.state.head.build((None, dim))
        self.state.add_state("projection", (dim, dim), initializer="identity")
        self.state.add_state("updates")
        self.state.add_state("step")
        self.state.add_state("steps_per_epoch")
        self.state.built = True

    # Model hooks ---------------------------------------------------------------

    def forward(self, model, features, training, extras=False):
        unimodal = {
            name: self.state.head(features[name], training=training)
            for name in model.modality_names
        }
        return outputs(self._fuse(unimodal), unimodal), None

    def loss(self, model, y, y_pred, sample_weight, training):
        terms = [
            model._term(y, y_pred["unimodal"][name], sample_weight)
            for name in model.modality_names
        ]
        return ops.sum(ops.stack(terms))

    def _fuse(self, unimodal):
        logits = ops.stack(
            [ops.cast(unimodal[n], "float32") for n in sorted(unimodal)]
        )
        if not self.options["dynamic_fusion"]:
            return ops.mean(logits, axis=0)
        return ops.sum(uncertainty_weights(logits)[..., None] * logits, axis=0)

    def on_epoch_begin(self, model, epoch, steps):
        self._steps = steps
        if steps:
            self.state.steps_per_epoch.assign(float(steps))

    def on_epoch_end(self, model, epoch):
        # An epoch of unknown length: measure it.
        steps = getattr(self, "_steps", None) or self.state.step.value
        self.state.steps_per_epoch.assign(ops.cast(steps, "float32"))
        self.state.step.assign(0.0)

    # Step plan -----------------------------------------------------------------

    def substeps(self, model):
        return tuple(model.modality_names)

    def step_forward(self, model, x, substep):
        x = model._check_input_keys(x, "inputs")
        if not model.built:
            # The substeps bypass the model's call, which builds it (and the
            # shared head and state) on a first step without prior build.
            model(x, training=True)
        feature = model.encoders[substep](x[substep], training=True)
        logits = ops.cast(self.state.head(feature, training=True), "float32")
        extras = {"feature": ops.stop_gradient(feature)}
        return {"unimodal": {substep: logits}}, extras

    def step_losses(self, model, x, y, y_pred, extras, sample_weight, substep):
        logits = y_pred["unimodal"][substep]
        y = model._check_labels(y, logits)
        terms = {"loss": model._term(y, logits, sample_weight)}
        if substep == model.modality_names[0] and model.losses:
            terms["regularization"] = ops.sum(
                ops.stack([ops.cast(ops.sum(e), "float32") for e in model.losses])
            )
        return terms

    def transform_gradients(self, model, gradients, y, y_pred, extras, substep):
        state = self.state
        active = {id(v) for v in model.encoders[substep].trainable_variables}
        active |= {id(v) for v in state.head.trainable_variables}
        kernel = state.head.kernel
        steps = state.steps_per_epoch.value
        fraction = ops.where(
            steps > 0.0, state.step.value / ops.maximum(steps, 1.0), 0.0
        )
        alpha = ops.power(0.1, 1.0 + fraction)
        result = []
        for gradient, variable in zip(gradients, model.trainable_variables):
            if id(variable) not in active:
                result.append(None)
            elif variable is kernel:
                projection, projected = project_gradient(
                    state.projection.value,
                    ops.mean(ops.cast(extras["feature"], "float32"), axis=0),
                    alpha,
                    gradient,
                )
                first = state.updates.value < 0.5
                state.projection.assign(
                    ops.where(first, state.projection.value, projection)
                )
                result.append(ops.where(first, gradient, projected))
            else:
                result.append(gradient)
        state.updates.assign(state.updates.value + 1.0)
        if substep == model.modality_names[-1]:
            state.step.assign(state.step.value + 1.0)
        return result

    def merge_predictions(self, model, predictions):
        unimodal = {}
        for prediction in predictions:
            unimodal.update(prediction["unimodal"])
        return outputs(self._fuse(unimodal), unimodal)


def project_gradient(projection, mean_input, alpha, gradient):
    """One orthogonal-projection update of MLA's shared head.

    Args:
        projection: `(dim, dim)` projector `P`.
        mean_input: `(dim,)` batch mean `r` of the head's input.
        alpha: scalar regularizer `a` of the update.
        gradient: `(dim, classes)` kernel gradient `G`.

    Returns:
        `(new_projection, projected_gradient)`: `P' = (P - k k^T / (a +
        r^T k)) / |.|_F` with `k = P r`, and `P' G`.

    Example:

    ```python
    p, g = project_gradient(keras.ops.eye(4), r, 0.1, grad)
    ```
    """
    r = ops.reshape(mean_input, (-1, 1))
    k = ops.matmul(projection, r)
    denominator = alpha + ops.sum(r * k)
    updated = projection - ops.matmul(k, ops.transpose(k)) / denominator
    updated = updated / ops.sqrt(ops.sum(updated * updated))
    projected = ops.matmul(ops.cast(updated, gradient.dtype), gradient)
    return updated, projected


def uncertainty_weights(logits):
    """Per-example modality weights `softmax(-entropy)` over axis 0.

    Args:
        logits: `(modalities, batch, classes)` tensor.

    Returns:
        `(modalities, batch)` weights summing to 1 over the modalities.

    Example:

    ```python
    weights = uncertainty_weights(keras.ops.stack([audio_logits, video_logits]))
    ```
    """
    log_probabilities = ops.log_softmax(logits, axis=-1)
    entropy = -ops.sum(ops.exp(log_probabilities) * log_probabilities, axis=-1)
    return ops.softmax(-entropy, axis=0)
