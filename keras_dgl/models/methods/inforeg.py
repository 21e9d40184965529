"""InfoReg: regulating the dominant modality's information acquisition."""

from keras import ops

from keras_dgl.models.methods import _common
from keras_dgl.models.methods._state import attach_state
from keras_dgl.models.methods.joint_aux import JointAux


class InfoReg(JointAux):
    """InfoReg (Huang, Wei, Yang and Hu, CVPR 2025).

    The objective is that of `"joint_aux"` (multimodal loss plus `alpha`
    times the unimodal losses; the reference uses `alpha = 1`). During the
    prime learning window, the dominant modality's information acquisition
    is slowed by a proximal term pulling its encoder back towards its
    weights at the start of the epoch: with `s_m` the batch sum of modality
    `m`'s softmax probability of the true class (from its unimodal
    prediction), a modality is dominant when `s_m` exceeds the mean of the
    others', and its encoder's gradients become `g + beta_m (theta -
    theta_epoch_start)` with `beta_m = strength * exp(tanh(s_m - mean_{n !=
    m} s_n))`. For two modalities this is the reference's rule.

    The window is open for modality `m` while the information its encoder
    acquires still grows: the trace of the encoder's Fisher information
    (per epoch, the sum over its kernels of the mean squared gradient summed
    over the steps) is averaged over the last `window` epochs, and the
    window stays open while that moving average grew by more than
    `threshold` of itself since the previous epoch (`k > threshold`, with
    `k = (T_now - T_before) / T_now`); it is open during the first epoch.

    Options (`method_options`):
        strength: float. Scale of the proximal coefficient. Defaults to
            `0.95`, the reference's coefficient for the dominant (audio)
            modality on CREMA-D (it uses 0.1 for the visual one).
        threshold: float. Relative growth of the Fisher trace's moving
            average that keeps the window open. Defaults to `0.05`.
        window: int. Epochs in the moving average. Defaults to `10`.

    State (`model.method_state`): the encoders' weights at the start of the
    epoch (`anchor_<modality>_<i>`, stored by the epoch's first step, when
    `anchored` is 0), the Fisher trace being accumulated (`fisher`), the
    last `window + 1` epoch traces (`traces`) and the open windows
    (`open`), updated by `fit`'s epoch hooks.

    Departures from the reference code: each modality's window follows its
    own encoder's Fisher trace (the reference reads the audio encoder's for
    both), one `strength` serves every modality (the reference's 0.95 and
    0.1 are per modality of CREMA-D), and every kernel (variables with two
    or more dimensions) enters the trace, not only convolution and dense
    layers by type.

    Example:

    ```python
    model = keras_dgl.DGLModel(
        encoders,
        keras_dgl.layers.ConcatFusion(num_classes=6),
        method="inforeg",
        method_options={"strength": 0.95},
    )
    ```

    References:
        - [Huang et al., CVPR 2025](https://arxiv.org/abs/2503.18595)
    """

    defaults = {"strength": 0.95, "threshold": 0.05, "window": 10}
    own_step = True

    def __init__(self, model, options=None):
        super().__init__(model, options)
        if self.options["window"] < 1:
            raise ValueError(
                "inforeg option 'window' must be at least 1. "
                f"Received: {self.options['window']}"
            )
        self.state = attach_state(model, self.name)

    def build(self, model, feature_shapes):
        count = len(model.modality_names)
        self.anchors = {}
        for name in model.modality_names:
            self.anchors[name] = [
                self.state.add_state(f"anchor_{name}_{i}", v.shape, v.dtype)
                for i, v in enumerate(model.encoders[name].trainable_variables)
            ]
        self.state.add_state("fisher", (count,))
        self.state.add_state("traces", (count, self.options["window"] + 1))
        self.state.add_state("open", (count,), initializer="ones")
        self.state.add_state("anchored")
        self.state.add_state("epochs")
        self.state.built = True

    # Epoch hooks ----------------------------------------------------------------

    def on_epoch_begin(self, model, epoch, steps):
        # The epoch's first step stores the weights it starts from.
        self.state.anchored.assign(0.0)
        if float(ops.convert_to_numpy(self.state.epochs.value)) > 0:
            self.state.open.assign(
                window_open(self.state.traces.value, self.options["threshold"])
            )
        self.state.fisher.assign(ops.zeros(self.state.fisher.shape))

    def on_epoch_end(self, model, epoch):
        traces, fisher = self.state.traces.value, self.state.fisher.value
        self.state.traces.assign(
            ops.concatenate([traces[:, 1:], fisher[:, None]], axis=1)
        )
        self.state.epochs.assign(self.state.epochs.value + 1.0)

    # Step -----------------------------------------------------------------------

    def transform_gradients(self, model, gradients, y, y_pred, extras, substep):
        names = model.modality_names
        scores = {
            name: ops.sum(
                _common.true_class_probabilities(y_pred["unimodal"][name], y)
            )
            for name in names
        }
        coefficients = inforeg_coefficients(
            scores,
            self.options["strength"],
            {name: self.state.open.value[i] for i, name in enumerate(names)},
        )
        # Gradients are scaled like the loss (mixed precision); so is the
        # proximal term, and the Fisher trace is of the unscaled gradients.
        scale = ops.cast(model.optimizer.scale_loss(1.0), "float32")
        owners = _common.encoder_owners(model)
        variables = model.trainable_variables
        anchors = {
            id(v): a
            for n in names
            for v, a in zip(model.encoders[n].trainable_variables, self.anchors[n])
        }
        anchored = self.state.anchored.value > 0.5
        result, fisher = [], {name: 0.0 for name in names}
        for gradient, variable, owner in zip(gradients, variables, owners):
            if owner is None:
                result.append(gradient)
                continue
            anchor = anchors[id(variable)]
            anchor.assign(ops.where(anchored, anchor.value, variable.value))
            if gradient is None:
                result.append(gradient)
                continue
            pull = ops.cast(coefficients[owner] * scale, gradient.dtype)
            gradient = gradient + pull * (variable.value - anchor.value)
            result.append(gradient)
            if len(variable.shape) >= 2:
                squared = ops.cast(ops.mean(gradient * gradient), "float32")
                fisher[owner] = fisher[owner] + squared / (scale * scale)
        fisher = ops.stack([ops.cast(fisher[n], "float32") for n in names])
        self.state.fisher.assign(self.state.fisher.value + fisher)
        self.state.anchored.assign(1.0)
        return result


