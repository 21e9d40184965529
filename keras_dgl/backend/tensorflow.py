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


def method_train_step(model, plan, data):
    """The training step of `keras_dgl.backend.method_train_step`."""
    from keras_dgl.backend import apply_gradients

    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    total, predictions = None, []
    for substep in plan.substeps(model):
        with tf.GradientTape(persistent=plan.per_term_gradients) as tape:
            y_pred, extras = plan.step_forward(model, x, substep)
            # Read after the forward pass, which builds an unbuilt model.
            variables = model.trainable_variables
            terms = plan.step_losses(
                model, x, y, y_pred, extras, sample_weight, substep
            )
            loss = tf.add_n(list(terms.values()))
            if plan.per_term_gradients:
                scaled = {k: model.optimizer.scale_loss(t) for k, t in terms.items()}
            else:
                scaled = model.optimizer.scale_loss(loss)
        if plan.per_term_gradients:
            gradients = {k: tape.gradient(t, variables) for k, t in scaled.items()}
            del tape
        else:
            gradients = tape.gradient(scaled, variables)
        gradients = plan.transform_gradients(
            model, gradients, y, y_pred, extras, substep
        )
        # An update waits for the reads of its variable, not for the ops that
        # consume them: without this, the unimodal logits (computed from
        # stop-gradient copies of the fusion weights) could be computed after
        # those weights were updated, in place. See `needs_ordered_step`.
        # The same holds for a method's extras: AGM's Shapley responses read
        # the fusion weights without gradient, so without them here a fusion
        # update could overtake them (AGM's coefficient test failed in about
        # one process of four).
        done = tf.nest.flatten(y_pred) + [loss] + [
            t for t in tf.nest.flatten(extras) if tf.is_tensor(t)
        ]
        with tf.control_dependencies(done):
            gradients = [None if g is None else tf.identity(g) for g in gradients]
        apply_gradients(model.optimizer, gradients, variables)
        total = loss if total is None else total + loss
        predictions.append(y_pred)
    batch_size = tf.shape(keras.tree.flatten(x)[0])[0]
    # Keras losses divide by the replica count under a tf.distribute
    # strategy; the logged loss is the per-example mean, as in Keras' step.
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    model._loss_tracker.update_state(
        total * tf.cast(replicas, total.dtype), sample_weight=batch_size
    )
    y_pred = plan.merge_predictions(model, predictions)
    return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
