"""TensorFlow backend: gradients with a GradientTape."""

import contextlib

import keras
import tensorflow as tf

# The stock step's update may overtake a consumer of a stop-gradient read.
ORDERED_STEP_NEEDED = True


def value_and_gradients(loss_fn, variables):
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch([v.value for v in variables])
        loss = loss_fn()
    return loss, tape.gradient(loss, [v.value for v in variables])


def state_kept_on_error(model, input_shapes=None):
    # Variables stay attached to the model during a call.
    return contextlib.nullcontext()


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
        # Keras losses divide by the replica count under a tf.distribute
        # strategy; the logged loss is the per-example mean, as in Keras' step.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        model._loss_tracker.update_state(
            loss * tf.cast(replicas, loss.dtype), sample_weight=batch_size
        )
        loss = model.optimizer.scale_loss(loss)
    variables = model.trainable_variables
    gradients = tape.gradient(loss, variables)
    if transform is not None:
        gradients = transform(gradients, y, y_pred)
    # An update waits for the reads of its variable, not for the ops that
    # consume them: without this, the unimodal logits (computed from
    # stop-gradient copies of the fusion weights) could be computed after
    # those weights were updated, in place. See `needs_ordered_step`.
    with tf.control_dependencies(tf.nest.flatten(y_pred) + [loss]):
        gradients = [None if g is None else tf.identity(g) for g in gradients]
    model.optimizer.apply(gradients, variables)
    return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