def inforeg_coefficients(scores, strength, open_windows):
    """InfoReg's proximal coefficient of each modality (0 unless dominant).

    Args:
        scores: dict modality -> scalar, the batch sum of the true class's
            unimodal softmax probability.
        strength: float. The coefficient's scale.
        open_windows: dict modality -> 0/1 scalar, whether its window is open.

    Returns:
        dict modality -> scalar coefficient `beta_m`.

    Example:

    ```python
    beta = inforeg_coefficients({"a": 40.0, "v": 25.0}, 0.95, {"a": 1.0, "v": 1.0})
    ```
    """
    coefficients = {}
    for name, score in scores.items():
        gap = score - _common.mean_of_others(scores, name)
        beta = strength * ops.exp(ops.tanh(gap))
        dominant = ops.logical_and(gap > 0.0, open_windows[name] > 0.5)
        coefficients[name] = ops.where(dominant, beta, 0.0)
    return coefficients


def window_open(traces, threshold):
    """Per modality, whether the Fisher trace's moving average still grows.

    Args:
        traces: `(modalities, window + 1)` tensor, the last epoch traces,
            oldest first.
        threshold: float. Relative growth that keeps the window open.

    Returns:
        `(modalities,)` float tensor of 0s and 1s.

    Example:

    ```python
    window_open(keras.ops.array([[0.0, 1.0, 2.0]]), threshold=0.05)  # [1.0]
    ```
    """
    now = ops.mean(traces[:, 1:], axis=1)
    before = ops.mean(traces[:, :-1], axis=1)
    growth = (now - before) / ops.maximum(now, _common.EPSILON)
    return ops.cast(growth > threshold, "float32")
