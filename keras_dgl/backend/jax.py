"""JAX backend: gradients with `jax.value_and_grad` over the variables' values."""

import jax
import keras


def value_and_gradients(loss_fn, variables):
    def loss_of(values):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return loss_fn()

    return jax.value_and_grad(loss_of)([v.value for v in variables])
