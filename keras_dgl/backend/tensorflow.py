"""TensorFlow backend: gradients with a GradientTape."""

import contextlib

import keras
import tensorflow as tf


def value_and_gradients(loss_fn, variables):
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch([v.value for v in variables])
        loss = loss_fn()
    return loss, tape.gradient(loss, [v.value for v in variables])


def preserved_global_rng():
    # Keras draws every random number from seed generators here.
    return contextlib.nullcontext()


def train_step(model, transform, data):
    """The stock training step with `transform` applied to the gradients."""
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    with tf.GradientTape() as tape:
        y_pred = model(x, training=True)
        loss = model.compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
        )
        batch_size = tf.shape(keras.tree.flatten(x)[0])[0]
        model._loss_tracker.update_state(loss, sample_weight=batch_size)
        loss = model.optimizer.scale_loss(loss)
    variables = model.trainable_variables
    gradients = transform(tape.gradient(loss, variables), y, y_pred)
    # In a tf.function, reads that no gradient depends on (e.g. frozen fusion
    # weights in the unimodal predictions) could otherwise run after the
    # update, handing the transform and the metrics post-update values.
    with tf.control_dependencies(tf.nest.flatten(y_pred)):
        gradients = [None if g is None else tf.identity(g) for g in gradients]
    model.optimizer.apply(gradients, variables)
    return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
