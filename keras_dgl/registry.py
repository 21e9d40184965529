"""Every name keras_dgl answers to: methods, fusions, datasets, optimizers, tuners.

The model, the `keras-dgl` command, the tuner, the benchmarks and the tests
all read their names from here, so a name is written once. The module is
plain data and imports nothing beyond the standard library: the command
parses `--backend` before Keras is loaded. Classes and loaders are looked
up by name only when asked for (`model_class`, `fusion_class`,
`dataset_loader`, `tuner_class`), which imports Keras.

Adding a method, fusion layer, dataset or tuner is one entry in the matching
dict below; `tests/test_registry.py` checks that every entry names a real
class or loader and that every fusion layer and dataset loader of the
package has an entry.

Example:

```python
from keras_dgl import registry

registry.multimodal_methods()  # ("dgl", "joint", ...)
registry.METHODS["dgl"].summary
registry.fusion_class("concat")  # keras_dgl.layers.ConcatFusion
```
"""

import dataclasses
import importlib
from typing import Optional

BACKENDS = ("tensorflow", "jax", "torch")


@dataclasses.dataclass(frozen=True)
class Method:
    """A training method: what it changes, its paper and the class that trains it.

    A multimodal method's model is built as
    `keras_dgl.models.<model>(encoders, fusion, method=<name>, alpha=...,
    **{setting: value})`, so a new method is either a new `method` of
    `DGLModel` or a model class with that signature.

    Args:
        summary: str. What the method changes, in one sentence (used by
            `keras-dgl train --help` and the README's table).
        reference: str. The paper ("Authors, Venue Year"), or `"—"`.
        model: str or `None`. Name of the class in `keras_dgl.models` that
            trains it; `None` for the unimodal baselines (one encoder and a
            dense head per modality). Defaults to `"DGLModel"`.
        uses_alpha: bool. Whether the unimodal-loss weight `alpha` enters
            its objective. Defaults to `False`.
        settings: tuple of str. Experiment settings passed to the model as
            keyword arguments of the same name, besides `alpha`. Defaults
            to `()`.
        prepare: str or `None`. `"module:function"` the experiment runner
            calls before training a run of this method, to get extra model
            keyword arguments (Gradient-Blending estimates its loss weights
            there). Defaults to `None`.
        strategy: str or `None`. For a method of `DGLModel`: the name of its
            class in `keras_dgl.models.methods` (its objective and step).
            Defaults to `None`.
    """

    summary: str
    reference: str = "—"
    model: Optional[str] = "DGLModel"
    uses_alpha: bool = False
    settings: tuple = ()
    prepare: Optional[str] = None
    strategy: Optional[str] = None


# In the order the experiment's table lists them.
METHODS = {
    "dgl": Method(
        "each encoder learns only from its unimodal loss, the fusion only from "
        "the multimodal loss on detached features",
        "Wei, Luo and Luo, ICCV 2025",
        uses_alpha=True,
        strategy="DGL",
    ),
    "joint": Method("the multimodal loss trains everything", strategy="Joint"),
    "joint_aux": Method(
        "multimodal loss + `alpha` × unimodal losses, nothing detached",
        "ablation of DGL",
        uses_alpha=True,
        strategy="JointAux",
    ),
    "ogm": Method(
        "joint training; at each step the leading modality's encoder gradients "
        "are scaled down (strength `--ogm-alpha`, default 0.1)",
        "OGM-GE, Peng et al., CVPR 2022",
        settings=("ogm_alpha",),
        strategy="OGM",
    ),
    "ogm_ge": Method(
        "`ogm` plus Gaussian noise on the encoder gradients (generalization "
        "enhancement)",
        "OGM-GE, Peng et al., CVPR 2022",
        settings=("ogm_alpha",),
        strategy="OGMGE",
    ),
    "gblend": Method(
        "multimodal and unimodal losses weighted by their "
        "overfitting-to-generalization ratios. The weights are estimated first: "
        "each loss is trained alone for `--epochs` and scored on the validation "
        "split (1 + number of modalities extra trainings)",
        "Gradient-Blending, Wang, Tran and Feiszli, CVPR 2020",
        uses_alpha=True,
        prepare="keras_dgl.experiments.gblend:prepare",
        strategy="GBlend",
    ),
    "mmpareto": Method(
        "multimodal + unimodal losses; per encoder, conflicting gradients "
        "combined with min-norm Pareto weights, agreeing ones summed, "
        "magnitude rescaled (option `gamma`, default 1.5)",
        "MMPareto, Wei and Hu, ICML 2024",
        uses_alpha=True,
        strategy="MMPareto",
    ),
    "agm": Method(
        "joint training; each encoder's gradients scaled by a coefficient "
        "from its Shapley mono-modal response's loss against its running "
        "mean (option `alpha`, default 1.0)",
        "AGM, Li et al., ICCV 2023",
        strategy="AGM",
    ),
    "inforeg": Method(
        "multimodal + unimodal losses; during the prime learning window "
        "(Fisher-trace growth) the dominant encoder is pulled back towards "
        "its epoch-start weights",
        "InfoReg, Huang et al., CVPR 2025",
        uses_alpha=True,
        strategy="InfoReg",
    ),
    "pmr": Method(
        "joint training; prototype (class-mean) cross-entropy on the slow "
        "modality, entropy regularization of the dominant one early on",
        "PMR, Fan et al., CVPR 2023",
        strategy="PMR",
    ),
    "mla": Method(
        "modalities trained in turn through one shared head whose gradient "
        "is projected away from earlier modalities' inputs; "
        "uncertainty-weighted fusion at test time",
        "MLA, Zhang, Latham and Yao, CVPR 2024",
        strategy="MLA",
    ),
    "reconboost": Method(
        "modalities boosted in turn (others frozen) with a KL-based "
        "reconcilement weight against the other modalities' ensemble, "
        "alternating with global rectification; ensemble prediction",
        "ReconBoost, Hua et al., ICML 2024",
        strategy="ReconBoost",
    ),
    "unimodal": Method(
        "one encoder + dense head per modality, trained alone", model=None
    ),
}

