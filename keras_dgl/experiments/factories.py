"""What an experiment builds: data splits, encoders, fusion layers, optimizers, models."""

import inspect
import math
import os

import keras

from keras_dgl import encoders as dgl_encoders
from keras_dgl import registry
from keras_dgl.experiments.dgl_recipe import fusion_options
from keras_dgl.experiments.errors import ExperimentError
from keras_dgl.experiments.presets import PRESETS
from keras_dgl.experiments.presets import lr_drop_epoch
from keras_dgl.optimizers import make_optimizer as make_named_optimizer


def check_data_options(dataset, options):
    """Checks loader options against the loader's signature before any loading.

    An option the loader does not take, or whose value has another type
    than the loader's default for it (an int for an int, a finite number
    for a float, `True`/`False` for a bool, text for a string), is refused
    with the option's name. Options of loaders that forward `**kwargs` are
    checked by the loader itself.

    Args:
        dataset: str. A key of `keras_dgl.registry.DATASETS`.
        options: dict. The options (e.g. from `--data-option`).

    Raises:
        ExperimentError: an unknown option or a value of the wrong type.

    Example:

    ```python
    check_data_options("synthetic", {"num_train": 512})
    ```
    """
    entry = registry.DATASETS[dataset]
    parameters = inspect.signature(registry.dataset_loader(dataset)).parameters
    forwards = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    for key, value in options.items():
        if key in (entry.seed_argument, entry.data_argument):
            source = "--seeds" if key == entry.seed_argument else "--data-dir"
            raise ExperimentError(
                f"bad data option for {dataset}: {key} is set by {source}"
            )
        if key not in parameters:
            if forwards:
                continue
            known = sorted(
                name for name, p in parameters.items()
                if p.kind is not inspect.Parameter.VAR_KEYWORD
                and name not in (entry.seed_argument, entry.data_argument)
            )
            raise ExperimentError(
                f"bad data option for {dataset}: unknown option {key!r} "
                f"(options: {', '.join(known)})"
            )
        problem = _type_problem(parameters[key].default, value)
        if problem:
            raise ExperimentError(
                f"bad data option for {dataset}: {key} must be {problem}; "
                f"got {value!r}"
            )


def _type_problem(default, value):
    """What `value` should be, judged by the loader's default; `None` if fine."""
    if default is inspect.Parameter.empty or default is None:
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "True or False"
    if isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
        return None if ok else "an integer"
    if isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return None if ok and math.isfinite(value) else "a finite number"
    if isinstance(default, str):
        return None if isinstance(value, str) else "text"
    return None


def load_splits(config, seed):
    """Loads the data splits of one seed.

    Args:
        config: a resolved `ExperimentConfig`.
        seed: int. The split seed.

    Returns:
        A `keras_dgl.datasets.DatasetSplits` with a validation split.

    Raises:
        ExperimentError: bad options, or data that cannot be found or read,
            or that has no validation split (every run's epoch is chosen on
            it).

    Example:

    ```python
    config = ExperimentConfig(dataset="synthetic").resolved()
    splits = load_splits(config, seed=0)
    ```
    """
    name = config.dataset
    entry = registry.DATASETS[name]
    check_data_options(name, config.data_options)
    options = dict(config.data_options)
    options.setdefault("batch_size", config.batch_size)
    options[entry.seed_argument] = seed
    if config.data_dir:
        path = config.data_dir
        if entry.data_file and os.path.isdir(path):
            path = os.path.join(path, entry.data_file)
        options[entry.data_argument] = path
    try:
        splits = registry.dataset_loader(name)(**options)
    except (OSError, ValueError, ImportError) as error:
        raise ExperimentError(f"cannot load {name} data: {error}") from error
    except TypeError as error:
        # An option the loader forwards reaches a function that lacks it.
        raise ExperimentError(f"bad data option for {name}: {error}") from error
    task = getattr(splits, "task", "classification")
    if task != "classification":
        # Every score the runner reports is an accuracy.
        raise ExperimentError(
            f"keras-dgl train compares classification runs; {name} with "
            f"task={task!r} is available from Python "
            f"(keras_dgl.datasets.{name}(task=...) with DGLModel)"
        )
    if splits.validation is None:
        raise ExperimentError(
            f"the {name} data has no validation split, and each run's epoch is "
            "chosen on it; give it one (e.g. drop a --data-option that sets "
            "its size to 0)"
        )
    return splits


def make_encoder(dataset, input_shape):
    """The preset's encoder for one modality of `dataset`.

    Args:
        dataset: str. The dataset name.
        input_shape: tuple. Per-example shape of the modality.

    Returns:
        A new Keras layer mapping `(batch,) + input_shape` to features.

    Example:

    ```python
    encoder = make_encoder("smartwatch", (200, 3))
    ```
    """
    spec = PRESETS[dataset]["encoder"]
    cls = getattr(dgl_encoders, spec["class_name"])
    config = dict(spec["config"])
    if "input_channels" in inspect.signature(cls).parameters:
        config.setdefault("input_channels", int(input_shape[-1]))
    return cls(**config)


