"""PMR: prototypes are the class means of the features; the loss follows the paper."""

import keras
import numpy as np
from dgl_test_utils import random_batch
from method_test_utils import softmax, tiny_model

OPTIONS = {"alpha": 2.0, "momentum": 0.25, "entropy_weight": 0.3, "entropy_epochs": 2}


def _features(model, x):
    return {
        n: keras.ops.convert_to_numpy(model.encoders[n](x[n], training=True))
        for n in model.modality_names
    }


def _prototypes(model):
    return {
        n: keras.ops.convert_to_numpy(getattr(model.method_state, f"prototypes_{n}"))
        for n in model.modality_names
    }


def test_prototypes_are_the_class_means_of_the_features_with_momentum():
    # A zero learning rate keeps the encoders, hence the features, fixed.
    model = tiny_model("pmr", learning_rate=0.0, method_options=OPTIONS)
    x, y = random_batch(batch=48, seed=5)
    features = _features(model, x)
    means = {
        n: np.stack([f[y == k].mean(axis=0) for k in range(3)])
        for n, f in features.items()
    }
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    for name, prototypes in _prototypes(model).items():
        np.testing.assert_allclose(prototypes, means[name], rtol=1e-5, atol=1e-6)
    # Later epochs blend the new means into the previous prototypes.
    previous = {n: p + 1.0 for n, p in _prototypes(model).items()}
    for name, value in previous.items():
        getattr(model.method_state, f"prototypes_{name}").assign(value)
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    momentum = OPTIONS["momentum"]
    for name, prototypes in _prototypes(model).items():
        np.testing.assert_allclose(
            prototypes, (1 - momentum) * means[name] + momentum * previous[name],
            rtol=1e-5, atol=1e-6,
        )
    assert float(keras.ops.convert_to_numpy(model.method_state.epochs)) == 2


def _numpy_objective(model, x, y, early):
    def ce(logits):
        return float(np.mean(-np.log(softmax(logits)[np.arange(len(y)), y])))

    outputs = model(x, training=True)
    fused = keras.ops.convert_to_numpy(outputs["fused"])
    features, prototypes = _features(model, x), _prototypes(model)
    logits = {
        n: -np.linalg.norm(features[n][:, None, :] - prototypes[n][None], axis=-1)
        for n in features
    }
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(outputs["prototype"]["audio"]), logits["audio"],
        rtol=1e-5,
    )
    scores = {n: softmax(v)[np.arange(len(y)), y].sum() for n, v in logits.items()}
    slow = min(scores, key=scores.get)
    dominant = max(scores, key=scores.get)
    p = softmax(logits[dominant])
    entropy = float(np.mean(-(p * np.log(p)).sum(axis=-1)))
    total = ce(fused) + OPTIONS["alpha"] * ce(logits[slow])
    if early:
        total -= OPTIONS["entropy_weight"] * entropy
    return total


def test_slow_modality_gets_the_prototype_loss_and_the_dominant_one_the_entropy():
    model = tiny_model("pmr", method_options=OPTIONS)
    x, y = random_batch(batch=32, seed=6)
    rng = np.random.default_rng(0)
    for name, prototypes in _prototypes(model).items():
        getattr(model.method_state, f"prototypes_{name}").assign(
            rng.normal(size=prototypes.shape).astype("float32")
        )
    state = model.method_state

    def loss():
        return float(keras.ops.convert_to_numpy(
            model.compute_loss(x, y, model(x, training=True))
        ))

    # Before the first prototypes exist only the multimodal loss counts.
    fused = keras.ops.convert_to_numpy(model(x, training=True)["fused"])
    plain = float(np.mean(-np.log(softmax(fused)[np.arange(len(y)), y])))
    np.testing.assert_allclose(loss(), plain, rtol=1e-5)
    state.ready.assign(1.0)
    np.testing.assert_allclose(loss(), _numpy_objective(model, x, y, True), rtol=1e-5)
    state.epochs.assign(2.0)  # past the early stage: no entropy term
    np.testing.assert_allclose(loss(), _numpy_objective(model, x, y, False), rtol=1e-5)
