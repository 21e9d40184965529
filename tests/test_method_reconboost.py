"""ReconBoost: one modality boosted at a time (others frozen), then rectification."""

import keras
import numpy as np
from dgl_test_utils import random_batch
from method_test_utils import (
    applied_update,
    assert_lists_close,
    cross_entropy,
    gradients,
    numpy_values,
    owners,
    tiny_model,
)

OPTIONS = {"stage_epochs": 1, "rectify_epochs": 1, "weight1": 5.0, "weight2": 1.0}


def _boosting_loss(model, x, y, modality):
    """The reference's boosting loss, written out in keras.ops."""
    unimodal = model(x, training=True)["unimodal"]
    other = [n for n in model.modality_names if n != modality][0]
    target = keras.ops.one_hot(y, 3)
    q = keras.ops.softmax(keras.ops.stop_gradient(unimodal[other]))
    log_p = keras.ops.log_softmax(unimodal[modality])
    per_class = -5.0 * target * log_p + 1.0 * target * q * log_p
    return keras.ops.mean(keras.ops.mean(per_class, axis=-1))


def test_schedule_alternates_stages_and_rectification():
    model = tiny_model("reconboost", method_options=OPTIONS)
    x, y = random_batch(batch=16)
    phases = []
    recorder = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: phases.append(model._method.phase)
    )
    model.fit(x, y, epochs=5, batch_size=8, verbose=0, callbacks=[recorder])
    assert phases == ["audio", "rectify", "visual", "rectify", "audio"]
    assert float(keras.ops.convert_to_numpy(model.method_state.epochs)) == 5


def test_boosting_step_trains_one_learner_and_freezes_the_others():
    model = tiny_model("reconboost", method_options=OPTIONS)
    x, y = random_batch(batch=16, seed=9)
    model._method.set_phase(model, "audio")
    expected = gradients(lambda: _boosting_loss(model, x, y, "audio"),
                         model.trainable_variables)
    update, _ = applied_update(model, x, y)
    for g, u, owner in zip(expected, update, owners(model)):
        if owner == "visual":
            assert np.all(u == 0.0)
        else:
            np.testing.assert_allclose(u, g, rtol=1e-3, atol=1e-6)


def test_rectification_trains_everything_on_the_ensemble_and_frozen_means_frozen():
    model = tiny_model(
        "reconboost", method_options=OPTIONS,
        optimizer=keras.optimizers.SGD(1.0, momentum=0.9),
    )
    x, y = random_batch(batch=16, seed=9)
    model._method.set_phase(model, "rectify")
    unimodal = model(x, training=True)["unimodal"]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(model(x, training=True)["fused"]),
        sum(keras.ops.convert_to_numpy(u) for u in unimodal.values()), rtol=1e-5,
    )
    expected = gradients(
        lambda: cross_entropy(y, model(x, training=True)["fused"]),
        model.trainable_variables,
    )
    update, _ = applied_update(model, x, y)
    assert_lists_close(update, expected, rtol=1e-3)
    # With momentum built up, a boosting step still leaves the frozen
    # encoder exactly where it is.
    model._method.set_phase(model, "visual")
    audio = model.encoders["audio"].trainable_variables
    before = numpy_values(audio)
    model.train_on_batch(x, y)
    assert_lists_close(numpy_values(audio), before, rtol=0, atol=0)
