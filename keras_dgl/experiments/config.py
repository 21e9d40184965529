"""The settings of one comparison experiment, checked; importing it loads no Keras."""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from typing import Any, Optional

from keras_dgl import registry
from keras_dgl.experiments.errors import ExperimentError
from keras_dgl.experiments.presets import PRESETS

# Settings that do not change what a run computes; a folder may be reused
# with other values of these (more seeds, more methods).
NOT_FINGERPRINTED = ("seeds", "methods", "out")
# Settings added after folders were first written, with the value those
# folders' runs had in effect; a folder without them is not "different".
ADDED_SETTINGS = {
    "ogm_alpha": 0.1,
    "refit": True,
    "refit_epochs": 20,
    "max_probe_examples": None,
    # Folders of that time trained DGL in the published form.
    "unimodal_head": "shared",
    "epoch_choice": "fused",
    # The preset's optimizer recipe beyond the settings (factories.recipe).
    "recipe": {
        "weight_decay": None,
        "global_clipnorm": None,
        "lr_drop_epoch": None,
        "lr_drop_factor": 0.1,
    },
}
DEFAULT_METHODS = ("dgl", "joint", "unimodal")


@dataclasses.dataclass
class ExperimentConfig:
    """Settings of one comparison experiment.

    `None` fields take the dataset's defaults (see `resolved()` and
    `keras_dgl.experiments.presets`).

    Args:
        dataset: str. A key of `keras_dgl.registry.DATASETS`: `"smartwatch"`
            (default), `"synthetic"`, `"crema-d"`, `"kinetics-sounds"`,
            `"ave"`, `"vggsound"`. The audio-visual ones need `data_dir` and use
            `ResNet18` encoders; smartwatch uses `Conv1DEncoder`s, synthetic
            `MLPEncoder`s.
        data_dir: str or `None`. Data folder (audio-visual sets); for
            smartwatch, a folder holding `watch_dataset.npy` or that file.
        data_options: dict. Extra keyword arguments of the dataset loader
            (e.g. `{"window_seconds": 2.0}` for smartwatch), over the
            preset's (smartwatch: `{"overlap": 0.5}`).
        fusion: str. A key of `keras_dgl.registry.FUSIONS`. Defaults to
            `"concat"`.
        alpha: float or `None`. Weight of the unimodal losses (DGL and
            joint_aux). With Adam it does not change DGL; with SGD it
            scales the encoders' learning rate. Not used by gblend, whose
            weights are estimated.
        methods: sequence of keys of `keras_dgl.registry.METHODS`
            (`"unimodal"`: one baseline per modality). Defaults to
            `("dgl", "joint", "unimodal")`.
        epochs: int or `None`. Epochs per run (at least 1).
        batch_size: int or `None` (at least 1).
        seeds: int or sequence of int. An int `n` means seeds `0..n-1`.
            Each seed is one data split and one initialisation.
        optimizer: `"adam"`, `"sgd"` (momentum 0.9) or `None`.
        learning_rate: float or `None` (finite, > 0).
        probe: bool. Also score each trained encoder with a linear probe
            (logistic regression on its frozen features, fitted on the
            training split). Defaults to `True`.
        max_probe_examples: int or `None`. Fit each probe on a uniform
            sample of at most this many training examples, seeded by the
            run's seed (the probes' cost grows with the training split; the
            test split is always scored whole). Without the refit, only the
            sampled examples are encoded. `None` (default): all of them.
        out: str. Output folder. Defaults to `"dgl-results"`.
        ogm_alpha: float. Modulation strength of `"ogm"` and `"ogm_ge"`.
            Defaults to `0.1`.
        refit: bool. After each multimodal run, also refit its fusion
            layer on frozen encoder features and score it again (the
            `<method> + refit` rows). Defaults to `True`.
        refit_epochs: int. Most epochs of each refit (it stops earlier
            after 5 epochs without a lower validation loss; an epoch costs
            Keras' per-epoch overhead more than its few small steps, so this
            cap is what bounds the refit's cost). Defaults to `20`.
        unimodal_head: str. A key of `keras_dgl.registry.UNIMODAL_HEADS`:
            how the `"dgl"` runs' fusion layer predicts from one modality
            (other methods keep the shared form). `"separate"` (default): a
            linear head per modality, and the run's fused path is set to the
            sum of the heads' logits before scoring and refit, where the
            fusion layer can express it (`concat`, `sum`); `"shared"`: the
            published form. See `keras_dgl.experiments.recipe`.
        epoch_choice: str or `None`. A key of
            `keras_dgl.registry.EPOCH_CHOICES`: how a `"dgl"` run's weights
            are chosen among its epochs. `"per-modality"` needs
            `unimodal_head="separate"`. Defaults to `"per-modality"` with
            separate heads, `"fused"` with the shared one.

    Example:

    ```python
    config = keras_dgl.experiments.ExperimentConfig(
        dataset="synthetic", epochs=3, seeds=2, out="/tmp/dgl-synthetic"
    )
    results = keras_dgl.experiments.run_experiment(config)
    print(results["table"])
    ```
    """

    dataset: str = "smartwatch"
    data_dir: Optional[str] = None
    data_options: dict = dataclasses.field(default_factory=dict)
    fusion: str = "concat"
    alpha: Optional[float] = None
    methods: tuple = DEFAULT_METHODS
    epochs: Optional[int] = None
    batch_size: Optional[int] = None
    seeds: Any = 3
    optimizer: Optional[str] = None
    learning_rate: Optional[float] = None
    probe: bool = True
    max_probe_examples: Optional[int] = None
    out: str = "dgl-results"
    ogm_alpha: float = 0.1
    refit: bool = True
    refit_epochs: int = 20
    unimodal_head: str = "separate"
    epoch_choice: Optional[str] = None

    def resolved(self):
        """Returns a checked copy with the dataset's defaults filled in.

        Returns:
            An `ExperimentConfig` with no `None` among `alpha`, `epochs`,
            `batch_size`, `optimizer`, `learning_rate`; `methods` a tuple in
            the registry's order and `seeds` a tuple of ints.

        Raises:
            ExperimentError: an unknown, out-of-range or inconsistent
                setting, naming it.
        """
        dataset = _one_of("dataset", self.dataset, registry.DATASETS)
        preset = PRESETS[self.dataset]
        _one_of("fusion", self.fusion, registry.FUSIONS)
        methods = [self.methods] if isinstance(self.methods, str) else list(self.methods)
        unknown = sorted(set(methods) - set(registry.METHODS))
        if unknown or not methods:
            raise ExperimentError(
                f"unknown methods {unknown or methods}; choose from "
                f"{list(registry.METHODS)}"
            )
        optimizer = preset["optimizer"] if self.optimizer is None else self.optimizer
        _one_of("optimizer", optimizer, registry.OPTIMIZERS)
        if dataset.data_dir == "required" and not self.data_dir:
            raise ExperimentError(
                f"dataset {self.dataset!r} needs --data-dir (the folder with "
                "its train.csv, test.csv, audio/ and visual/)"
            )
        if dataset.data_dir == "none" and self.data_dir:
            raise ExperimentError(f"dataset {self.dataset!r} takes no --data-dir")
        if self.data_dir:
            check_data_dir(self.data_dir)
        _one_of("unimodal_head", self.unimodal_head, registry.UNIMODAL_HEADS)
        epoch_choice = _default(
            self.epoch_choice,
            "per-modality" if self.unimodal_head == "separate" else "fused",
        )
        _one_of("epoch_choice", epoch_choice, registry.EPOCH_CHOICES)
        if epoch_choice == "per-modality" and self.unimodal_head != "separate":
            raise ExperimentError(
                "epoch_choice 'per-modality' needs unimodal_head 'separate' "
                "(with the shared head an encoder's unimodal score depends on "
                "the fusion weights of its epoch); use --unimodal-head separate "
                "or --epoch-choice fused"
            )
        if not isinstance(self.data_options, dict):
            raise ExperimentError(
                f"data_options must be a dict; got {type(self.data_options).__name__}"
            )
        return dataclasses.replace(
            self,
            data_dir=os.path.abspath(self.data_dir) if self.data_dir else None,
            data_options={**preset["data_options"], **self.data_options},
            alpha=check_number("alpha", _default(self.alpha, preset["alpha"]), 0.0),
            methods=tuple(m for m in registry.METHODS if m in methods),
            epochs=check_count("epochs", _default(self.epochs, preset["epochs"])),
            batch_size=check_count(
                "batch size", _default(self.batch_size, preset["batch_size"])
            ),
            seeds=seed_list(self.seeds),
            optimizer=optimizer,
            learning_rate=check_number(
                "learning rate",
                _default(self.learning_rate, preset["learning_rate"]),
                0.0,
                strict=True,
            ),
            probe=bool(self.probe),
            max_probe_examples=(
                None if self.max_probe_examples is None
                else check_count("max_probe_examples", self.max_probe_examples)
            ),
            ogm_alpha=check_number("ogm_alpha", self.ogm_alpha, 0.0),
            refit=bool(self.refit),
            refit_epochs=check_count("refit_epochs", self.refit_epochs),
            epoch_choice=epoch_choice,
        )

    def to_dict(self):
        """The settings as a JSON-serializable dict."""
        config = dataclasses.asdict(self)
        config["methods"] = list(config["methods"])
        if not isinstance(config["seeds"], int):
            config["seeds"] = list(config["seeds"])
        return config

    def fingerprint(self, backend):
        """The settings that define what the runs compute, with the backend."""
        mine = {
            key: value for key, value in self.to_dict().items()
            if key not in NOT_FINGERPRINTED
        }
        mine["backend"] = backend
        return mine


