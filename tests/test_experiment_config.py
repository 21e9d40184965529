"""ExperimentConfig: defaults come from the preset only where a setting is None.

Pure settings checks: no data is loaded and no model built.
"""

import math

import pytest

from keras_dgl.experiments.config import ExperimentConfig
from keras_dgl.experiments.errors import ExperimentError
from keras_dgl.experiments.presets import PRESETS


def test_none_takes_the_preset_and_values_are_kept():
    config = ExperimentConfig(dataset="synthetic").resolved()
    preset = PRESETS["synthetic"]
    assert (config.epochs, config.batch_size, config.learning_rate, config.alpha) == (
        preset["epochs"], preset["batch_size"], preset["learning_rate"],
        preset["alpha"])
    config = ExperimentConfig(dataset="synthetic", epochs=1, batch_size=3,
                              learning_rate=0.5, alpha=0.0).resolved()
    assert (config.epochs, config.batch_size, config.learning_rate, config.alpha) == (
        1, 3, 0.5, 0.0)
    assert config.methods == ("dgl", "joint", "unimodal")
    assert config.seeds == (0, 1, 2)


@pytest.mark.parametrize(
    "setting, value, complaint",
    [
        ("epochs", 0, "epochs must be an integer >= 1; got 0"),
        ("epochs", 2.5, "epochs must be an integer"),
        ("epochs", True, "epochs must be an integer"),
        ("batch_size", 0, "batch size must be an integer >= 1; got 0"),
        ("learning_rate", 0, "learning rate must be a finite number > 0; got 0.0"),
        ("learning_rate", math.inf, "learning rate must be a finite number > 0"),
        ("learning_rate", "0.1", "learning rate must be a number"),
        ("alpha", math.inf, "alpha must be a finite number >= 0; got inf"),
        ("alpha", math.nan, "alpha must be a finite number >= 0; got nan"),
        ("alpha", -1.0, "alpha must be a finite number >= 0"),
        ("ogm_alpha", math.nan, "ogm_alpha must be a finite number >= 0"),
        ("refit_epochs", 0, "refit_epochs must be an integer >= 1"),
        ("max_probe_examples", 0, "max_probe_examples must be an integer >= 1"),
        ("max_probe_examples", 2.5, "max_probe_examples must be an integer"),
        ("seeds", 0, "--seeds must be at least 1"),
        ("seeds", [1, 1], "distinct"),
        ("seeds", ["a"], "seeds must be integers"),
        ("fusion", "bilinear", "unknown fusion 'bilinear'"),
        ("optimizer", "adagrad", "unknown optimizer 'adagrad'"),
        ("dataset", "mnist", "unknown dataset 'mnist'"),
        ("methods", ("dgl", "nope"), "unknown methods ['nope']"),
        ("data_options", "overlap=0.5", "data_options must be a dict"),
        ("unimodal_head", "both", "unknown unimodal_head 'both'"),
        ("epoch_choice", "last", "unknown epoch_choice 'last'"),
    ],
)
def test_bad_settings_are_named(setting, value, complaint):
    kwargs = {"dataset": "synthetic", setting: value}
    with pytest.raises(ExperimentError) as error:
        ExperimentConfig(**kwargs).resolved()
    assert complaint in str(error.value)


def test_dgl_recipe_defaults_and_combinations():
    # The default is the recipe of issue 11; the shared head keeps the
    # published form, fused-epoch choice included.
    assert ExperimentConfig().unimodal_head == "separate"
    config = ExperimentConfig(dataset="synthetic").resolved()
    assert (config.unimodal_head, config.epoch_choice) == ("separate", "per-modality")
    config = ExperimentConfig(dataset="synthetic", unimodal_head="shared").resolved()
    assert (config.unimodal_head, config.epoch_choice) == ("shared", "fused")
    config = ExperimentConfig(
        dataset="synthetic", unimodal_head="separate", epoch_choice="fused"
    ).resolved()
    assert config.epoch_choice == "fused"
    with pytest.raises(ExperimentError) as error:
        ExperimentConfig(
            dataset="synthetic", unimodal_head="shared", epoch_choice="per-modality"
        ).resolved()
    message = str(error.value)
    assert "epoch_choice 'per-modality' needs unimodal_head 'separate'" in message
    assert "--unimodal-head separate or --epoch-choice fused" in message


def test_data_folder_rules(tmp_path):
    with pytest.raises(ExperimentError, match="needs --data-dir"):
        ExperimentConfig(dataset="crema-d").resolved()
    with pytest.raises(ExperimentError, match="takes no --data-dir"):
        ExperimentConfig(dataset="synthetic", data_dir=str(tmp_path)).resolved()
    with pytest.raises(ExperimentError, match="data folder not found"):
        ExperimentConfig(data_dir=str(tmp_path / "missing")).resolved()
    config = ExperimentConfig(dataset="crema-d", data_dir=str(tmp_path)).resolved()
    # The published recipe's budget.
    assert (config.epochs, config.batch_size, config.optimizer, config.alpha) == (
        100, 64, "sgd", 4.0)
