"""Comparison experiments: DGL against joint training and unimodal baselines.

This is the run logic behind the `keras-dgl train` command, usable from
Python as well. One experiment trains every requested method on the same
data splits with the same budget and seeds:

- `"dgl"`, `"joint"`, `"joint_aux"`, `"ogm"`, `"ogm_ge"`, `"gblend"`: a
  `keras_dgl.DGLModel` (one encoder per modality plus a fusion layer) with
  that `method`. For `"gblend"` the loss weights are first estimated with
  `keras_dgl.gblend_weights` (each loss term trained alone for the run's
  epochs, scored on the validation split);
- `"unimodal"`: for each modality, the same encoder plus a `Dense` head,
  a plain `keras.Model` trained on that modality alone.

Each seed is one data split (for the smartwatch data: a different choice
of validation and test subjects) and one initialisation, shared by all
methods, so methods can be compared split by split. The epoch of every run
is chosen on the validation split (the best validation accuracy; fused for
multimodal models), and its weights are the ones scored on the test split.

Every multimodal run is also diagnosed: a `keras_dgl.callbacks.GradientMonitor`
measures each encoder's multimodal-to-unimodal gradient-norm ratio at every
epoch end, and `keras_dgl.diagnostics.modality_contribution` scores the
fused test accuracy with each modality zeroed. Then (unless `refit=False`)
its fusion layer is refit on frozen encoder features
(`keras_dgl.DGLModel.refit_fusion`, length chosen on the validation split)
and scored again: the table's `<method> + refit` rows. Everything recorded
for the plain row is computed before the refit.

Output folder layout (`out`):

```
experiment.json              # the configuration the folder belongs to
runs/<run>/result.json       # written when a run has finished (skip marker)
runs/<run>/history.json      # every epoch's logs
runs/<run>/best.json, best.weights.h5   # best validation epoch so far
runs/<run>/backup/           # keras.callbacks.BackupAndRestore state
runs/<run>/gblend.json       # gblend runs: the estimated loss weights
tensorboard/<run>/           # keras.callbacks.TensorBoard logs
results.json, results.csv    # one record per run, plus summary and gains
table.txt                    # the printed table
validation_accuracy.png      # validation accuracy over epochs
comparison.png               # test accuracy per method (bar chart)
gradient_ratio_<method>.png  # each encoder's gradient ratio over epochs
```

Running the same experiment again with the same `out` resumes it:
finished runs are skipped and an interrupted run continues from its last
completed epoch.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import shutil
import time
from typing import Any, Callable, Optional

import keras
import numpy as np

from keras_dgl import datasets as dgl_datasets
from keras_dgl import encoders as dgl_encoders
from keras_dgl import layers as dgl_layers
from keras_dgl.callbacks.gradient_monitor import GradientMonitor
from keras_dgl.diagnostics.modality_contribution import modality_contribution
from keras_dgl.diagnostics.plot_gradient_ratios import plot_gradient_ratios
from keras_dgl.models.dgl_model import DGLModel
from keras_dgl.models.gblend import gblend_weights

MULTIMODAL_METHODS = ("dgl", "joint", "joint_aux", "ogm", "ogm_ge", "gblend")
METHODS = MULTIMODAL_METHODS + ("unimodal",)
DATASETS = ("smartwatch", "synthetic", "crema-d", "kinetics-sounds", "ave")
FUSIONS = ("sum", "concat", "gated", "film", "attention")
OPTIMIZERS = ("adam", "sgd")
# Settings that do not change what a run computes; a folder may be reused
# with other values of these (more seeds, more methods).
_NOT_FINGERPRINTED = ("seeds", "methods", "out")
# Settings added after folders were first written, with the value those
# folders' runs had in effect; a folder without them is not "different".
_ADDED_SETTINGS = {"ogm_alpha": 0.1, "refit": True}
# Fusion refit: at most this many epochs, stopping after _REFIT_PATIENCE
# without a lower validation loss. A refit epoch costs Keras' per-epoch
# overhead (about 0.2 s on two CPU cores) far more than its few small
# steps, so the epoch cap, not the batch size, is what bounds its cost.
_REFIT_EPOCHS = 20
_REFIT_PATIENCE = 5
# Inference batches (probe, refit features, contribution): larger than
# training ones, since they cost less per example.
_INFERENCE_BATCH = 256


class ExperimentError(ValueError):
    """A problem with the experiment's settings, data or output folder.

    The message is meant for the user as is (the command prints it as one
    line and exits with status 2).
    """


# Presets --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Preset:
    """Per-dataset defaults: what the command trains when given no option."""

    epochs: int
    batch_size: int
    optimizer: str
    learning_rate: float
    alpha: float
    needs_data_dir: bool
    # Widths of the fusion layers that have a hidden size.
    fusion_kwargs: dict
    weight_decay: Optional[float] = None
    # Epoch (fraction of the budget) at which SGD's learning rate drops x0.1,
    # as in the published schedule (epoch 70 of 100).
    lr_drop_fraction: Optional[float] = None
    # Default keyword arguments of the dataset loader.
    data_options: dict = dataclasses.field(default_factory=dict)


_SMALL_FUSION = {
    "gated": {"hidden_dim": 64},
    "film": {"hidden_dim": 64},
    "attention": {"embed_dim": 64, "num_heads": 4},
}
_PUBLISHED_AV = dict(
    epochs=100,
    batch_size=64,
    optimizer="sgd",
    learning_rate=2e-3,
    needs_data_dir=True,
    fusion_kwargs={},
    weight_decay=1e-4,
    lr_drop_fraction=0.7,
)
PRESETS = {
    # Sized so that the default comparison (4 runs x 3 splits) finishes in
    # about five minutes on two CPU cores: validation accuracy levels off
    # after 6-10 epochs. Training windows overlap 50% (a 2 s step) instead of
    # the loader's 75%, which halves an epoch's cost. Adam converges in few
    # epochs here; with Adam alpha does not change DGL (see DGLModel), so it
    # stays at 1.
    "smartwatch": _Preset(
        epochs=12,
        batch_size=32,
        optimizer="adam",
        learning_rate=1e-3,
        alpha=1.0,
        needs_data_dir=False,
        fusion_kwargs=_SMALL_FUSION,
        data_options={"overlap": 0.5},
    ),
    "synthetic": _Preset(
        epochs=10,
        batch_size=64,
        optimizer="adam",
        learning_rate=1e-3,
        alpha=1.0,
        needs_data_dir=False,
        fusion_kwargs=_SMALL_FUSION,
    ),
    # The published DGL setup (SGD momentum 0.9, lr 2e-3, batch 64, 100
    # epochs, lr x0.1 at epoch 70) and the alpha of the authors' logs.
    "crema-d": _Preset(alpha=4.0, **_PUBLISHED_AV),
    "kinetics-sounds": _Preset(alpha=3.0, **_PUBLISHED_AV),
    "ave": _Preset(alpha=2.0, **_PUBLISHED_AV),
}


@dataclasses.dataclass
class ExperimentConfig:
    """Settings of one comparison experiment.

    `None` fields take the dataset's defaults (see `resolved()`).

    Args:
        dataset: str. One of `"smartwatch"` (default), `"synthetic"`,
            `"crema-d"`, `"kinetics-sounds"`, `"ave"`. The audio-visual
            ones need `data_dir` and use `ResNet18` encoders; smartwatch
            uses `Conv1DEncoder`s, synthetic `MLPEncoder`s.
        data_dir: str or `None`. Data folder (audio-visual sets); for
            smartwatch, a folder holding `watch_dataset.npy` or that file.
        data_options: dict. Extra keyword arguments of the dataset loader
            (e.g. `{"window_seconds": 2.0}` for smartwatch), over the
            experiment's defaults (smartwatch: `{"overlap": 0.5}`).
        fusion: str. One of `"sum"`, `"concat"` (default), `"gated"`,
            `"film"`, `"attention"`.
        alpha: float or `None`. Weight of the unimodal losses (DGL and
            joint_aux). With Adam it does not change DGL; with SGD it
            scales the encoders' learning rate. Not used by gblend, whose
            weights are estimated.
        methods: sequence of str from `"dgl"`, `"joint"`, `"joint_aux"`,
            `"ogm"`, `"ogm_ge"`, `"gblend"` (see `keras_dgl.DGLModel`) and
            `"unimodal"` (one baseline per modality). Defaults to
            `("dgl", "joint", "unimodal")`.
        epochs: int or `None`. Epochs per run.
        batch_size: int or `None`.
        seeds: int or sequence of int. An int `n` means seeds `0..n-1`.
            Each seed is one data split and one initialisation.
        optimizer: `"adam"`, `"sgd"` (momentum 0.9) or `None`.
        learning_rate: float or `None`.
        probe: bool. Also score each trained encoder with a linear probe
            (logistic regression on its frozen features, fitted on the
            training split). Defaults to `True`.
        out: str. Output folder. Defaults to `"dgl-results"`.
        ogm_alpha: float. Modulation strength of `"ogm"` and `"ogm_ge"`.
            Defaults to `0.1`.
        refit: bool. After each multimodal run, also refit its fusion
            layer on frozen encoder features and score it again (the
            `<method> + refit` rows). Defaults to `True`.

    Example:

    ```python
    config = keras_dgl.experiment.ExperimentConfig(
        dataset="synthetic", epochs=3, seeds=2, out="/tmp/dgl-synthetic"
    )
    results = keras_dgl.experiment.run_experiment(config)
    print(results["table"])
    ```
    """

    dataset: str = "smartwatch"
    data_dir: Optional[str] = None
    data_options: dict = dataclasses.field(default_factory=dict)
    fusion: str = "concat"
    alpha: Optional[float] = None
    methods: tuple = ("dgl", "joint", "unimodal")
    epochs: Optional[int] = None
    batch_size: Optional[int] = None
    seeds: Any = 3
    optimizer: Optional[str] = None
    learning_rate: Optional[float] = None
    probe: bool = True
    out: str = "dgl-results"
    ogm_alpha: float = 0.1
    refit: bool = True

    def resolved(self):
        """Returns a checked copy with the dataset's defaults filled in.

        Returns:
            An `ExperimentConfig` with no `None` among `alpha`, `epochs`,
            `batch_size`, `optimizer`, `learning_rate`; `methods` a tuple in
            canonical order and `seeds` a tuple of ints.

        Raises:
            ExperimentError: an unknown or inconsistent setting.
        """
        if self.dataset not in PRESETS:
            raise ExperimentError(
                f"unknown dataset {self.dataset!r}; choose from {list(DATASETS)}"
            )
        preset = PRESETS[self.dataset]
        if self.fusion not in FUSIONS:
            raise ExperimentError(
                f"unknown fusion {self.fusion!r}; choose from {list(FUSIONS)}"
            )
        methods = [self.methods] if isinstance(self.methods, str) else self.methods
        unknown = sorted(set(methods) - set(METHODS))
        if unknown or not methods:
            raise ExperimentError(
                f"unknown methods {unknown or methods}; choose from {list(METHODS)}"
            )
        optimizer = self.optimizer or preset.optimizer
        if optimizer not in OPTIMIZERS:
            raise ExperimentError(
                f"unknown optimizer {optimizer!r}; choose from {list(OPTIMIZERS)}"
            )
        if preset.needs_data_dir and not self.data_dir:
            raise ExperimentError(
                f"dataset {self.dataset!r} needs --data-dir (the folder with "
                "its train.csv, test.csv, audio/ and visual/)"
            )
        if self.dataset == "synthetic" and self.data_dir:
            raise ExperimentError("dataset 'synthetic' takes no --data-dir")
        if self.data_dir and not os.path.exists(self.data_dir):
            raise ExperimentError(f"data folder not found: {self.data_dir}")
        config = dataclasses.replace(
            self,
            data_dir=os.path.abspath(self.data_dir) if self.data_dir else None,
            data_options={**preset.data_options, **self.data_options},
            alpha=float(preset.alpha if self.alpha is None else self.alpha),
            methods=tuple(m for m in METHODS if m in methods),
            epochs=int(self.epochs or preset.epochs),
            batch_size=int(self.batch_size or preset.batch_size),
            seeds=_seed_list(self.seeds),
            optimizer=optimizer,
            learning_rate=float(self.learning_rate or preset.learning_rate),
            probe=bool(self.probe),
            ogm_alpha=float(self.ogm_alpha),
            refit=bool(self.refit),
        )
        if config.epochs < 1 or config.batch_size < 1:
            raise ExperimentError("epochs and batch size must be at least 1")
        if config.alpha < 0 or config.learning_rate <= 0 or config.ogm_alpha < 0:
            raise ExperimentError(
                "alpha and ogm_alpha must be >= 0 and the learning rate > 0"
            )
        return config

    def to_dict(self):
        """The settings as a JSON-serializable dict."""
        config = dataclasses.asdict(self)
        config["methods"] = list(config["methods"])
        if not isinstance(config["seeds"], int):
            config["seeds"] = list(config["seeds"])
        return config


def _seed_list(seeds):
    if isinstance(seeds, bool):
        raise ExperimentError(f"seeds must be a count or a list; got {seeds!r}")
    if isinstance(seeds, int):
        if seeds < 1:
            raise ExperimentError(f"--seeds must be at least 1; got {seeds}")
        return tuple(range(seeds))
    seeds = tuple(int(s) for s in seeds)
    if not seeds or len(set(seeds)) != len(seeds):
        raise ExperimentError(f"seeds must be distinct and non-empty; got {seeds}")
    return seeds


@dataclasses.dataclass(frozen=True)
class _Run:
    method: str
    seed: int
    modality: Optional[str] = None  # unimodal baselines only

    @property
    def row(self):
        """The table row this run belongs to."""
        return f"unimodal {self.modality}" if self.modality else self.method

    @property
    def name(self):
        kind = f"unimodal_{self.modality}" if self.modality else self.method
        return f"{kind}-seed{self.seed}"


# Data and models -------------------------------------------------------------


def load_splits(config, seed):
    """Loads the data splits of one seed.

    Args:
        config: a resolved `ExperimentConfig`.
        seed: int. The split seed.

    Returns:
        A `keras_dgl.datasets.DatasetSplits`.

    Raises:
        ExperimentError: the data cannot be found or read.

    Example:

    ```python
    config = ExperimentConfig(dataset="synthetic").resolved()
    splits = load_splits(config, seed=0)
    ```
    """
    options = dict(config.data_options)
    options.setdefault("batch_size", config.batch_size)
    name = config.dataset
    try:
        if name == "smartwatch":
            if config.data_dir:
                path = config.data_dir
                if os.path.isdir(path):
                    path = os.path.join(path, "watch_dataset.npy")
                options.setdefault("data_path", path)
            return dgl_datasets.smartwatch(split_seed=seed, **options)
        if name == "synthetic":
            splits = dgl_datasets.synthetic(seed=seed, **options)
            if splits.task != "classification":
                # Every score the runner prints is an accuracy.
                raise ValueError(
                    f"keras-dgl train compares classification runs; "
                    f"task={splits.task!r} is available from Python "
                    "(keras_dgl.datasets.synthetic(task=...) with DGLModel)"
                )
            return splits
        loader = {
            "crema-d": dgl_datasets.crema_d,
            "kinetics-sounds": dgl_datasets.kinetics_sounds,
            "ave": dgl_datasets.ave,
        }[name]
        return loader(config.data_dir, split_seed=seed, **options)
    except (OSError, ValueError, ImportError) as error:
        raise ExperimentError(f"cannot load {name} data: {error}") from error
    except TypeError as error:
        # An unknown --data-option reaches the loader as a keyword argument.
        raise ExperimentError(f"bad data option for {name}: {error}") from error


def make_encoder(dataset, input_shape):
    """The encoder the experiment uses for one modality of `dataset`.

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
    if dataset == "smartwatch":
        # A third of the library default's width: same accuracy on this
        # small data, several times faster on CPU.
        return dgl_encoders.Conv1DEncoder(filters=(16, 32, 64), kernel_size=5)
    if dataset == "synthetic":
        return dgl_encoders.MLPEncoder(hidden_units=(64, 32))
    return dgl_encoders.ResNet18(input_channels=int(input_shape[-1]))