def _default(value, preset_value):
    # `None` only: 0 is a value to check, not "use the preset".
    return preset_value if value is None else value


def _one_of(name, value, table):
    if value not in table:
        raise ExperimentError(f"unknown {name} {value!r}; choose from {list(table)}")
    return table[value]


def check_count(name, value):
    """`value` as an int >= 1; raises `ExperimentError` naming `name` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ExperimentError(f"{name} must be an integer >= 1; got {value!r}")
    return int(value)


def check_number(name, value, minimum, strict=False):
    """`value` as a finite float >= `minimum` (> with `strict`), else an error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ExperimentError(f"{name} must be a number; got {value!r}")
    value = float(value)
    low_ok = value > minimum if strict else value >= minimum
    if not (math.isfinite(value) and low_ok):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise ExperimentError(f"{name} must be a finite number {bound}; got {value!r}")
    return value


def seed_list(seeds):
    """Seeds as a tuple: a count `n` gives `0..n-1`; a list must be distinct ints."""
    if isinstance(seeds, bool):
        raise ExperimentError(f"seeds must be a count or a list; got {seeds!r}")
    if isinstance(seeds, numbers.Integral):
        if seeds < 1:
            raise ExperimentError(f"--seeds must be at least 1; got {seeds}")
        return tuple(range(int(seeds)))
    try:
        values = tuple(seeds)
    except TypeError:
        raise ExperimentError(f"seeds must be a count or a list; got {seeds!r}") from None
    if any(isinstance(s, bool) or not isinstance(s, numbers.Integral) for s in values):
        raise ExperimentError(f"seeds must be integers; got {list(values)}")
    values = tuple(int(s) for s in values)
    if not values or len(set(values)) != len(values):
        raise ExperimentError(f"seeds must be distinct and non-empty; got {values}")
    return values


def check_data_dir(path):
    """Raises `ExperimentError` unless the data folder (or file) exists."""
    if not os.path.exists(path):
        raise ExperimentError(f"data folder not found: {path}")
