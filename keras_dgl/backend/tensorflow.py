"""TensorFlow backend: gradients with a GradientTape."""

import tensorflow as tf


def value_and_gradients(loss_fn, variables):
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch([v.value for v in variables])
        loss = loss_fn()
    return loss, tape.gradient(loss, [v.value for v in variables])
