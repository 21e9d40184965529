"""The few operations that each backend needs its own code for.

Everything else in keras_dgl is written once in `keras.ops`. What differs is
how a gradient is taken outside a training step (for diagnostics and tests):
a GradientTape, `torch.autograd` or `jax.value_and_grad`; and a training step
that edits the gradients before the optimizer sees them (OGM-GE). Each
backend's module exposes the same functions; `get()` returns the active one.
"""

import contextlib
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


def preserved_global_rng():
    """Context manager that restores the backend's global random state on exit.

    Keras draws random numbers from `keras.random.SeedGenerator`s, whose
    updates a `keras.StatelessScope` can discard; PyTorch's unseeded dropout
    draws from torch's global generator instead, which this restores. Use it
    around a computation that must not change the course of training.

    Example:

    ```python
    with keras_dgl.backend.preserved_global_rng():
        model(x, training=True)
    ```
    """
    return get().preserved_global_rng()


def no_grad():
    """Context manager for eager inference: record no autograd graph.

    On the torch backend an eager layer call otherwise records the graph of
    every batch it sees (memory, time); the other backends record nothing
    outside a gradient tape or transformation.

    Example:

    ```python
    with keras_dgl.backend.no_grad():
        features = encoder(x, training=False)
    ```
    """
    if keras.backend.backend() == "torch":
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


def global_rng_state():
    """The backend's global random state that training draws from, or `None`.

    Keras layers draw from their own `keras.random.SeedGenerator`s, which are
    model variables; but on the torch backend an unseeded `Dropout` draws
    from torch's global generator. Saving this state with a checkpoint (and
    `set_global_rng_state` on resume) makes a resumed run draw the same
    masks as an uninterrupted one.

    Returns:
        A uint8 NumPy array (torch), or `None` (TensorFlow, JAX: nothing to
        save).

    Example:

    ```python
    state = keras_dgl.backend.global_rng_state()
    ...
    keras_dgl.backend.set_global_rng_state(state)
    ```
    """
    if keras.backend.backend() == "torch":
        import torch

        return torch.get_rng_state().numpy()
    return None


def set_global_rng_state(state):
    """Restores a state returned by `global_rng_state` (`None`: nothing to do)."""
    if state is not None and keras.backend.backend() == "torch":
        import torch

        torch.set_rng_state(torch.from_numpy(state.copy()))


def needs_ordered_step():
    """Whether the active backend's stock `train_step` may misorder DGL's reads.

    DGL reads the fusion weights twice in one step: live on the fused path
    and as stop-gradient copies on the unimodal path. In a TensorFlow graph
    the update of a weight waits for its `ReadVariableOp`s but not for the
    ops that consume what they read, and the consumers of the stop-gradient
    copy are not ancestors of that weight's gradient, so the unimodal
    logits could be computed from the already-updated weight (seen in
    about one of ten fresh processes). `train_step` below orders the update
    after the whole forward pass. JAX is functional and PyTorch eager, so
    their stock steps read every weight before updating it.

    Returns:
        bool.

    Example:

    ```python
    if keras_dgl.backend.needs_ordered_step():
        logs = keras_dgl.backend.train_step(model, None, data)
    ```
    """
    return get().ORDERED_STEP_NEEDED


def train_step(model, transform, *args):
    """One training step whose gradients pass through `transform` first.

    Does what Keras' stock `train_step` does on the active backend (forward
    pass, `model.compute_loss`, loss tracking, `model.compute_metrics`), but
    hands the gradients to `transform(gradients, y, y_pred)` before
    `model.optimizer` applies them. `transform` is written in `keras.ops`; it
    gets and returns a list aligned with `model.trainable_variables` (entries
    may be `None`) and may draw from a `keras.random.SeedGenerator` owned by
    the model.

    Args:
        model: the compiled `keras.Model` being trained.
        transform: callable `(gradients, y, y_pred) -> gradients`, or `None`
            to apply the gradients unchanged.
        *args: the arguments of the backend's `train_step`: `(data,)` on
            TensorFlow and PyTorch, `(state, data)` on JAX.

    Returns:
        What the backend's `train_step` returns: the logs, and on JAX the
        new state as well.

    Example:

    ```python
    def clip(gradients, y, y_pred):
        return [g if g is None else keras.ops.clip(g, -1, 1) for g in gradients]

    class ClippedModel(keras.Model):
        def train_step(self, *args):
            return keras_dgl.backend.train_step(self, clip, *args)
    ```
    """
    return get().train_step(model, transform, *args)
