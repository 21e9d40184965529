"""JAX backend: gradients with `jax.value_and_grad` over the variables' values."""

import contextlib

import jax
import jax.numpy as jnp
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


def method_train_step(model, plan, state, data):
    """The (stateless) training step of `keras_dgl.backend.method_train_step`."""
    trainable, non_trainable, optimizer_values, metrics_values = state
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    variables = model.trainable_variables
    state_variables = model.non_trainable_variables
    optimizer = model.optimizer
    total, predictions = None, []
    for substep in plan.substeps(model):

        def scaled_terms(values, non_trainable=non_trainable, substep=substep):
            mapping = list(zip(variables, values))
            mapping += list(zip(state_variables, non_trainable))
            with keras.StatelessScope(
                state_mapping=mapping, collect_losses=True
            ) as scope:
                y_pred, extras = plan.step_forward(model, x, substep)
                terms = plan.step_losses(
                    model, x, y, y_pred, extras, sample_weight, substep
                )
            updated = [scope.get_current_value(v) for v in state_variables]
            # Loss scaling may read the optimizer's dynamic scale variable.
            with keras.StatelessScope(
                state_mapping=list(zip(optimizer.variables, optimizer_values))
            ):
                scaled = {k: optimizer.scale_loss(t) for k, t in terms.items()}
            return scaled, (terms, y_pred, extras, updated)

        if plan.per_term_gradients:
            scaled, pullback, aux = jax.vjp(scaled_terms, trainable, has_aux=True)
            gradients = {}
            for name in scaled:
                cotangent = {
                    k: jnp.ones_like(t) if k == name else jnp.zeros_like(t)
                    for k, t in scaled.items()
                }
                gradients[name] = list(pullback(cotangent)[0])
        else:

            def scaled_total(values):
                scaled, aux = scaled_terms(values)
                return sum(scaled.values()), aux

            grad_fn = jax.value_and_grad(scaled_total, has_aux=True)
            (_, aux), gradients = grad_fn(trainable)
            gradients = list(gradients)
        terms, y_pred, extras, non_trainable = aux
        # The plan may read the current weights and read or assign the
        # model's state (seed generators, method state): run it over them
        # and keep the new state.
        mapping = list(zip(variables, trainable))
        mapping += list(zip(state_variables, non_trainable))
        with keras.StatelessScope(state_mapping=mapping) as scope:
            gradients = plan.transform_gradients(
                model, gradients, y, y_pred, extras, substep
            )
        non_trainable = [scope.get_current_value(v) for v in state_variables]
        trainable, optimizer_values = _stateless_apply(
            model, optimizer_values, gradients, trainable
        )
        loss = sum(terms.values())
        total = loss if total is None else total + loss
        predictions.append(y_pred)
    y_pred = plan.merge_predictions(model, predictions)
    logs, metrics_values = model._update_metrics_variables(
        metrics_values, total, x, y, y_pred, sample_weight
    )
    return logs, (trainable, non_trainable, optimizer_values, metrics_values)


def _stateless_apply(model, optimizer_values, gradients, trainable):
    """`optimizer.stateless_apply` that leaves variables with `None` untouched."""
    from keras_dgl.backend import apply_gradients

    variables = model.trainable_variables
    optimizer = model.optimizer
    mapping = list(zip(variables, trainable))
    mapping += list(zip(optimizer.variables, optimizer_values))
    with keras.StatelessScope(state_mapping=mapping) as scope:
        apply_gradients(optimizer, gradients, variables)
    trainable = [scope.get_current_value(v) for v in variables]
    optimizer_values = [scope.get_current_value(v) for v in optimizer.variables]
    return trainable, optimizer_values
