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


def _gradients(loss, tensors, retain_graph=False):
    if not loss.requires_grad:  # a term that no variable reaches
        return [None] * len(tensors)
    # autograd.grad instead of backward(): nothing accumulates in `.grad`.
    grads = torch.autograd.grad(
        loss, tensors, retain_graph=retain_graph, allow_unused=True
    )
    return list(grads)


def method_train_step(model, plan, data):
    """The training step of `keras_dgl.backend.method_train_step`."""
    from keras_dgl.backend import apply_gradients

    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    total, predictions = None, []
    for substep in plan.substeps(model):
        y_pred, extras = plan.step_forward(model, x, substep)
        # Read after the forward pass, which builds an unbuilt model.
        variables = model.trainable_variables
        terms = plan.step_losses(model, x, y, y_pred, extras, sample_weight, substep)
        loss = sum(terms.values())
        tensors = [v.value for v in variables]
        if plan.per_term_gradients:
            gradients = {
                k: _gradients(model.optimizer.scale_loss(t), tensors, True)
                for k, t in terms.items()
            }
        else:
            gradients = _gradients(model.optimizer.scale_loss(loss), tensors)
        with torch.no_grad():
            gradients = plan.transform_gradients(
                model, gradients, y, y_pred, extras, substep
            )
            apply_gradients(model.optimizer, gradients, variables)
        loss = loss.detach()
        total = loss if total is None else total + loss
        predictions.append(y_pred)
    batch_size = keras.tree.flatten(x)[0].shape[0]
    model._loss_tracker.update_state(total, sample_weight=batch_size)
    y_pred = plan.merge_predictions(model, predictions)
    return model.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
