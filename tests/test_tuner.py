"""Tests of keras_dgl.tuner (the DGL search space), tiny KerasTuner searches
and keras_dgl.experiments.run_tune.

Searches run one or two epochs of two batches on a small synthetic task, so
the file stays well under two minutes per backend on two CPU cores; the
backend is whatever KERAS_BACKEND selects.
"""

import keras
import keras_tuner
import numpy as np
import pytest

from keras_dgl import datasets
from keras_dgl import encoders
from keras_dgl import registry
from keras_dgl import tuner as dgl_tuner
from keras_dgl.experiments import tune
from keras_dgl.models.dgl_model import DGLModel

NUM_CLASSES = 3
NUM_TEST = 40
SMALL_FUSION = {"attention": {"embed_dim": 8, "num_heads": 2},
                "gated": {"hidden_dim": 8}, "film": {"hidden_dim": 8}}
BACKEND = keras.backend.backend()
# For trials of two steps TensorFlow runs faster eagerly than after
# compiling the step (JAX does not: eager JAX compiles op by op). The
# random-search test keeps the default path on every backend.
EAGER = {"run_eagerly": True} if BACKEND == "tensorflow" else {}


@pytest.fixture(scope="module")
def splits():
    return datasets.synthetic(
        num_classes=NUM_CLASSES,
        modalities={"strong": {"dim": 6, "informativeness": 0.9},
                    "weak": {"dim": 4, "informativeness": 0.4}},
        num_train=128, num_validation=64, num_test=NUM_TEST, batch_size=64,
    )


def _encoder_builder(hp):
    width = hp.Int("width", 4, 8, step=4)
    return {name: encoders.MLPEncoder(hidden_units=(width,))
            for name in ("strong", "weak")}


def _hypermodel(splits, **kwargs):
    kwargs.setdefault("input_shapes", splits.input_shapes)
    return dgl_tuner.DGLHyperModel(
        _encoder_builder, NUM_CLASSES, fusion_kwargs=SMALL_FUSION, **kwargs)


def _space(hp):
    return {p.name: p for p in hp.space}


def _assert_predicts(model, splits):
    features, _ = splits.numpy("test")
    logits = model.predict(features, verbose=0)
    assert logits.shape == (NUM_TEST, NUM_CLASSES)
    assert np.all(np.isfinite(logits))


# The search space -------------------------------------------------------------


def test_default_space_covers_alpha_learning_rate_fusion_and_method(splits):
    hp = keras_tuner.HyperParameters()
    model = _hypermodel(splits).build(hp)
    space = _space(hp)
    assert space["alpha"].__class__.__name__ == "Float"
    assert (space["alpha"].min_value, space["alpha"].max_value) == (0.5, 8.0)
    assert space["alpha"].sampling == "log"
    assert space["learning_rate"].__class__.__name__ == "Float"
    assert space["learning_rate"].sampling == "log"
    assert list(space["fusion"].values) == list(registry.FUSIONS)
    assert list(space["method"].values) == ["dgl", "joint", "joint_aux"]
    assert "width" in space  # The encoder builder's own hyperparameter.
    # A compiled, built model, ready for the tuner.
    assert isinstance(model, DGLModel) and model.built
    assert model.optimizer.built and isinstance(model.optimizer, keras.optimizers.SGD)


def test_fixed_and_choice_overrides(splits):
    hp = keras_tuner.HyperParameters()
    model = _hypermodel(
        splits, alpha=[1.0, 4.0], learning_rate=0.02, fusion="gated",
        method=["dgl", "joint_aux"], optimizer="adam",
    ).build(hp)
    space = _space(hp)
    assert space["alpha"].__class__.__name__ == "Choice"
    assert list(space["alpha"].values) == [1.0, 4.0]
    assert space["learning_rate"].__class__.__name__ == "Fixed"
    assert space["fusion"].__class__.__name__ == "Fixed"
    assert list(space["method"].values) == ["dgl", "joint_aux"]
    assert model.fusion.__class__.__name__ == "GatedFusion"
    assert model.method in ("dgl", "joint_aux")
    assert model.alpha in (1.0, 4.0)
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == (
        pytest.approx(0.02))


def test_alpha_is_inactive_for_joint_training(splits):
    hp = keras_tuner.HyperParameters()
    model = _hypermodel(splits, method="joint").build(hp)
    assert model.method == "joint"
    assert not hp.is_active("alpha")
    assert "alpha" not in hp.values  # Not reported for a method it cannot change.


def test_callable_optimizer_gets_the_learning_rate(splits):
    seen = []

    def optimizer(learning_rate):
        seen.append(learning_rate)
        return keras.optimizers.RMSprop(learning_rate)

    hp = keras_tuner.HyperParameters()
    model = _hypermodel(splits, learning_rate=0.005, optimizer=optimizer).build(hp)
    assert seen == [0.005]
    assert isinstance(model.optimizer, keras.optimizers.RMSprop)


def test_metric_instances_are_copied_for_every_trial():
    metric = keras.metrics.SparseCategoricalAccuracy(name="acc")
    copy = dgl_tuner._fresh_metric(metric)
    assert copy is not metric and copy.get_config() == metric.get_config()
    assert dgl_tuner._fresh_metric("accuracy") == "accuracy"


