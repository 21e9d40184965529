"""keras_dgl.optimizers: the published recipe's SGD takes PyTorch's steps.

torch is installed in every test environment (see tox.ini), so the steps of
`torch.optim.SGD` after `torch.nn.utils.clip_grad_norm_` are the reference
on every Keras backend.
"""

import keras
import numpy as np
import pytest
import torch

from keras_dgl.experiments.presets import PUBLISHED_RECIPE
from keras_dgl.optimizers import CoupledSGD
from keras_dgl.optimizers import make_optimizer

SHAPES = [(3, 4), (4,), (2, 2, 3)]


def _gradients(steps, seed=0):
    rng = np.random.default_rng(seed)
    # Norms around 60-100 over all variables: above the recipe's clip at 40.
    return [
        [rng.normal(scale=20.0, size=s).astype("float32") for s in SHAPES]
        for _ in range(steps)
    ]


def _torch_steps(initial, gradients, learning_rates, recipe):
    params = [torch.nn.Parameter(torch.tensor(w)) for w in initial]
    optimizer = torch.optim.SGD(
        params,
        lr=learning_rates[0],
        momentum=0.9,
        weight_decay=recipe["weight_decay"],
    )
    for step, grads in enumerate(gradients):
        for group in optimizer.param_groups:
            group["lr"] = learning_rates[step]
        for p, g in zip(params, grads):
            p.grad = torch.tensor(g)
        torch.nn.utils.clip_grad_norm_(params, recipe["global_clipnorm"])
        optimizer.step()
    return [p.detach().numpy() for p in params]


def _keras_steps(initial, gradients, learning_rates, recipe):
    variables = [keras.Variable(w) for w in initial]
    optimizer = make_optimizer(
        recipe["optimizer"],
        learning_rates[0],
        weight_decay=recipe["weight_decay"],
        global_clipnorm=recipe["global_clipnorm"],
    )
    for step, grads in enumerate(gradients):
        optimizer.learning_rate.assign(learning_rates[step])
        optimizer.apply_gradients(
            [(keras.ops.convert_to_tensor(g), v) for g, v in zip(grads, variables)]
        )
    return [keras.ops.convert_to_numpy(v) for v in variables]


@pytest.mark.parametrize("steps", [1, 6])
def test_published_recipe_step_equals_torch_sgd_after_clip_grad_norm(steps):
    recipe = PUBLISHED_RECIPE
    rng = np.random.default_rng(1)
    initial = [rng.normal(size=s).astype("float32") for s in SHAPES]
    gradients = _gradients(steps)
    # The recipe's x0.1 drop, here after step 3 (only in the longer run).
    rate = recipe["learning_rate"]
    learning_rates = [rate if s < 3 else rate * recipe["lr_drop_factor"]
                      for s in range(steps)]
    expected = _torch_steps(initial, gradients, learning_rates, recipe)
    got = _keras_steps(initial, gradients, learning_rates, recipe)
    for e, g, w in zip(expected, got, initial):
        assert not np.allclose(e, w)  # the step moved the weights
        np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-7)


def test_the_recipe_is_the_published_one():
    assert {k: PUBLISHED_RECIPE[k] for k in (
        "epochs", "batch_size", "optimizer", "learning_rate", "weight_decay",
        "global_clipnorm", "lr_drop_fraction", "lr_drop_factor")} == {
        "epochs": 100, "batch_size": 64, "optimizer": "sgd", "learning_rate": 2e-3,
        "weight_decay": 1e-4, "global_clipnorm": 40.0, "lr_drop_fraction": 0.7,
        "lr_drop_factor": 0.1}
    optimizer = make_optimizer("sgd", 2e-3, weight_decay=1e-4, global_clipnorm=40.0)
    assert isinstance(optimizer, CoupledSGD)
    assert optimizer.momentum == 0.9 and optimizer.global_clipnorm == 40.0
    assert optimizer.weight_decay is None  # no decoupled decay on top


def test_config_round_trip_and_bad_arguments():
    optimizer = CoupledSGD(learning_rate=0.1, momentum=0.5, weight_decay=0.01)
    again = CoupledSGD.from_config(optimizer.get_config())
    assert (again.momentum, again.coupled_weight_decay) == (0.5, 0.01)
    assert keras.optimizers.deserialize(
        keras.optimizers.serialize(optimizer)).coupled_weight_decay == 0.01
    with pytest.raises(ValueError, match="momentum"):
        CoupledSGD(momentum=1.0)
    with pytest.raises(ValueError, match="weight_decay"):
        CoupledSGD(weight_decay=float("nan"))
    with pytest.raises(ValueError, match="Unknown optimizer"):
        make_optimizer("adagrad", 0.1)
