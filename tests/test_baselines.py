"""Baseline methods: OGM / OGM-GE gradient modulation and Gradient-Blending."""

import keras
import numpy as np
import pytest
from dgl_test_utils import imbalanced_task, make_encoder, make_fusion, random_batch

import keras_dgl
from keras_dgl import backend as dgl_backend
from keras_dgl.models.gradient_modulation import ogm_coefficients

DIMS = {"audio": 32, "visual": 4}


def _model(method, fusion="concat", units=6, dims=DIMS, learning_rate=1.0, **kwargs):
    """A built model whose plain-SGD update is exactly -learning_rate * gradient."""
    encoders = {
        name: make_encoder(units, name=f"{name}_encoder") for name in dims
    }
    model = keras_dgl.DGLModel(encoders, make_fusion(fusion), method=method, **kwargs)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate))
    model.build({name: (None, dim) for name, dim in dims.items()})
    return model


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _expected_coefficients(model, x, y, alpha):
    """Eq. 10 of Peng et al. (2022), in NumPy, from the unimodal logits."""
    unimodal = model(x, training=True)["unimodal"]
    scores = {
        name: _softmax(keras.ops.convert_to_numpy(logits))[np.arange(len(y)), y].sum()
        for name, logits in unimodal.items()
    }
    coefficients = {}
    for name, score in scores.items():
        others = np.mean([s for n, s in scores.items() if n != name])
        ratio = score / others
        coefficients[name] = 1.0 - np.tanh(alpha * ratio) if ratio > 1 else 1.0
    return coefficients


def _step_and_gradients(model, x, y):
    """Gradients of the objective, then the gradient the optimizer applied."""
    variables = model.trainable_variables
    _, gradients = dgl_backend.value_and_gradients(
        lambda: model.compute_loss(x, y, model(x, training=True)), variables
    )
    before = [keras.ops.convert_to_numpy(v) for v in variables]
    model.train_on_batch(x, y)
    applied = [
        b - keras.ops.convert_to_numpy(v) for b, v in zip(before, variables)
    ]  # learning rate 1
    return gradients, applied, before


def _owners(model):
    owner = {
        id(v): name
        for name, encoder in model.encoders.items()
        for v in encoder.trainable_variables
    }
    return [owner.get(id(v)) for v in model.trainable_variables]


def test_ogm_scales_each_encoder_gradient_by_its_coefficient():
    model = _model("ogm", ogm_alpha=0.5)
    x, y = random_batch(dims=DIMS, batch=32, seed=1)
    expected_k = _expected_coefficients(model, x, y, alpha=0.5)
    # One modality leads the batch and is slowed down; the other is not.
    assert sorted(k < 1 for k in expected_k.values()) == [False, True]
    gradients, applied, _ = _step_and_gradients(model, x, y)
    for gradient, update, owner in zip(gradients, applied, _owners(model)):
        k = 1.0 if owner is None else expected_k[owner]
        np.testing.assert_allclose(
            update, k * gradient, rtol=1e-3, atol=1e-6, err_msg=str(owner)
        )


def test_ogm_ge_adds_noise_with_the_std_of_each_unmodulated_gradient():
    model = _model("ogm_ge", units=64, ogm_alpha=0.5)
    x, y = random_batch(dims=DIMS, batch=64, seed=2)
    expected_k = _expected_coefficients(model, x, y, alpha=0.5)
    gradients, applied, before = _step_and_gradients(model, x, y)
    for gradient, update, owner in zip(gradients, applied, _owners(model)):
        if owner is None:  # fusion weights: no modulation, no noise
            np.testing.assert_allclose(update, gradient, rtol=1e-3, atol=1e-6)
            continue
        noise = update - expected_k[owner] * gradient
        if gradient.size >= 2048:  # the audio kernel (32 x 64): a sound estimate
            assert abs(noise.mean()) < 0.1 * gradient.std()
            np.testing.assert_allclose(noise.std(), gradient.std(), rtol=0.1)
    # A second step from the same weights on the same batch draws fresh noise.
    for variable, value in zip(model.trainable_variables, before):
        variable.assign(value)
    _, applied_again, _ = _step_and_gradients(model, x, y)
    for first, again, owner in zip(applied, applied_again, _owners(model)):
        if owner is None:
            np.testing.assert_allclose(again, first, rtol=1e-4, atol=1e-7)
        else:
            assert not np.allclose(again, first, rtol=1e-2)


def test_ogm_coefficients_follow_the_paper():
    y = np.array([0, 1, 1])
    confident = np.array([[4.0, 0.0], [0.0, 4.0], [0.0, 4.0]])
    unsure = np.zeros((3, 2))
    k, ratios = ogm_coefficients({"a": confident, "b": unsure}, y, alpha=0.3)
    score = 3 * np.exp(4) / (1 + np.exp(4))
    np.testing.assert_allclose(float(ratios["a"]), score / 1.5, rtol=1e-5)
    np.testing.assert_allclose(
        float(k["a"]), 1 - np.tanh(0.3 * score / 1.5), rtol=1e-5
    )
    assert float(k["b"]) == 1.0
    # Three modalities: each is compared with the mean of the others; one-hot
    # labels give the same result as class ids.
    one_hot = np.eye(2)[y]
    k3, ratios3 = ogm_coefficients(
        {"a": confident, "b": unsure, "c": unsure}, one_hot, alpha=0.3
    )
    np.testing.assert_allclose(float(ratios3["a"]), float(ratios["a"]), rtol=1e-6)
    np.testing.assert_allclose(float(k3["a"]), float(k["a"]), rtol=1e-6)


