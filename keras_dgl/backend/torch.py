"""PyTorch backend: gradients with `torch.autograd.grad`."""

import torch


def value_and_gradients(loss_fn, variables):
    with torch.enable_grad():
        loss = loss_fn()
        tensors = [v.value for v in variables]
        grads = torch.autograd.grad(loss, tensors, allow_unused=True)
    return loss.detach(), list(grads)
