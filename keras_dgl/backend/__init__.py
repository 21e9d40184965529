"""The few operations that each backend needs its own code for.

Everything else in keras_dgl is written once in `keras.ops`. What differs is
how a gradient is taken outside a training step (for diagnostics and tests):
a GradientTape, `torch.autograd` or `jax.value_and_grad`; and a training step
whose gradients a method edits before the optimizer sees them (per-term
gradients, gradient surgery, alternating updates). What a step does is
written once, in `keras.ops`, by the step plan (`method_train_step`). Each
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


def state_kept_on_error(model, input_shapes=None):
    """Context manager that keeps a model's variables if a Keras call fails.

    On JAX, `fit`, `evaluate` and `predict` detach every variable's value
    from the model for the duration of the call and reattach it at the end;
    if the call fails in its first step (a bad batch from a generator, an
    error in a custom layer), the values are lost and the model is left
    unusable. On JAX this keeps a reference to every value when the block is
    entered (building the model from `input_shapes` and its optimizer first,
    so that no variable is created inside the call) and puts back any value
    that is missing when the block raises. TensorFlow and PyTorch variables
    stay attached, so there it does nothing.

    Args:
        model: a `keras.Model`.
        input_shapes: `None` or the input shapes to build an unbuilt model
            from (JAX only).

    Example:

    ```python
    with keras_dgl.backend.state_kept_on_error(model):
        model.fit(generator, epochs=2)
    ```
    """
    return get().state_kept_on_error(model, input_shapes)


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
    about one of ten fresh processes). A method's extras are the same case
    (AGM's Shapley responses read the fusion weights without gradient).
    `train_step` below orders the update after the whole forward pass, the
    loss and the extras. JAX is functional and PyTorch eager, so
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
    may be `None`: such a variable is left unchanged) and may draw from a
    `keras.random.SeedGenerator` owned by the model.

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
    return get().method_train_step(model, _TransformPlan(transform), *args)


def method_train_step(model, plan, *args):
    """One training step driven by a step plan, on the active backend.

    The plan (a `keras_dgl.models.methods.Method`, or any object with these
    methods, all written in `keras.ops`) says what one step does; the
    backend only takes the gradients and applies them. For each `substep`
    in `plan.substeps(model)` (a tuple of Python values, fixed for a traced
    step), in order:

    1. `y_pred, extras = plan.step_forward(model, x, substep)`: the forward
       pass in training mode; `extras` is `None` or a dict of tensors the
       later calls need.
    2. `terms = plan.step_losses(model, x, y, y_pred, extras,
       sample_weight, substep)`: a dict of scalar losses.
    3. The gradients of the terms w.r.t. `model.trainable_variables`: of
       their sum as one list, or, when `plan.per_term_gradients` is true,
       a dict with one list per term (`None` or zeros for a variable a
       term does not reach, depending on the backend).
    4. `gradients = plan.transform_gradients(model, gradients, y, y_pred,
       extras, substep)`: a list aligned with `model.trainable_variables`;
       `None` leaves that variable (and its optimizer state) untouched.
       It may read and assign the model's non-trainable variables.
    5. `model.optimizer` applies the non-`None` gradients, so the next
       substep sees the updated weights.

    The logged `loss` is the sum of all terms of all substeps; the metrics
    are computed on `plan.merge_predictions(model, [y_pred, ...])`. Losses
    are scaled with `model.optimizer.scale_loss` (mixed precision) before
    differentiation, so the gradients `transform_gradients` gets are scaled
    the same way.

    Args:
        model: the compiled `keras.Model` being trained.
        plan: the step plan.
        *args: the arguments of the backend's `train_step`: `(data,)` on
            TensorFlow and PyTorch, `(state, data)` on JAX.

    Returns:
        What the backend's `train_step` returns: the logs, and on JAX the
        new state as well.

    Example:

    ```python
    class MyModel(keras_dgl.DGLModel):
        def train_step(self, *args):
            return keras_dgl.backend.method_train_step(self, self._method, *args)
    ```
    """
    return get().method_train_step(model, plan, *args)


def apply_gradients(optimizer, gradients, variables):
    """Applies the non-`None` gradients; variables with `None` are not touched.

    Unlike `optimizer.apply` with `None` entries, this warns about nothing
    and leaves a skipped variable's optimizer state (momentum, moments) as
    it was, so a frozen variable does not keep moving on its momentum.
    """
    if not optimizer.built:
        # Built on every variable, not on the first update's subset.
        optimizer.build(list(variables))
    pairs = [(g, v) for g, v in zip(gradients, variables) if g is not None]
    if pairs:
        optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])


class _TransformPlan:
    """The step of `train_step`: the model's own forward pass and loss."""

    per_term_gradients = False

    def __init__(self, transform):
        self._transform = transform

    def substeps(self, model):
        return (None,)

    def step_forward(self, model, x, substep):
        return model(x, training=True), None

    def step_losses(self, model, x, y, y_pred, extras, sample_weight, substep):
        loss = model.compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
        )
        return {"loss": loss}

    def transform_gradients(self, model, gradients, y, y_pred, extras, substep):
        if self._transform is None:
            return gradients
        return self._transform(list(gradients), y, y_pred)

    def merge_predictions(self, model, predictions):
        return predictions[-1]