@pytest.mark.parametrize("method", ["ogm", "ogm_ge", "gblend"])
def test_baselines_train_and_log_like_the_other_methods(method):
    x, y = imbalanced_task(num_examples=256)
    model = keras_dgl.DGLModel(
        {"strong": make_encoder(16), "weak": make_encoder(16)},
        make_fusion("concat"),
        method=method,
        alpha={"strong": 0.3, "weak": 0.2},
        fused_weight=0.5,
    )
    model.compile(
        optimizer=keras.optimizers.SGD(0.1, momentum=0.9), metrics=["accuracy"]
    )
    logs = model.fit(x, y, epochs=3, batch_size=64, verbose=0).history
    assert logs["accuracy"][-1] > 0.8
    assert {"multimodal_loss", "strong_accuracy", "weak_loss"} <= set(logs)
    config = model.get_config()
    restored = keras_dgl.DGLModel.from_config(config)
    assert (restored.method, restored.fused_weight, restored.ogm_alpha) == (
        method,
        0.5,
        0.1,
    )


def test_gblend_objective_weights_every_term():
    alpha = {"audio": 0.3, "visual": 0.2}
    model = _model("gblend", alpha=alpha, fused_weight=0.5)
    x, y = random_batch(dims=DIMS, batch=16)

    def cross_entropy(logits):
        return keras.ops.mean(
            keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
        )

    def features():
        return {n: model.encoders[n](x[n], training=True) for n in DIMS}

    def expected():
        total = 0.5 * cross_entropy(model.fusion(features()))
        unimodal = model.fusion(features(), unimodal=True)
        for name, weight in alpha.items():
            total = total + weight * cross_entropy(unimodal[name])
        return total

    variables = model.trainable_variables
    loss, gradients = dgl_backend.value_and_gradients(
        lambda: model.compute_loss(x, y, model(x, training=True)), variables
    )
    expected_loss, expected_gradients = dgl_backend.value_and_gradients(
        expected, variables
    )
    np.testing.assert_allclose(loss, expected_loss, rtol=1e-5)
    for actual, wanted in zip(gradients, expected_gradients):
        np.testing.assert_allclose(actual, wanted, rtol=1e-4, atol=1e-7)


def test_gblend_weights_from_overfitting_to_generalization_ratios():
    x, y = imbalanced_task(num_examples=192)
    train = ({k: v[:128] for k, v in x.items()}, y[:128])
    validation = ({k: v[128:] for k, v in x.items()}, y[128:])
    built = []

    def build(**kwargs):
        model = keras_dgl.DGLModel(
            {"strong": make_encoder(16), "weak": make_encoder(16)},
            make_fusion("concat"),
            **kwargs,
        )
        # A few steps per model: compiling them would cost more than it saves.
        model.compile(
            optimizer=keras.optimizers.SGD(0.1, momentum=0.9), jit_compile=False
        )
        built.append(kwargs)
        return model

    result = keras_dgl.gblend_weights(build, train, validation, epochs=2)
    assert built == [
        {"method": "gblend", "alpha": 0.0, "fused_weight": 1.0},
        {"method": "gblend", "alpha": {"strong": 1.0, "weak": 0.0}, "fused_weight": 0},
        {"method": "gblend", "alpha": {"strong": 0.0, "weak": 1.0}, "fused_weight": 0},
    ]
    weights = result["weights"]
    assert set(weights) == {"fused", "strong", "weak"}
    assert all(w >= 0 for w in weights.values())
    np.testing.assert_allclose(sum(weights.values()), 1.0, rtol=1e-6)
    raw = {}
    for term, info in result["terms"].items():
        (train_0, train_n), (val_0, val_n) = info["train_loss"], info["validation_loss"]
        assert info["delta_generalization"] == pytest.approx(val_0 - val_n)
        assert info["delta_overfitting"] == pytest.approx(
            (val_n - train_n) - (val_0 - train_0)
        )
        assert val_n < val_0  # every term learned something in two epochs
        raw[term] = info["delta_generalization"] / info["delta_overfitting"] ** 2
    for term, value in raw.items():
        assert weights[term] == pytest.approx(value / sum(raw.values()))


def test_rejects_bad_baseline_arguments():
    encoders = {"audio": make_encoder(), "visual": make_encoder()}
    with pytest.raises(ValueError, match="fused_weight"):
        keras_dgl.DGLModel(encoders, make_fusion("concat"), fused_weight=-1.0)
    with pytest.raises(TypeError, match="ogm_alpha"):
        keras_dgl.DGLModel(encoders, make_fusion("concat"), ogm_alpha="0.1")
    with pytest.raises(ValueError, match="epochs"):
        keras_dgl.gblend_weights(lambda **kwargs: None, None, None, epochs=0)
