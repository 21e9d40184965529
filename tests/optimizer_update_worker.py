"""Run in a fresh process: checks DGLModel's optimizer updates step by step.

For each small model it takes several plain-SGD steps with `train_on_batch`
and, before every step, computes the update each variable must receive from
the separate loss terms (no stop-gradient anywhere): `-lr * gradient`, where
the gradient is the one the method prescribes for that variable. It prints
one line, `WORST <relative error>`, the largest mismatch over every variable
and step. Each step is one compiled call, so this checks what the backend's
training step does, graph ordering included.

Usage: `python optimizer_update_worker.py NUM_SEEDS [TASKS]`, with TASKS a
comma list of `classification` (the default), `multilabel`, `regression`.
"""

import sys

import keras
import numpy as np

import keras_dgl
from keras_dgl import backend as dgl_backend

LEARNING_RATE = 0.1
STEPS = 3
FUSIONS = {"concat": "ConcatFusion", "sum": "SumFusion"}


def _cross_entropy(y, logits):
    return keras.ops.mean(
        keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    )


def _binary_cross_entropy(y, logits):
    return keras.ops.mean(keras.losses.binary_crossentropy(y, logits, from_logits=True))


def _squared_error(y, outputs):
    # keras.ops.subtract: torch refuses `tensor - ndarray` for a tensor that
    # requires grad.
    return keras.ops.mean(keras.ops.square(keras.ops.subtract(outputs, y)))


# Per task: the compiled loss, the same loss written out, and labels.
TASKS = {
    "classification": (
        None,
        _cross_entropy,
        lambda rng: rng.integers(0, 3, size=8),
    ),
    "multilabel": (
        "binary_crossentropy",
        _binary_cross_entropy,
        lambda rng: (rng.random((8, 3)) < 0.4).astype("float32"),
    ),
    "regression": (
        "mse",
        _squared_error,
        lambda rng: rng.normal(size=(8, 3)).astype("float32"),
    ),
}


def _expected_gradients(model, x, y, method, alpha, loss):
    """The gradient each variable must get, from the terms taken separately."""
    names = model.modality_names
    encoder_vars = [v for n in names for v in model.encoders[n].trainable_variables]
    owners = [n for n in names for _ in model.encoders[n].trainable_variables]
    fusion_vars = list(model.fusion.trainable_variables)
    variables = encoder_vars + fusion_vars

    def features():
        return {n: model.encoders[n](x[n], training=True) for n in names}

    def grads(loss_fn):
        return dgl_backend.value_and_gradients(loss_fn, variables)[1]

    multimodal = grads(lambda: loss(y, model.fusion(features())))
    unimodal = {
        n: grads(
            lambda n=n: loss(y, model.fusion(features(), unimodal=True)[n])
        )
        for n in names
    }
    expected = []
    for index in range(len(variables)):
        owner = owners[index] if index < len(encoder_vars) else None
        if method == "joint":
            expected.append(multimodal[index])
        elif method == "dgl":
            # Encoders: their own unimodal term only; fusion: multimodal only.
            expected.append(
                alpha * unimodal[owner][index] if owner else multimodal[index]
            )
        else:  # joint_aux: every term reaches every parameter.
            expected.append(
                multimodal[index] + alpha * sum(unimodal[n][index] for n in names)
            )
    return variables, expected


def check(method, alpha, fusion, seed, task="classification"):
    compiled, loss, make_labels = TASKS[task]
    keras.utils.set_random_seed(seed)
    encoders = {
        "a": keras.layers.Dense(4, activation="tanh"),
        "b": keras.layers.Dense(4, activation="tanh"),
    }
    layer = getattr(keras_dgl.layers, FUSIONS[fusion])(num_classes=3)
    model = keras_dgl.DGLModel(encoders, layer, alpha=alpha, method=method)
    rng = np.random.default_rng(seed)
    x = {
        "a": rng.normal(size=(8, 5)).astype("float32"),
        "b": rng.normal(size=(8, 6)).astype("float32"),
    }
    y = make_labels(rng)
    model.build({"a": (None, 5), "b": (None, 6)})
    model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE), loss=compiled)
    worst = 0.0
    for _ in range(STEPS):
        variables, expected = _expected_gradients(model, x, y, method, alpha, loss)
        before = [np.array(keras.ops.convert_to_numpy(v.value)) for v in variables]
        model.train_on_batch(x, y)
        for variable, start, gradient in zip(variables, before, expected):
            update = np.array(keras.ops.convert_to_numpy(variable.value)) - start
            target = -LEARNING_RATE * gradient
            scale = np.abs(target).max() + 1e-12
            worst = max(worst, float(np.abs(update - target).max() / scale))
    return worst


def main(num_seeds, tasks=("classification",)):
    worst = max(
        check(method, alpha, fusion, seed, task)
        for task in tasks
        for seed in range(num_seeds)
        for method in ("dgl", "joint", "joint_aux")
        for alpha in (1.0, 3.0)
        for fusion in FUSIONS
    )
    print(f"WORST {worst:.3e}")


if __name__ == "__main__":
    main(int(sys.argv[1]), *([sys.argv[2].split(",")] if len(sys.argv) > 2 else []))