# Name -> class in keras_dgl.layers.
FUSIONS = {
    "sum": "SumFusion",
    "concat": "ConcatFusion",
    "gated": "GatedFusion",
    "film": "FiLMFusion",
    "attention": "AttentionFusion",
}


@dataclasses.dataclass(frozen=True)
class Dataset:
    """A data set the experiment runner can load.

    Args:
        loader: str. Name of the loader function in `keras_dgl.datasets`.
        summary: str. One line for `--help`.
        seed_argument: str. The loader's argument that the experiment's
            seed goes to (it chooses the split). Defaults to
            `"split_seed"`.
        data_dir: str. `"required"`, `"optional"` or `"none"`: whether
            `--data-dir` must, may or must not be given. Defaults to
            `"required"`.
        data_argument: str. The loader's argument that `--data-dir` goes to.
            Defaults to `"root"`.
        data_file: str or `None`. For a loader that reads one file: the
            file's name inside a `--data-dir` folder. Defaults to `None`.
    """

    loader: str
    summary: str
    seed_argument: str = "split_seed"
    data_dir: str = "required"
    data_argument: str = "root"
    data_file: Optional[str] = None

    @property
    def builtin(self):
        """Whether it needs no data folder (it ships with the package)."""
        return self.data_dir != "required"


DATASETS = {
    "smartwatch": Dataset(
        "smartwatch",
        "accelerometer + gyroscope recordings shipped with seglearn (built in)",
        data_dir="optional",
        data_argument="data_path",
        data_file="watch_dataset.npy",
    ),
    "synthetic": Dataset(
        "synthetic", "generated Gaussian modalities (built in)",
        seed_argument="seed", data_dir="none",
    ),
    "crema-d": Dataset("crema_d", "CREMA-D audio + one video frame (--data-dir)"),
    "kinetics-sounds": Dataset(
        "kinetics_sounds", "Kinetics-Sounds audio + video frames (--data-dir)"
    ),
    "ave": Dataset("ave", "AVE audio + video frames (--data-dir)"),
    "vggsound": Dataset("vggsound", "VGGSound audio + video frames (--data-dir)"),
}

# How a fusion layer predicts from one modality (its `unimodal_head`).
UNIMODAL_HEADS = {
    "shared": "the fusion weights with the other modalities zeroed (the "
              "published DGL form)",
    "separate": "a linear head per modality",
}

# How the experiment chooses a DGL run's weights among its epochs.
EPOCH_CHOICES = {
    "fused": "the whole model at its best fused validation accuracy",
    "per-modality": "each encoder and its head at its own best unimodal "
                    "validation accuracy (keras_dgl.callbacks."
                    "BestWeightsPerModality), the fusion at the fused one",
}

# Name -> what it trains with (keras_dgl.optimizers.make_optimizer builds it).
OPTIMIZERS = {
    "adam": "Adam",
    "sgd": "SGD with momentum 0.9 (weight decay coupled as in torch.optim.SGD)",
}

# Name -> class in keras_tuner.
TUNERS = {
    "random": "RandomSearch",
    "hyperband": "Hyperband",
    "bayesian": "BayesianOptimization",
}


def multimodal_methods():
    """The names of the methods that train a multimodal model, in table order."""
    return tuple(name for name, m in METHODS.items() if m.model is not None)


def methods_of(model):
    """The method names trained by the class named `model` (e.g. `"DGLModel"`)."""
    return tuple(name for name, m in METHODS.items() if m.model == model)


def alpha_methods():
    """The method names whose objective `alpha` weighs."""
    return tuple(name for name, m in METHODS.items() if m.uses_alpha)


def builtin_datasets():
    """The dataset names that need no data folder."""
    return tuple(name for name, d in DATASETS.items() if d.builtin)


def model_class(method):
    """The `keras_dgl.models` class that trains `method` (imports Keras)."""
    model = _entry(METHODS, "method", method).model
    if model is None:
        raise ValueError(f"Method {method!r} trains no multimodal model.")
    return getattr(importlib.import_module("keras_dgl.models"), model)


def fusion_class(name):
    """The `keras_dgl.layers` class of fusion `name` (imports Keras)."""
    return getattr(
        importlib.import_module("keras_dgl.layers"), _entry(FUSIONS, "fusion", name)
    )


def dataset_loader(name):
    """The `keras_dgl.datasets` loader function of dataset `name` (imports Keras)."""
    return getattr(
        importlib.import_module("keras_dgl.datasets"),
        _entry(DATASETS, "dataset", name).loader,
    )


def tuner_class(name):
    """The `keras_tuner` class of tuner `name` (imports KerasTuner)."""
    return getattr(importlib.import_module("keras_tuner"), _entry(TUNERS, "tuner", name))


def resolve(path):
    """The object named by `"module:attribute"` (a `Method.prepare` hook)."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


def _entry(table, kind, name):
    if name not in table:
        raise ValueError(f"Unknown {kind} {name!r}. Expected one of {tuple(table)}.")
    return table[name]