def test_reused_encoders_are_rejected(splits):
    shared = {name: encoders.MLPEncoder(hidden_units=(4,)) for name in ("strong", "weak")}
    hypermodel = dgl_tuner.DGLHyperModel(
        lambda hp: shared, NUM_CLASSES, input_shapes=splits.input_shapes)
    hypermodel.build(keras_tuner.HyperParameters())
    with pytest.raises(ValueError, match="earlier trial"):
        hypermodel.build(keras_tuner.HyperParameters())


def test_bad_arguments_are_reported():
    cases = [
        ({"fusion": "bilinear"}, ValueError, "Unknown `fusion`"),
        ({"method": ["dgl", "greedy"]}, ValueError, "Unknown `method`"),
        ({"alpha": -1.0}, ValueError, "positive"),
        ({"alpha": []}, ValueError, "empty"),
        ({"learning_rate": [0.1, 0.1]}, ValueError, "twice"),
        ({"alpha": "4"}, TypeError, "numbers"),
        ({"optimizer": "adagrad"}, ValueError, "optimizer"),
        ({"fusion_kwargs": {"mlp": {}}}, ValueError, "unknown fusion"),
        ({"compile_kwargs": {"optimizer": "adam"}}, ValueError, "compile_kwargs"),
    ]
    for kwargs, error, match in cases:
        with pytest.raises(error, match=match):
            dgl_tuner.DGLHyperModel(_encoder_builder, NUM_CLASSES, **kwargs)


def test_builder_keys_must_match_input_shapes(splits):
    hypermodel = dgl_tuner.DGLHyperModel(
        _encoder_builder, NUM_CLASSES, input_shapes={"strong": (6,), "audio": (4,)})
    with pytest.raises(ValueError, match="input_shapes"):
        hypermodel.build(keras_tuner.HyperParameters())


# Searches -----------------------------------------------------------------------


def test_random_search_respects_overrides_and_best_model_predicts(splits, tmp_path):
    hypermodel = _hypermodel(
        splits, alpha=2.0, fusion=["sum", "concat"], method="dgl")
    search = keras_tuner.RandomSearch(
        hypermodel, objective="val_accuracy", max_trials=2, seed=1,
        directory=str(tmp_path), project_name="random")
    search.search(splits.train, validation_data=splits.validation, epochs=1,
                  verbose=0)
    trials = list(search.oracle.trials.values())
    assert len(trials) == 2
    for trial in trials:
        values = trial.hyperparameters.values
        assert values["method"] == "dgl"
        assert values["alpha"] == 2.0
        assert values["fusion"] in ("sum", "concat")
        assert trial.score is not None
    best = search.get_best_models(1)[0]
    assert best.method == "dgl" and best.alpha == 2.0
    _assert_predicts(best, splits)


def test_hyperband_best_model_predicts(splits, tmp_path):
    hypermodel = _hypermodel(splits, fusion="concat", method=["dgl", "joint"],
                             compile_kwargs=EAGER)
    search = keras_tuner.Hyperband(
        hypermodel, objective="val_accuracy", max_epochs=2, factor=2,
        hyperband_iterations=1, seed=1, directory=str(tmp_path),
        project_name="hyperband")
    search.search(splits.train, validation_data=splits.validation, epochs=2,
                  verbose=0)
    trials = list(search.oracle.trials.values())
    assert trials and all(
        t.hyperparameters.values["fusion"] == "concat" for t in trials)
    best = search.get_best_models(1)[0]
    assert best.fusion.__class__.__name__ == "ConcatFusion"
    _assert_predicts(best, splits)


def test_bayesian_search_without_input_shapes(splits, tmp_path):
    # Without input_shapes the tuner rebuilds the best model from the shapes
    # recorded in training (DGLModel.build traces call on KerasTensors).
    hypermodel = _hypermodel(
        splits, input_shapes=None, learning_rate=[0.01, 0.05], fusion="film",
        method="joint_aux", compile_kwargs=EAGER)
    search = keras_tuner.BayesianOptimization(
        hypermodel, objective="val_accuracy", max_trials=2, seed=1,
        directory=str(tmp_path), project_name="bayesian")
    search.search(splits.train, validation_data=splits.validation, epochs=1,
                  verbose=0)
    assert len(search.oracle.trials) == 2
    best_hp = search.get_best_hyperparameters(1)[0]
    assert best_hp.values["learning_rate"] in (0.01, 0.05)
    assert best_hp.values["method"] == "joint_aux"
    best = search.get_best_models(1)[0]
    assert best.built
    assert best.run_eagerly == bool(EAGER)  # compile_kwargs reach compile().
    _assert_predicts(best, splits)


def test_run_tune_reports_the_best_trial(tmp_path):
    lines = []
    result = tune.run_tune(
        dataset="synthetic", max_trials=1, epochs=1, directory=str(tmp_path),
        fusion="concat", method="dgl",
        data_options=dict(num_classes=3, num_train=128, num_validation=64,
                          num_test=NUM_TEST),
        log=lines.append,
    )
    assert result["trials"] == 1
    assert result["best_hyperparameters"]["fusion"] == "concat"
    assert 0.0 <= result["test_accuracy"] <= 1.0
    assert set(result["test_modality_accuracy"]) == {"strong", "weak"}
    assert result["backend"] == keras.backend.backend()
    text = "\n".join(lines)
    assert "Best hyperparameters" in text and "Test accuracy" in text
    with pytest.raises(ValueError, match="tuner"):
        tune.run_tune(dataset="synthetic", tuner="grid", directory=str(tmp_path))