def make_fusion(config, num_classes, **options):
    """The fusion layer named by `config.fusion`, sized by the dataset's preset.

    Args:
        config: a resolved `ExperimentConfig`.
        num_classes: int. Number of classes.
        **options: more keyword arguments of the layer (e.g.
            `unimodal_head`).

    Returns:
        A new `keras_dgl.layers.FusionLayer`.

    Example:

    ```python
    fusion = make_fusion(ExperimentConfig(fusion="gated").resolved(), 7)
    ```
    """
    kwargs = PRESETS[config.dataset]["fusion_config"].get(config.fusion, {})
    return registry.fusion_class(config.fusion)(
        num_classes=num_classes, **kwargs, **options
    )


def make_optimizer(config):
    """The run's optimizer: the config's name and rate, the preset's recipe.

    The preset's weight decay applies to SGD (coupled, as in PyTorch); its
    gradient clipping to both optimizers.

    Args:
        config: a resolved `ExperimentConfig`.

    Returns:
        A new `keras.optimizers.Optimizer`.
    """
    preset = PRESETS[config.dataset]
    return make_named_optimizer(
        config.optimizer,
        config.learning_rate,
        weight_decay=preset["weight_decay"] if config.optimizer == "sgd" else None,
        global_clipnorm=preset["global_clipnorm"],
    )


def recipe(config):
    """The preset's optimizer recipe beyond the config's settings (fingerprinted)."""
    preset = PRESETS[config.dataset]
    return {
        "weight_decay": preset["weight_decay"] if config.optimizer == "sgd" else None,
        "global_clipnorm": preset["global_clipnorm"],
        "lr_drop_epoch": (
            lr_drop_epoch(preset, config.epochs) if config.optimizer == "sgd" else None
        ),
        "lr_drop_factor": preset["lr_drop_factor"],
    }


def lr_schedule(config):
    """SGD's step schedule (x`lr_drop_factor` late in training), or `None`.

    Args:
        config: a resolved `ExperimentConfig`.

    Returns:
        A `keras.callbacks.LearningRateScheduler` or `None`.
    """
    drop = recipe(config)["lr_drop_epoch"]
    if drop is None:
        return None
    base, factor = config.learning_rate, PRESETS[config.dataset]["lr_drop_factor"]
    return keras.callbacks.LearningRateScheduler(
        # A function of the absolute epoch, so it survives a resume.
        lambda epoch: base * (factor if epoch >= drop else 1.0)
    )


def build_model(config, run, splits, **model_kwargs):
    """Builds and compiles the model of one run.

    Multimodal methods get their registry class (`keras_dgl.DGLModel` for
    the built-in ones), the `"dgl"` runs' fusion layer with
    `config.unimodal_head`; a unimodal baseline gets a functional
    `keras.Model`: the same encoder plus a `Dense` head named `"head"`.

    Args:
        config: a resolved `ExperimentConfig`.
        run: the `Run` (method, seed and, for baselines, modality).
        splits: the `DatasetSplits` (for input shapes and class count).
        **model_kwargs: model arguments over the run's (e.g. gblend's
            `alpha` dict and `fused_weight`).

    Returns:
        `(model, encoders)`: the compiled, built model and a dict of its
        encoders by modality.

    Example:

    ```python
    config = ExperimentConfig(dataset="synthetic").resolved()
    splits = load_splits(config, seed=0)
    model, encoders = build_model(config, Run("dgl", seed=0), splits)
    ```
    """
    shapes = {name: tuple(shape) for name, shape in splits.input_shapes.items()}
    if run.modality is None:
        encoders = {name: make_encoder(config.dataset, s) for name, s in shapes.items()}
        method = registry.METHODS[run.method]
        kwargs = {"alpha": config.alpha, "method": run.method, "name": run.method}
        kwargs.update({key: getattr(config, key) for key in method.settings})
        kwargs.update(model_kwargs)
        model_class = registry.model_class(run.method)
        fusion = make_fusion(config, splits.num_classes, **fusion_options(config, run))
        model = model_class(encoders, fusion, **kwargs)
        model.build({name: (None,) + s for name, s in shapes.items()})
    else:
        encoder = make_encoder(config.dataset, shapes[run.modality])
        encoders = {run.modality: encoder}
        inputs = keras.Input(shapes[run.modality], name=run.modality)
        logits = keras.layers.Dense(splits.num_classes, name="head")(encoder(inputs))
        model = keras.Model(inputs, logits, name=f"unimodal_{run.modality}")
    model.compile(
        optimizer=make_optimizer(config),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model, encoders


def select(dataset, modality):
    """A split's `(features, label)` batches reduced to one modality (or all)."""
    if modality is None or dataset is None:
        return dataset
    return dataset.map(lambda features, label: (features[modality], label))
