"""SGD with momentum and weight decay applied as `torch.optim.SGD` applies them."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_dgl")
class CoupledSGD(keras.optimizers.Optimizer):
    """SGD with momentum and coupled (L2-style) weight decay, as in PyTorch.

    Each step, for every variable `w` with gradient `g` (after any clipping
    by `clipnorm` / `global_clipnorm`, as `torch.nn.utils.clip_grad_norm_`
    before `optimizer.step()`):

    ```
    d = g + weight_decay * w
    buffer = momentum * buffer + d
    w = w - learning_rate * buffer
    ```

    which is `torch.optim.SGD(lr, momentum, weight_decay)` with no
    dampening and no Nesterov term. Two things differ from
    `keras.optimizers.SGD(weight_decay=...)`: the decay enters the gradient,
    so it passes through the momentum (about 10x stronger at momentum 0.9
    than Keras' decoupled decay), and the buffer holds gradients, not steps,
    so a learning-rate drop takes effect at once (Keras' velocity keeps the
    old rate's steps). This is the optimizer of the DGL authors' published
    recipe; see `keras_dgl.experiments.presets.PUBLISHED_RECIPE`.

    Args:
        learning_rate: float or a `keras.optimizers.schedules` schedule.
            Defaults to `0.01`.
        momentum: float in `[0, 1)`. Defaults to `0.9`.
        weight_decay: float >= 0. Coefficient of the decay added to every
            gradient (PyTorch's `weight_decay`). Defaults to `0.0`.
        **kwargs: other `keras.optimizers.Optimizer` arguments (`clipnorm`,
            `global_clipnorm`, `name`, ...), except the base class's own
            (decoupled) `weight_decay`.

    Example:

    ```python
    optimizer = keras_dgl.optimizers.CoupledSGD(
        learning_rate=2e-3, momentum=0.9, weight_decay=1e-4, global_clipnorm=40.0
    )
    model.compile(optimizer=optimizer)
    ```

    References:
        - [`torch.optim.SGD`](https://pytorch.org/docs/stable/generated/torch.optim.SGD.html)
    """

    def __init__(
        self,
        learning_rate=0.01,
        momentum=0.9,
        weight_decay=0.0,
        name="coupled_sgd",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        if isinstance(momentum, bool) or not 0.0 <= float(momentum) < 1.0:
            raise ValueError(f"`momentum` must be in [0, 1). Received: {momentum!r}")
        if isinstance(weight_decay, bool) or not 0.0 <= float(weight_decay) < float("inf"):
            raise ValueError(
                f"`weight_decay` must be a finite number >= 0. Received: {weight_decay!r}"
            )
        self.momentum = float(momentum)
        # Not the base class's `weight_decay`, which it would apply decoupled.
        self.coupled_weight_decay = float(weight_decay)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momentum_buffers = (
            self.add_optimizer_variables(variables, "momentum_buffer")
            if self.momentum
            else []
        )

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self.coupled_weight_decay:
            decay = ops.cast(self.coupled_weight_decay, variable.dtype)
            gradient = ops.add(gradient, ops.multiply(decay, variable))
        if self.momentum:
            buffer = self.momentum_buffers[self._get_variable_index(variable)]
            momentum = ops.cast(self.momentum, variable.dtype)
            self.assign(buffer, ops.add(ops.multiply(momentum, buffer), gradient))
            gradient = buffer
        self.assign_sub(variable, ops.multiply(learning_rate, gradient))

    def get_config(self):
        config = super().get_config()
        config.update(
            {"momentum": self.momentum, "weight_decay": self.coupled_weight_decay}
        )
        return config
