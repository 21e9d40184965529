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
