"""The new methods train on the synthetic task and save; the registry; bad options."""

import os

import keras
import numpy as np
import pytest
from dgl_test_utils import make_encoder, make_fusion

import keras_dgl
from keras_dgl import registry
from keras_dgl.models import methods

NEW_METHODS = ("mmpareto", "agm", "inforeg", "pmr", "mla", "reconboost")
MODALITIES = {"strong": 0.9, "weak": 0.4, "faint": 0.2}
# One epoch per phase, so four epochs see both of ReconBoost's phases twice.
OPTIONS = {"reconboost": {"stage_epochs": 1, "rectify_epochs": 1}}


def _splits():
    return keras_dgl.datasets.synthetic(
        num_classes=4, modalities=MODALITIES, num_train=384, num_validation=0,
        num_test=128, batch_size=64, seed=0,
    )


def _model(method, **kwargs):
    return keras_dgl.DGLModel(
        {name: make_encoder(16, name=f"{name}_encoder") for name in MODALITIES},
        make_fusion("concat", num_classes=4),
        method=method,
        **kwargs,
    )


def _fused_loss(model, x, y):
    logits = model.predict(x, verbose=0)
    loss = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    return float(np.mean(keras.ops.convert_to_numpy(loss)))


@pytest.mark.parametrize("method", NEW_METHODS)
def test_trains_three_modalities_and_survives_save_and_load(method, tmp_path):
    splits = _splits()
    x, y = splits.numpy("train")
    # The loss before training, of an identical model (same seed).
    keras.utils.set_random_seed(3)
    fresh = _model(method, method_options=OPTIONS.get(method))
    fresh.compile(optimizer="adam")
    before = _fused_loss(fresh, x, y)
    keras.utils.set_random_seed(3)
    model = _model(method, method_options=OPTIONS.get(method))
    model.compile(optimizer=keras.optimizers.Adam(3e-3), metrics=["accuracy"])
    # Unbuilt: on TensorFlow the first training step builds the model, after
    # the first epoch's hooks, so the state's initial values serve epoch 0.
    history = model.fit(splits.train, epochs=4, verbose=0, shuffle=False).history
    after = _fused_loss(model, x, y)
    assert after < 0.8 * before, (before, after)
    accuracy = np.mean(np.argmax(model.predict(x, verbose=0), axis=-1) == y)
    assert accuracy > 0.5  # 4 classes
    assert {"multimodal_loss", "weak_loss", "faint_accuracy"} <= set(history)

    path = os.path.join(tmp_path, f"{method}.keras")
    model.save(path)
    restored = keras.saving.load_model(path)
    assert restored.method == method
    test_x, _ = splits.numpy("test")
    np.testing.assert_allclose(
        restored.predict(test_x, verbose=0), model.predict(test_x, verbose=0),
        rtol=1e-5, atol=1e-6,
    )
    state = getattr(model, "method_state", None)  # stateless methods have none
    assert state is None or (state.built and state.weights)
    for saved, loaded in zip(model.non_trainable_variables,
                             restored.non_trainable_variables):
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(loaded), keras.ops.convert_to_numpy(saved),
            err_msg=saved.path,
        )


@pytest.mark.parametrize("method", methods.METHODS)
def test_every_method_is_registered_with_its_documentation(method):
    cls = methods.get(method)
    entry = registry.METHODS[method]
    assert entry.model == "DGLModel" and entry.strategy == cls.__name__
    assert entry.summary and entry.reference
    assert cls.__doc__ and ("Options" in cls.__doc__ or not cls.defaults)
    for option in cls.defaults:
        assert f"{option}:" in cls.__doc__, (method, option)


def test_bad_method_options_name_the_option():
    with pytest.raises(ValueError, match="Unknown `method_options` \\['beta'\\]"):
        _model("mmpareto", method_options={"beta": 1.0})
    with pytest.raises(TypeError, match="gamma"):
        _model("mmpareto", method_options={"gamma": "1"})
    with pytest.raises(ValueError, match="options are: none"):
        _model("dgl", method_options={"gamma": 1.0})
    with pytest.raises(ValueError, match="Unknown `method`"):
        _model("pareto")
