"""The few operations that each backend needs its own code for.

Everything else in keras_dgl is written once in `keras.ops`. What differs is
how a gradient is taken outside a training step (for diagnostics and tests):
a GradientTape, `torch.autograd` or `jax.value_and_grad`. Each backend's
module exposes the same functions; `get()` returns the active one.
"""

import importlib

import keras


def get():
    """The module of the active Keras backend (`keras.backend.backend()`)."""
    return importlib.import_module(f"keras_dgl.backend.{keras.backend.backend()}")


def value_and_gradients(loss_fn, variables):
    """Evaluates `loss_fn()` and its gradient w.r.t. each of `variables`.

    Runs eagerly and changes no variable. A variable that the loss does not
    depend on gets a zero gradient.

    Args:
        loss_fn: callable with no arguments returning a scalar tensor; it
            reads the variables through layer calls as usual.
        variables: list of `keras.Variable`.

    Returns:
        `(loss, gradients)` as a float and a list of NumPy arrays.

    Example:

    ```python
    loss, grads = keras_dgl.backend.value_and_gradients(
        lambda: model.compute_loss(x, y, model(x, training=True)),
        model.trainable_variables,
    )
    ```
    """
    loss, grads = get().value_and_gradients(loss_fn, list(variables))
    grads = [
        keras.ops.convert_to_numpy(keras.ops.zeros(v.shape, v.dtype))
        if g is None
        else keras.ops.convert_to_numpy(g)
        for v, g in zip(variables, grads)
    ]
    return float(keras.ops.convert_to_numpy(loss)), grads
