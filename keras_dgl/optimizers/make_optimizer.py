"""The optimizer behind each name of `keras_dgl.registry.OPTIMIZERS`."""

import keras

from keras_dgl import registry
from keras_dgl.optimizers.coupled_sgd import CoupledSGD

# The momentum every "sgd" of keras_dgl uses (the DGL authors' recipe).
SGD_MOMENTUM = 0.9


def make_optimizer(name, learning_rate, weight_decay=None, global_clipnorm=None):
    """A new optimizer from its registry name.

    `"sgd"` is SGD with momentum 0.9. With a `weight_decay` it is
    `keras_dgl.optimizers.CoupledSGD` (PyTorch's rule: the decay is added to
    the clipped gradient before the momentum); without one it is
    `keras.optimizers.SGD`, which for a constant learning rate takes the same
    steps. `"adam"` is `keras.optimizers.Adam`.

    Args:
        name: str. A key of `keras_dgl.registry.OPTIMIZERS`.
        learning_rate: float or a learning-rate schedule.
        weight_decay: float or `None`. Coupled weight decay (`"sgd"` only).
            Defaults to `None`.
        global_clipnorm: float or `None`. Clip the norm of all gradients
            together at this value before the update. Defaults to `None`.

    Returns:
        A new `keras.optimizers.Optimizer`.

    Example:

    ```python
    optimizer = keras_dgl.optimizers.make_optimizer(
        "sgd", 2e-3, weight_decay=1e-4, global_clipnorm=40.0
    )
    ```
    """
    if name not in registry.OPTIMIZERS:
        raise ValueError(
            f"Unknown optimizer {name!r}. Expected one of {tuple(registry.OPTIMIZERS)}."
        )
    clipping = {} if global_clipnorm is None else {"global_clipnorm": global_clipnorm}
    if name == "adam":
        if weight_decay:
            raise ValueError("`weight_decay` is supported with 'sgd' only.")
        return keras.optimizers.Adam(learning_rate, **clipping)
    if weight_decay:
        return CoupledSGD(
            learning_rate, momentum=SGD_MOMENTUM, weight_decay=weight_decay, **clipping
        )
    return keras.optimizers.SGD(learning_rate, momentum=SGD_MOMENTUM, **clipping)