def make_fusion(config, num_classes):
    """The fusion layer named by `config.fusion`, sized for the dataset.

    Args:
        config: a resolved `ExperimentConfig`.
        num_classes: int. Number of classes.

    Returns:
        A new `keras_dgl.layers.FusionLayer`.

    Example:

    ```python
    fusion = make_fusion(ExperimentConfig(fusion="gated").resolved(), 7)
    ```
    """
    classes = {
        "sum": dgl_layers.SumFusion,
        "concat": dgl_layers.ConcatFusion,
        "gated": dgl_layers.GatedFusion,
        "film": dgl_layers.FiLMFusion,
        "attention": dgl_layers.AttentionFusion,
    }
    kwargs = PRESETS[config.dataset].fusion_kwargs.get(config.fusion, {})
    return classes[config.fusion](num_classes=num_classes, **kwargs)


def _make_optimizer(config):
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(
            config.learning_rate,
            momentum=0.9,
            weight_decay=PRESETS[config.dataset].weight_decay,
        )
    return keras.optimizers.Adam(config.learning_rate)


def build_model(config, run, splits, **model_kwargs):
    """Builds and compiles the model of one run.

    Multimodal methods get a `keras_dgl.DGLModel`; a unimodal baseline gets
    a functional `keras.Model`: the same encoder plus a `Dense` head.

    Args:
        config: a resolved `ExperimentConfig`.
        run: the run, with `method`, `seed` and (baselines only) `modality`.
        splits: the `DatasetSplits` (for input shapes and class count).
        **model_kwargs: `keras_dgl.DGLModel` arguments over the run's
            (e.g. gblend's `alpha` dict and `fused_weight`).

    Returns:
        `(model, encoders)`: the compiled, built model and a dict of its
        encoders by modality (for the linear probe).

    Example:

    ```python
    config = ExperimentConfig(dataset="synthetic").resolved()
    splits = load_splits(config, seed=0)
    model, encoders = build_model(config, _Run("dgl", seed=0), splits)
    ```
    """
    shapes = {name: tuple(shape) for name, shape in splits.input_shapes.items()}
    if run.modality is None:
        encoders = {name: make_encoder(config.dataset, s) for name, s in shapes.items()}
        kwargs = {"alpha": config.alpha, "method": run.method, "name": run.method}
        if run.method in ("ogm", "ogm_ge"):
            kwargs["ogm_alpha"] = config.ogm_alpha
        kwargs.update(model_kwargs)
        model = DGLModel(encoders, make_fusion(config, splits.num_classes), **kwargs)
        model.build({name: (None,) + s for name, s in shapes.items()})
    else:
        encoder = make_encoder(config.dataset, shapes[run.modality])
        encoders = {run.modality: encoder}
        inputs = keras.Input(shapes[run.modality], name=run.modality)
        logits = keras.layers.Dense(splits.num_classes, name="head")(encoder(inputs))
        model = keras.Model(inputs, logits, name=f"unimodal_{run.modality}")
    model.compile(
        optimizer=_make_optimizer(config),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model, encoders


def _select(dataset, modality):
    """A split's `(features, label)` batches reduced to one modality."""
    if modality is None or dataset is None:
        return dataset
    return dataset.map(lambda features, label: (features[modality], label))


# Callbacks ---------------------------------------------------------------------


class _RunRecorder(keras.callbacks.Callback):
    """Records every epoch's logs and keeps the best validation weights.

    Its state lives in the run folder, so it survives an interruption: on
    resume the best epoch so far is still known and still on disk (an
    `EarlyStopping(restore_best_weights=True)` would forget epochs from
    before the restart).
    """

    def __init__(self, run_dir, monitor="val_accuracy"):
        super().__init__()
        self.run_dir = run_dir
        self.monitor = monitor
        self.history_path = os.path.join(run_dir, "history.json")
        self.best_path = os.path.join(run_dir, "best.json")
        self.weights_path = os.path.join(run_dir, "best.weights.h5")
        self.history = {}
        self.best = None

    def on_train_begin(self, logs=None):
        self.history = _read_json(self.history_path) or {}
        self.best = _read_json(self.best_path)

    def on_epoch_end(self, epoch, logs=None):
        logs = {key: float(value) for key, value in (logs or {}).items()}
        if self.monitor not in logs:
            raise ExperimentError(
                f"'{self.monitor}' is not logged; the data set needs a "
                "validation split to choose the epoch"
            )
        self.history[str(epoch)] = logs
        _write_json(self.history_path, self.history)
        value = logs[self.monitor]
        # Strictly better only: ties keep the earlier (cheaper) epoch.
        if self.best is None or value > self.best["value"]:
            partial = os.path.join(self.run_dir, "best-partial.weights.h5")
            self.model.save_weights(partial)
            os.replace(partial, self.weights_path)
            self.best = {"epoch": epoch, "value": value}
            _write_json(self.best_path, self.best)


def _lr_drop(config):
    """SGD's step schedule: x0.1 at a fraction of the budget (published)."""
    fraction = PRESETS[config.dataset].lr_drop_fraction
    if config.optimizer != "sgd" or fraction is None:
        return None
    drop_epoch = int(round(fraction * config.epochs))
    base = config.learning_rate
    return keras.callbacks.LearningRateScheduler(
        # A function of the absolute epoch, so it survives a resume.
        lambda epoch: base * (0.1 if epoch >= drop_epoch else 1.0)
    )


# Running ---------------------------------------------------------------------


def run_experiment(config, verbose=2, callbacks=None, log=print):
    """Trains and scores every run of an experiment; resumes where it stopped.

    Runs whose `result.json` exists in `out` are not trained again; a run
    with a `BackupAndRestore` backup continues after its last completed
    epoch. Writes the files listed in this module's docstring.

    Args:
        config: `ExperimentConfig`.
        verbose: int. Keras `fit` verbosity (1: progress bar, 2: one line
            per epoch, 0: silent). Defaults to `2`.
        callbacks: `None`, a list of Keras callbacks, or a callable taking
            the run's name and returning such a list. Added to every `fit`
            after the experiment's own callbacks.
        log: callable taking one string, for progress messages. Defaults
            to `print`.

    Returns:
        A dict: `config` (resolved, as a dict), `backend`, `runs` (one
        record per run; multimodal ones also hold `gradient_ratio` per
        epoch, `contribution`, `refit` and, for gblend, `gblend`),
        `summary` (mean and std per table row and column, `<method> +
        refit` rows included), `gain` (DGL minus joint per split, when both
        ran), `refit_gain` (per method, refit minus plain fused accuracy
        per split), `diagnostics` (per method and modality, the
        contribution drop and the gradient ratio at the chosen epoch) and
        `table` (the printed text).

    Raises:
        ExperimentError: bad settings, missing data, or an `out` folder
            that holds another experiment.

    Example:

    ```python
    config = ExperimentConfig(dataset="synthetic", epochs=2, seeds=1,
                              out="/tmp/dgl-demo")
    results = run_experiment(config, verbose=0)
    results["summary"]["dgl"]["fused"]["mean"]
    ```
    """
    config = config.resolved()
    out = os.path.abspath(config.out)
    _claim_folder(out, config)
    alpha_changed = config.alpha != PRESETS[config.dataset].alpha
    if config.optimizer == "adam" and alpha_changed and "dgl" in config.methods:
        log(
            "note: with Adam, alpha does not change DGL training (each "
            "parameter sees one loss term and Adam ignores its scale); use "
            "--optimizer sgd for alpha to act as an encoder learning-rate factor "
            "(it does still weight the unimodal losses of joint_aux)"
        )

    records = []
    done = 0
    for seed in config.seeds:
        splits = None
        modalities = _read_json(os.path.join(out, "modalities.json"))
        if modalities is None and "unimodal" in config.methods:
            splits = load_splits(config, seed)
            modalities = sorted(splits.input_shapes)
            _write_json(os.path.join(out, "modalities.json"), modalities)
        runs = [_Run(m, seed) for m in config.methods if m != "unimodal"]
        if "unimodal" in config.methods:
            runs += [_Run("unimodal", seed, name) for name in modalities]
        total = len(runs) * len(config.seeds)
        for run in runs:
            done += 1
            counter = f"[{done}/{total}]"
            run_dir = os.path.join(out, "runs", run.name)
            result = _read_json(os.path.join(run_dir, "result.json"))
            if result is not None:
                log(f"{counter} {run.name}: already done, skipped")
                records.append(result)
                continue
            if splits is None:
                splits = load_splits(config, seed)
            extra = callbacks(run.name) if callable(callbacks) else callbacks
            records.append(
                _train_run(config, run, splits, out, verbose, extra or [], log, counter)
            )
    results = summarize(records, config)
    _write_outputs(out, config, results)
    log(results["table"])
    log(f"Results, plots and TensorBoard logs: {out}")
    return results


def _claim_folder(out, config):
    """Checks that `out` is empty or holds this same experiment."""
    path = os.path.join(out, "experiment.json")
    mine = {
        key: value
        for key, value in config.to_dict().items()
        if key not in _NOT_FINGERPRINTED
    }
    mine["backend"] = keras.backend.backend()
    # Through JSON, so tuples compare equal to the lists read back.
    mine = json.loads(json.dumps(mine, default=_json_default))
    theirs = _read_json(path)
    if theirs is not None:
        for key, value in _ADDED_SETTINGS.items():
            if key not in theirs and mine.get(key) == value:
                theirs[key] = value
    if theirs is not None and theirs != mine:
        changed = sorted(k for k in set(mine) | set(theirs)
                         if mine.get(k) != theirs.get(k))
        raise ExperimentError(
            f"{out} holds results of different settings ({', '.join(changed)} "
            "differ); use another --out or delete it"
        )
    os.makedirs(out, exist_ok=True)
    _write_json(path, mine)


def _train_run(config, run, splits, out, verbose, extra_callbacks, log, counter):
    run_dir = os.path.join(out, "runs", run.name)
    backup_dir = os.path.join(run_dir, "backup")
    tensorboard_dir = os.path.join(out, "tensorboard", run.name)
    metadata = _read_json(os.path.join(backup_dir, "training_metadata.json"))
    if metadata is None:
        # A fresh start: drop what an attempt killed before its first
        # completed epoch may have left.
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.rmtree(tensorboard_dir, ignore_errors=True)
        log(f"{counter} {run.name}: training {config.epochs} epochs")
    elif metadata["epoch"] >= config.epochs:
        log(f"{counter} {run.name}: all {config.epochs} epochs done; scoring")
    else:
        log(f"{counter} {run.name}: resuming after epoch {metadata['epoch']} "
            f"of {config.epochs}")
    os.makedirs(run_dir, exist_ok=True)

    blend = None
    overrides = {}
    if run.method == "gblend":
        blend = _gblend_weights(config, run, splits, run_dir, log, counter)
        weights = dict(blend["weights"])
        overrides = {"fused_weight": weights.pop("fused"), "alpha": weights}

    keras.utils.clear_session()
    # The same seed for every method of a split: same initial encoders for
    # DGL and joint, so their difference is paired.
    keras.utils.set_random_seed(run.seed)
    model, encoders = build_model(config, run, splits, **overrides)
    recorder = _RunRecorder(run_dir)
    own = [
        recorder,
        keras.callbacks.TensorBoard(tensorboard_dir, write_graph=False),
        # Last of ours: an epoch counts as completed only once recorded.
        keras.callbacks.BackupAndRestore(backup_dir, delete_checkpoint=False),
    ]
    if run.modality is None:
        # Before the recorder: its epoch-end ratios join the logs, and so the
        # history file, which (unlike the monitor) survives a resume. Epoch
        # ends only: E + 1 measurements on one batch cost well under a
        # percent of a run; per-step ones would cost more and not survive.
        probe_batch = next(_plain_batches(splits, "validation", config.batch_size))
        own.insert(0, GradientMonitor(probe_batch))
    schedule = _lr_drop(config)
    if schedule is not None:
        own.insert(0, schedule)
    started = time.time()
    model.fit(
        _select(splits.train, run.modality),
        validation_data=_select(splits.validation, run.modality),
        epochs=config.epochs,
        callbacks=own + list(extra_callbacks),
        verbose=verbose,
        # The pipelines shuffle themselves.
        shuffle=False,
    )
    seconds = time.time() - started
    if recorder.best is None:
        raise ExperimentError(f"{run.name}: no epoch was recorded")
    model.load_weights(recorder.weights_path)

    history = _history_lists(recorder.history)
    result = {
        "run": run.name,
        "row": run.row,
        "method": run.method,
        "modality": run.modality,
        "seed": run.seed,
        "test_accuracy": _test_accuracy(model, run, splits),
        "probe_accuracy": (
            _probe_accuracy(encoders, splits, config.batch_size)
            if config.probe else {}
        ),
        # 1-based, as Keras prints epochs.
        "best_epoch": recorder.best["epoch"] + 1,
        "best_val_accuracy": recorder.best["value"],
        "epochs": config.epochs,
        "train_seconds": round(seconds, 1),
        "history": history,
    }
    if run.modality is None:
        result["gradient_ratio"] = {
            name: history[f"{name}_grad_ratio"]
            for name in model.modality_names
            if f"{name}_grad_ratio" in history
        }
        result["contribution"] = modality_contribution(
            model, _plain_batches(splits, "test", _INFERENCE_BATCH), mode="zero"
        )
        if blend is not None:
            result["gblend"] = blend
        if config.refit:
            # Last: it changes the fusion weights, and everything above
            # belongs to the plain model.
            result["refit"] = _refit(model, run, splits, log, counter)
    _write_json(os.path.join(run_dir, "result.json"), result)
    # Only now is the run complete; its backup is no longer needed.
    shutil.rmtree(backup_dir, ignore_errors=True)
    return result


def _gblend_weights(config, run, splits, run_dir, log, counter):
    """Gradient-Blending loss weights of a gblend run, estimated once.

    Each loss term is trained alone on a fresh model for the run's epochs
    and scored on the validation split (`keras_dgl.gblend_weights`). Saved
    in the run folder, so a resumed run trains with the same weights.
    """
    path = os.path.join(run_dir, "gblend.json")
    blend = _read_json(path)
    if blend is not None:
        return blend
    log(f"{counter} {run.name}: estimating Gradient-Blending weights "
        f"({config.epochs} epochs per loss term)")
    keras.utils.clear_session()
    keras.utils.set_random_seed(run.seed)

    def builder(**kwargs):
        return build_model(config, run, splits, **kwargs)[0]

    blend = gblend_weights(builder, splits.train, splits.validation,
                           epochs=config.epochs)
    _write_json(path, blend)
    return blend


def _refit(model, run, splits, log, counter):
    """Refits the fusion layer on frozen encoder features; scores it again."""
    started = time.time()
    outcome = model.refit_fusion(
        _plain_batches(splits, "train", _INFERENCE_BATCH),
        _plain_batches(splits, "validation", _INFERENCE_BATCH),
        epochs=_REFIT_EPOCHS,
        patience=_REFIT_PATIENCE,
    )
    fused = _test_accuracy(model, run, splits)["fused"]
    before, after = outcome["before"], outcome["after"]
    log(f"{counter} {run.name}: fusion refit, epoch {outcome['best_epoch']} of "
        f"{outcome['epochs_run']} kept (validation loss "
        f"{before['val_loss']:.4f} -> {after['val_loss']:.4f})")
    return {
        "test_accuracy": {"fused": fused},
        # 0: the trained fusion weights were kept.
        "best_epoch": outcome["best_epoch"],
        "epochs_run": outcome["epochs_run"],
        "val_loss": [before["val_loss"], after["val_loss"]],
        "val_accuracy": [before["val_accuracy"], after["val_accuracy"]],
        "seconds": round(time.time() - started, 1),
    }


def _labels(dataset):
    return np.concatenate([y for _, y in dataset.as_numpy_iterator()])


def _test_accuracy(model, run, splits):
    labels = _labels(splits.test)
    if run.modality is not None:
        logits = model.predict(_select(splits.test, run.modality), verbose=0)
        return {run.modality: _accuracy(logits, labels)}
    predictions = model.predict_modalities(splits.test, verbose=0)
    return {name: _accuracy(logits, labels) for name, logits in predictions.items()}


def _accuracy(logits, labels):
    return float(np.mean(np.argmax(np.asarray(logits), axis=-1) == labels))


def _probe_accuracy(encoders, splits, batch_size):
    """Linear probe: logistic regression on frozen features, per encoder.

    The fusion layer's own per-modality prediction (other modalities
    zeroed) understates a jointly trained encoder; a probe measures what
    its features hold.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    # Inference only: larger batches than training cost less per example.
    batch_size = max(256, batch_size)
    train = _features(encoders, _plain_batches(splits, "train", batch_size))
    test = _features(encoders, _plain_batches(splits, "test", batch_size))
    scores = {}
    # One BLAS thread: these fits are small, and BLAS threads spinning beside
    # TensorFlow's made them 40x slower on two cores.
    with threadpool_limits(1):
        for name in encoders:
            probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
            probe.fit(train[0][name], train[1])
            scores[name] = float(probe.score(test[0][name], test[1]))
    return scores


def _plain_batches(splits, split, batch_size):
    """Unshuffled, un-augmented `(features, labels)` NumPy batches."""
    source = splits.sources.get(split)
    if isinstance(source, tuple):
        features, labels = source
        for start in range(0, len(labels), batch_size):
            stop = start + batch_size
            yield {k: v[start:stop] for k, v in features.items()}, labels[start:stop]
        return
    dataset = source() if callable(source) else getattr(splits, split)
    yield from dataset.as_numpy_iterator()


def _features(encoders, batches):
    features = {name: [] for name in encoders}
    labels = []
    for x, y in batches:
        for name, encoder in encoders.items():
            value = encoder(x[name], training=False)
            features[name].append(keras.ops.convert_to_numpy(value))
        labels.append(np.asarray(y))
    return (
        {name: np.concatenate(parts) for name, parts in features.items()},
        np.concatenate(labels),
    )


def _history_lists(history):
    """`{epoch: logs}` to `{metric: [value per epoch]}`."""
    epochs = sorted(history, key=int)
    keys = sorted({key for epoch in epochs for key in history[epoch]})
    return {
        key: [history[epoch].get(key, math.nan) for epoch in epochs]
        for key in keys
    }


# Summaries ---------------------------------------------------------------------


_REFIT_SUFFIX = " + refit"


def _table_rows(records):
    """The table rows' records: every run, plus `<row> + refit` views."""
    rows = []
    for record in records:
        rows.append(record)
        refit = record.get("refit")
        if refit:
            rows.append({
                "row": record["row"] + _REFIT_SUFFIX,
                "seed": record["seed"],
                "test_accuracy": refit["test_accuracy"],
                # The refit leaves the encoders, hence the probes, unchanged.
                "probe_accuracy": {},
            })
    return rows


def _row_order(rows, config):
    multimodal = [m for m in config.methods if m != "unimodal"]
    order = multimodal + [m + _REFIT_SUFFIX for m in multimodal]
    order += sorted({r["row"] for r in rows if r["row"].startswith("unimodal ")})
    return [row for row in order if any(r["row"] == row for r in rows)]


def _modalities(records):
    return sorted({k for r in records for k in r["test_accuracy"]} - {"fused"})


def _columns(records, probe):
    modalities = _modalities(records)
    columns = ["fused"] + modalities
    if probe:
        columns += [f"probe {m}" for m in modalities]
    return columns


def _value(record, column):
    if column.startswith("probe "):
        return record["probe_accuracy"].get(column[len("probe "):])
    return record["test_accuracy"].get(column)


def _stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    array = np.asarray(values, dtype=float)
    # Sample standard deviation across splits; undefined for one split.
    std = float(array.std(ddof=1)) if len(array) > 1 else None
    return {"mean": float(array.mean()), "std": std, "n": len(array),
            "values": [float(v) for v in values]}


def _paired(by_run, seeds, row_a, row_b, column):
    """`{seeds, per_seed, mean, std, ...}` of `row_a - row_b`, split by split."""
    paired = [s for s in seeds if (row_a, s) in by_run and (row_b, s) in by_run]
    diffs = []
    for seed in paired:
        a = _value(by_run[(row_a, seed)], column)
        b = _value(by_run[(row_b, seed)], column)
        diffs.append(None if a is None or b is None else a - b)
    if not paired or any(d is None for d in diffs):
        return None
    return {"seeds": paired, **_stats(diffs), "per_seed": diffs}


def _grad_ratio_at_best(record, modality):
    """The encoder's gradient ratio at the run's chosen epoch, if measured."""
    series = record.get("gradient_ratio", {}).get(modality)
    index = record["best_epoch"] - 1
    if not series or index >= len(series) or series[index] is None:
        return None
    value = float(series[index])
    return value if math.isfinite(value) else None


def _diagnostics(records, methods):
    """Per method and modality: contribution drop and gradient ratio stats."""
    modalities = _modalities(records)
    diagnostics = {}
    for method in methods:
        runs = [r for r in records if r["row"] == method]
        entry = {
            "drop": {
                m: _stats([r["contribution"]["drop"].get(m) for r in runs
                           if r.get("contribution")])
                for m in modalities
            },
            "grad_ratio": {
                m: _stats([_grad_ratio_at_best(r, m) for r in runs])
                for m in modalities
            },
        }
        if any(v is not None for part in entry.values() for v in part.values()):
            diagnostics[method] = entry
    return diagnostics


def summarize(records, config):
    """Means over splits per method, the paired gains, the table.

    Args:
        records: list of run records (as in `results["runs"]`).
        config: the resolved `ExperimentConfig`.

    Returns:
        A dict with `config`, `backend`, `runs`, `summary`, `gain`,
        `refit_gain`, `diagnostics` and `table`; see `run_experiment`.

    Example:

    ```python
    results = summarize(results["runs"], config.resolved())
    print(results["table"])
    ```
    """
    table_rows = _table_rows(records)
    rows = _row_order(table_rows, config)
    columns = _columns(records, config.probe)
    summary = {
        row: {
            column: _stats([_value(r, column) for r in table_rows if r["row"] == row])
            for column in columns
        }
        for row in rows
    }
    by_run = {(r["row"], r["seed"]): r for r in table_rows}
    gain = None
    paired = [s for s in config.seeds if ("dgl", s) in by_run and ("joint", s) in by_run]
    if paired:
        gain = {"seeds": paired, "columns": {}}
        for column in columns:
            stats = _paired(by_run, paired, "dgl", "joint", column)
            if stats is not None:
                gain["columns"][column] = {
                    k: v for k, v in stats.items() if k != "seeds"
                }
    multimodal = [m for m in config.methods if m != "unimodal"]
    refit_gain = {}
    for method in multimodal:
        stats = _paired(by_run, config.seeds, method + _REFIT_SUFFIX, method, "fused")
        if stats is not None:
            refit_gain[method] = stats
    results = {
        "config": config.to_dict(),
        "backend": keras.backend.backend(),
        "runs": sorted(records, key=lambda r: (r["seed"], r["run"])),
        "summary": summary,
        "gain": gain,
        "refit_gain": refit_gain,
        "diagnostics": _diagnostics(records, multimodal),
    }
    results["table"] = format_table(results, columns, rows)
    return results


def _percent(stats, signed=False):
    if stats is None:
        return "-"
    sign = "+" if signed else ""
    text = f"{100 * stats['mean']:{sign}.1f}"
    if stats["std"] is not None:
        text += f" ± {100 * stats['std']:.1f}"
    return text


def _ratio(stats):
    if stats is None:
        return "-"
    text = f"{stats['mean']:.2f}"
    if stats["std"] is not None:
        text += f" ± {stats['std']:.2f}"
    return text


def format_table(results, columns, rows):
    """The printed comparison: test accuracy per method, gains, diagnostics."""
    config = results["config"]
    seeds = config["seeds"]
    widths = {c: max(14, len(c) + 2) for c in columns}
    first = max([24] + [len(r) + 2 for r in rows])
    lines = [
        f"Test accuracy (%) on {config['dataset']}, {config['fusion']} fusion, "
        f"{config['epochs']} epochs, {config['optimizer']} lr "
        f"{config['learning_rate']:g}, alpha {config['alpha']:g}, backend "
        f"{results['backend']}: mean ± std over {len(seeds)} split(s), "
        f"seeds {', '.join(str(s) for s in seeds)}",
        "method".ljust(first) + "".join(c.rjust(widths[c]) for c in columns),
    ]
    for row in rows:
        stats = results["summary"][row]
        lines.append(
            row.ljust(first)
            + "".join(_percent(stats[c]).rjust(widths[c]) for c in columns)
        )
    gain = results["gain"]
    if gain and gain["columns"]:
        gain_columns = [c for c in columns if c in gain["columns"]]
        lines += [
            "",
            "DGL - joint, paired by split (accuracy points)",
            "split".ljust(first) + "".join(c.rjust(widths[c]) for c in gain_columns),
        ]
        for index, seed in enumerate(gain["seeds"]):
            lines.append(
                f"seed {seed}".ljust(first)
                + "".join(
                    f"{100 * gain['columns'][c]['per_seed'][index]:+.1f}".rjust(widths[c])
                    for c in gain_columns
                )
            )
        lines.append(
            "mean ± std".ljust(first)
            + "".join(_percent(gain["columns"][c], signed=True).rjust(widths[c])
                      for c in gain_columns)
        )
    refit_gain = results.get("refit_gain") or {}
    if refit_gain:
        refit_seeds = sorted({s for g in refit_gain.values() for s in g["seeds"]})
        headers = [f"seed {s}" for s in refit_seeds] + ["mean ± std"]
        width = 14
        lines += [
            "",
            "Refit gain: <method> + refit - <method>, fused, by split "
            "(accuracy points)",
            "method".ljust(first) + "".join(h.rjust(width) for h in headers),
        ]
        for method, stats in refit_gain.items():
            by_seed = dict(zip(stats["seeds"], stats["per_seed"]))
            cells = [
                "-" if s not in by_seed else f"{100 * by_seed[s]:+.1f}"
                for s in refit_seeds
            ]
            cells.append(_percent(stats, signed=True))
            lines.append(method.ljust(first) + "".join(c.rjust(width) for c in cells))
    diagnostics = results.get("diagnostics") or {}
    if diagnostics:
        modalities = [c for c in columns if c != "fused" and not c.startswith("probe ")]
        headers = [f"drop {m}" for m in modalities]
        headers += [f"grad ratio {m}" for m in modalities]
        widths_d = {h: max(14, len(h) + 2) for h in headers}
        lines += [
            "",
            "Modality diagnostics, mean ± std over splits",
            "method".ljust(first) + "".join(h.rjust(widths_d[h]) for h in headers),
        ]
        for method, entry in diagnostics.items():
            cells = [_percent(entry["drop"].get(m)) for m in modalities]
            cells += [_ratio(entry["grad_ratio"].get(m)) for m in modalities]
            lines.append(
                method.ljust(first)
                + "".join(c.rjust(widths_d[h]) for c, h in zip(cells, headers))
            )
    lines += [
        "",
        "fused: the model's prediction; <modality>: its prediction from that "
        "modality alone (multimodal models: the fusion weights with the other "
        "modalities zeroed);",
        "probe <modality>: logistic regression on the frozen encoder's "
        "features (fitted on the training split). Each run's epoch is chosen "
        "on validation accuracy.",
    ]
    if not config["probe"]:
        lines.pop()
        lines[-1] = lines[-1].rstrip(";") + "."
    if refit_gain or any(r.endswith(_REFIT_SUFFIX) for r in rows):
        lines.append(
            "<method> + refit: that model after refitting its fusion layer on "
            f"frozen encoder features (at most {_REFIT_EPOCHS} epochs, kept on "
            "validation loss); its encoders and probes are unchanged."
        )
    if diagnostics:
        lines.append(
            "drop <modality>: fused accuracy points lost with that modality's "
            "input zeroed at test time; grad ratio <modality>: norm of the "
            "gradient its encoder would get from the multimodal loss over that "
            "from its own unimodal loss, at the chosen epoch, on one validation "
            "batch (below 1: fusion shrinks it)."
        )
    return "\n".join(lines)


# Files ---------------------------------------------------------------------------


def _write_outputs(out, config, results):
    _write_json(os.path.join(out, "results.json"), results)
    with open(os.path.join(out, "table.txt"), "w") as handle:
        handle.write(results["table"] + "\n")
    _write_csv(os.path.join(out, "results.csv"), results["runs"], config.probe)
    plot_validation_curves(results, os.path.join(out, "validation_accuracy.png"))
    plot_comparison(results, os.path.join(out, "comparison.png"))
    plot_method_gradient_ratios(results, out)


def _write_csv(path, records, probe):
    modalities = _modalities(records)
    header = ["run", "method", "modality", "seed", "fused_accuracy"]
    header += [f"{m}_accuracy" for m in modalities]
    if probe:
        header += [f"probe_{m}_accuracy" for m in modalities]
    header += ["best_epoch", "best_val_accuracy", "epochs", "train_seconds"]
    header += ["refit_fused_accuracy", "refit_best_epoch"]
    header += [f"drop_{m}" for m in modalities]
    header += [f"grad_ratio_{m}" for m in modalities]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for r in records:
            row = [r["run"], r["method"], r["modality"] or "", r["seed"],
                   _cell(r["test_accuracy"].get("fused"))]
            row += [_cell(r["test_accuracy"].get(m)) for m in modalities]
            if probe:
                row += [_cell(r["probe_accuracy"].get(m)) for m in modalities]
            row += [r["best_epoch"], _cell(r["best_val_accuracy"]), r["epochs"],
                    r["train_seconds"]]
            refit = r.get("refit") or {}
            row += [_cell(refit.get("test_accuracy", {}).get("fused")),
                    refit.get("best_epoch", "")]
            drop = (r.get("contribution") or {}).get("drop", {})
            row += [_cell(drop.get(m)) for m in modalities]
            ratios = [_grad_ratio_at_best(r, m) for m in modalities]
            row += ["" if v is None else f"{v:.4g}" for v in ratios]
            writer.writerow(row)


def _cell(value):
    return "" if value is None else f"{value:.4f}"


def _pyplot():
    import matplotlib

    # No display on servers; plots go to files only.
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _validation_series(record, column):
    history = record["history"]
    if record["modality"] is not None:
        key = "val_accuracy" if column == record["modality"] else None
    else:
        key = "val_accuracy" if column == "fused" else f"val_{column}_accuracy"
    return history.get(key) if key else None


def _row_colors(results):
    """One color per method row, the same in every plot."""
    palette = [f"C{index % 10}" for index in range(len(results["summary"]))]
    return dict(zip(results["summary"], palette))


def plot_validation_curves(results, path):
    """Validation accuracy over epochs: one panel per prediction, one line per method.

    Lines are means over splits, with the spread (min to max) shaded.

    Args:
        results: dict returned by `run_experiment` or `summarize`.
        path: str. PNG file to write.
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    records = results["runs"]
    panels = ["fused"] + sorted(
        {k for r in records for k in r["test_accuracy"]} - {"fused"}
    )
    figure, axes = plt.subplots(
        1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False
    )
    colors = _row_colors(results)
    for axis, panel in zip(axes[0], panels):
        for row in results["summary"]:
            curves = [
                _validation_series(r, panel) for r in records if r["row"] == row
            ]
            curves = [c for c in curves if c]
            if not curves:
                continue
            length = min(len(c) for c in curves)
            values = 100 * np.array([c[:length] for c in curves])
            epochs = np.arange(1, length + 1)
            axis.plot(epochs, values.mean(0), label=row, color=colors[row],
                      marker="." if length < 30 else None)
            if len(curves) > 1:
                axis.fill_between(epochs, values.min(0), values.max(0),
                                  color=colors[row], alpha=0.15)
        axis.set_title(panel if panel == "fused" else f"{panel} (its own prediction)")
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylabel("validation accuracy (%)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_comparison(results, path):
    """Bar chart of test accuracy per method and prediction (mean ± std).

    Args:
        results: dict returned by `run_experiment` or `summarize`.
        path: str. PNG file to write.
    """
    plt = _pyplot()
    summary = results["summary"]
    rows = list(summary)
    columns = list(next(iter(summary.values()))) if summary else []
    figure, axis = plt.subplots(figsize=(max(6, 1.6 * len(columns) + 4), 4))
    width = 0.8 / max(1, len(rows))
    colors = _row_colors(results)
    for index, row in enumerate(rows):
        positions, means, errors = [], [], []
        for c_index, column in enumerate(columns):
            stats = summary[row][column]
            if stats is None:
                continue
            positions.append(c_index + (index - (len(rows) - 1) / 2) * width)
            means.append(100 * stats["mean"])
            errors.append(100 * (stats["std"] or 0.0))
        axis.bar(positions, means, width, yerr=errors, capsize=3, label=row,
                 color=colors[row])
    axis.set_xticks(range(len(columns)))
    axis.set_xticklabels(columns)
    axis.set_ylabel("test accuracy (%)")
    config = results["config"]
    axis.set_title(
        f"{config['dataset']}, {config['fusion']} fusion, "
        f"{len(config['seeds'])} split(s)"
    )
    axis.grid(axis="y", alpha=0.3)
    # Outside the axes: inside, it would cover bars.
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_method_gradient_ratios(results, out):
    """One PNG per multimodal method: each encoder's gradient ratio per epoch.

    Writes `gradient_ratio_<method>.png` in `out` with one line per split
    (`keras_dgl.diagnostics.plot_gradient_ratios`), for every method whose
    runs recorded ratios.

    Args:
        results: dict returned by `run_experiment` or `summarize`.
        out: str. Output folder.

    Returns:
        The list of written paths.
    """
    written = []
    for method in results.get("diagnostics") or {}:
        histories = {
            f"seed {r['seed']}": {
                f"{name}_grad_ratio": values
                for name, values in r["gradient_ratio"].items()
            }
            for r in results["runs"]
            if r["row"] == method and r.get("gradient_ratio")
        }
        if not histories:
            continue
        path = os.path.join(out, f"gradient_ratio_{method}.png")
        plot_gradient_ratios(
            histories, path,
            title=f"{method}: multimodal / unimodal gradient norm per encoder",
        )
        written.append(path)
    return written


def _read_json(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None
    except json.JSONDecodeError:
        # A file cut short by a kill: treat as absent, it is rewritten.
        return None


def _write_json(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = path + ".partial"
    with open(partial, "w") as handle:
        json.dump(value, handle, indent=1, default=_json_default)
    # Atomic: a kill never leaves a half-written result behind.
    os.replace(partial, path)


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")
