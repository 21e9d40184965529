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
