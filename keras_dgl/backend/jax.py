"""JAX backend: gradients with `jax.value_and_grad` over the variables' values."""

import contextlib

import jax
import keras


# Functional: every read in a step sees the values the step started from.
ORDERED_STEP_NEEDED = False


def value_and_gradients(loss_fn, variables):
    def loss_of(values):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return loss_fn()

    return jax.value_and_grad(loss_of)([v.value for v in variables])


def preserved_global_rng():
    # Keras draws every random number from seed generators here.
    return contextlib.nullcontext()


@contextlib.contextmanager
def state_kept_on_error(model, input_shapes=None):
    """Puts back the variable values a failed `fit`/`evaluate`/`predict` freed."""
    if not model.built and input_shapes is not None:
        model.build(input_shapes)
    optimizer = getattr(model, "optimizer", None)
    if model.built and optimizer is not None and not optimizer.built:
        # Otherwise the call would create, then lose, its slot variables.
        optimizer.build(model.trainable_variables)
    kept = [(v, v._value) for v in _state_variables(model) if v._value is not None]
    try:
        yield
    except BaseException:
        # A step that ran left its results in `_jax_state`; sync them first.
        model.jax_state_sync()
        for variable, value in kept:
            # `_value` is None once the trainer has detached it; a donated
            # (deleted) array means a later step's state was reattached.
            if variable._value is None and not _deleted(value):
                variable.assign(value)
        for metric in model.metrics:
            if any(v._value is None for v in metric.variables):
                metric.reset_state()
        model._jax_state = None
        raise


def _deleted(value):
    return bool(getattr(value, "is_deleted", lambda: False)())


def _state_variables(model):
    optimizer = getattr(model, "optimizer", None)
    variables = list(model.variables) + list(model.metrics_variables)
    if optimizer is not None:
        variables += list(optimizer.variables)
    unique = {id(v): v for v in variables}
    return list(unique.values())


def train_step(model, transform, state, data):
    """The stock (stateless) training step with `transform` applied to the gradients."""
    trainable, non_trainable, optimizer_values, metrics_values = state
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    grad_fn = jax.value_and_grad(model.compute_loss_and_updates, has_aux=True)
    (_, aux), gradients = grad_fn(
        trainable,
        non_trainable,
        metrics_values,
        x,
        y,
        sample_weight,
        training=True,
        optimizer_variables=optimizer_values,
    )
    unscaled_loss, y_pred, non_trainable, metrics_values = aux
    # The transform may draw random numbers: run it over the model's current
    # non-trainable state (seed generators included) and keep the new state.
    variables = model.non_trainable_variables
    mapping = list(zip(variables, non_trainable))
    with keras.StatelessScope(state_mapping=mapping) as scope:
        if transform is not None:
            gradients = transform(gradients, y, y_pred)
    non_trainable = [scope.get_current_value(v) for v in variables]
    trainable, optimizer_values = model.optimizer.stateless_apply(
        optimizer_values, gradients, trainable
    )
    logs, metrics_values = model._update_metrics_variables(
        metrics_values, unscaled_loss, x, y, y_pred, sample_weight
    )
    return logs, (trainable, non_trainable, optimizer_values, metrics_values)
