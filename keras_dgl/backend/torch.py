"""PyTorch backend: gradients with `torch.autograd.grad`."""

import contextlib

import keras
import torch


# Eager: every read happens before the optimizer runs.
ORDERED_STEP_NEEDED = False


def value_and_gradients(loss_fn, variables):
    with torch.enable_grad():
        loss = loss_fn()
        tensors = [v.value for v in variables]
        grads = torch.autograd.grad(loss, tensors, allow_unused=True)
    return loss.detach(), list(grads)


def state_kept_on_error(model, input_shapes=None):
    # Variables stay attached to the model during a call.
    return contextlib.nullcontext()


def preserved_global_rng():
    # Unseeded dropout on this backend draws from torch's global generator.
    return torch.random.fork_rng()


def train_step(model, transform, data):
    """The stock training step with `transform` applied to the gradients."""
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    y_pred = model(x, training=True)
    loss = model.compute_loss(
        x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True
    )
    batch_size = keras.tree.flatten(x)[0].shape[0]
    model._loss_tracker.update_state(loss, sample_weight=batch_size)
    loss = model.optimizer.scale_loss(loss)
    variables = model.trainable_variables
    # autograd.grad instead of backward(): nothing accumulates in `.grad`.
    gradients = torch.autograd.grad(
        loss, [v.value for v in variables], allow_unused=True
    )
    with torch.no_grad():
        if transform is not None:
            gradients = transform(list(gradients), y, y_pred)
        model.optimizer.apply(gradients, variables)
    return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
