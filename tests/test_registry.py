"""The registry of names agrees with the classes, loaders, presets and command.

Every name keras_dgl answers to is written once, in `keras_dgl.registry`;
these tests fail when a class, loader or preset is added, renamed or
removed without its registry entry (or the other way round).
"""

import inspect
import os
import re
import subprocess
import sys

import keras
import keras_tuner
import pytest

import keras_dgl
from keras_dgl import cli
from keras_dgl import registry
from keras_dgl.experiments.config import ExperimentConfig
from keras_dgl.experiments.presets import PRESETS
from keras_dgl.models.dgl_model import DGLModel

# Loaders of keras_dgl.datasets that are not data sets themselves.
GENERIC_LOADERS = {"audio_visual"}
# Public names of keras_dgl.datasets that load no data set of their own.
NOT_LOADERS = {"DatasetSplits", "PRESETS", "prepare", "verify_prepared"}
PRESET_KEYS = {
    "epochs", "batch_size", "optimizer", "learning_rate", "alpha", "weight_decay",
    "global_clipnorm", "lr_drop_fraction", "lr_drop_factor", "encoder",
    "fusion_config", "data_options",
}


def test_methods_name_their_model_classes():
    assert DGLModel.__module__ == "keras_dgl.models.dgl_model"
    assert keras_dgl.models.dgl_model.METHODS == registry.methods_of("DGLModel")
    config_fields = set(ExperimentConfig.__dataclass_fields__)
    for name, method in registry.METHODS.items():
        assert method.summary and method.reference, name
        assert set(method.settings) <= config_fields, name
        if method.prepare:
            assert callable(registry.resolve(method.prepare)), name
        if method.model is None:
            with pytest.raises(ValueError, match="no multimodal model"):
                registry.model_class(name)
            continue
        model_class = registry.model_class(name)
        assert issubclass(model_class, keras.Model)
        parameters = inspect.signature(model_class).parameters
        assert {"encoders", "fusion", "method", "alpha"} <= set(parameters), name
        assert set(method.settings) <= set(parameters), name
    assert registry.multimodal_methods()[0] == "dgl"
    with pytest.raises(ValueError, match="Unknown method"):
        registry.model_class("bogus")


def test_every_dgl_model_method_builds():
    from dgl_test_utils import make_encoder, make_fusion

    for name in registry.methods_of("DGLModel"):
        model = DGLModel({"a": make_encoder(), "b": make_encoder()},
                         make_fusion("concat"), method=name)
        assert model.method == name
    with pytest.raises(ValueError, match="Unknown `method`"):
        DGLModel({"a": make_encoder(), "b": make_encoder()}, make_fusion("concat"),
                 method="unimodal")


def test_fusions_are_every_fusion_layer():
    layers = {
        name for name in keras_dgl.layers.__all__
        if isinstance(getattr(keras_dgl.layers, name), type)
        and issubclass(getattr(keras_dgl.layers, name), keras_dgl.layers.FusionLayer)
        and name != "FusionLayer"
    }
    assert set(registry.FUSIONS.values()) == layers
    for name in registry.FUSIONS:
        assert issubclass(registry.fusion_class(name), keras_dgl.layers.FusionLayer)


def test_datasets_are_every_loader_and_have_presets():
    loaders = set(keras_dgl.datasets.__all__) - NOT_LOADERS - GENERIC_LOADERS
    assert {d.loader for d in registry.DATASETS.values()} == loaders
    assert set(PRESETS) == set(registry.DATASETS)
    for name, dataset in registry.DATASETS.items():
        parameters = inspect.signature(registry.dataset_loader(name)).parameters
        assert dataset.seed_argument in parameters, name
        assert dataset.data_dir in ("required", "optional", "none"), name
        if dataset.data_dir != "none":
            assert dataset.data_argument in parameters, name
        preset = PRESETS[name]
        assert set(preset) == PRESET_KEYS, name
        assert preset["optimizer"] in registry.OPTIMIZERS, name
        assert set(preset["fusion_config"]) <= set(registry.FUSIONS), name
        assert hasattr(keras_dgl.encoders, preset["encoder"]["class_name"]), name
    assert registry.builtin_datasets() == ("smartwatch", "synthetic")


def test_audio_visual_presets_are_the_registry_datasets_with_a_data_dir(tmp_path):
    """`keras_dgl.datasets.PRESETS` holds preprocessing only; the names and
    loaders are the registry's, and each loader reads its own preset."""
    audio_visual = [n for n, d in registry.DATASETS.items() if not d.builtin]
    assert list(keras_dgl.datasets.PRESETS) == audio_visual
    for name in audio_visual:
        preset = keras_dgl.datasets.PRESETS[name]
        assert set(preset) == {"num_classes", "frame_aspect", "options"}, name
        # The loader's messages carry its preset's display name.
        display = re.escape(preset["options"]["name"])
        with pytest.raises(FileNotFoundError, match=f"^{display} root folder"):
            registry.dataset_loader(name)(str(tmp_path / "missing"))


def test_optimizers_and_tuners_exist():
    for name in registry.OPTIMIZERS:
        assert keras_dgl.optimizers.make_optimizer(name, 0.1) is not None
    for name, class_name in registry.TUNERS.items():
        assert registry.tuner_class(name) is getattr(keras_tuner, class_name)


def test_command_offers_the_registry_names():
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    train = {a.dest: a for a in commands["train"]._actions}
    tune = {a.dest: a for a in commands["tune"]._actions}
    assert list(train["dataset"].choices) == list(registry.DATASETS)
    assert list(train["fusion"].choices) == list(registry.FUSIONS)
    assert list(train["optimizer"].choices) == list(registry.OPTIMIZERS)
    assert list(train["backend"].choices) == list(registry.BACKENDS)
    assert list(tune["dataset"].choices) == list(registry.builtin_datasets())
    assert list(tune["tuner"].choices) == list(registry.TUNERS)
    epilog = commands["train"].epilog
    for name, method in registry.METHODS.items():
        assert f"\n  {name} " in epilog, name


def test_registry_and_command_load_no_keras():
    env = dict(os.environ)
    env.pop("KERAS_BACKEND", None)
    code = (
        "import sys\n"
        "from keras_dgl import registry\n"
        "import keras_dgl.cli\n"
        "keras_dgl.cli.build_parser()\n"
        "from keras_dgl.experiments.config import ExperimentConfig\n"
        "ExperimentConfig(dataset='synthetic').resolved()\n"
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch')"
        " if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
