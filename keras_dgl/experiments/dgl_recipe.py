"""How an experiment's DGL runs are built and which of their weights are scored.

`keras-dgl train` trains `method="dgl"` by default with a separate linear
head per modality, keeps each encoder (with its head) at its own best
unimodal validation epoch, and sets the fused path to the sum of the
heads' logits; the runner then scores it and refits the fusion from there
(the `dgl + refit` row). Over 15 smartwatch splits this made every DGL
encoder's probe equal the unimodal model's and kept the fused accuracy
level with joint training (benchmarks/RESULTS.md, issue 11). With
`unimodal_head="shared"` the runs are the published form, scored at the
best fused validation epoch like every other method.
"""

import os

from keras_dgl.callbacks.best_weights_per_modality import BestWeightsPerModality
from keras_dgl.layers.fusion_layer import FusionLayer

# Folder of a run's per-modality best weights, next to `best.weights.h5`.
PER_MODALITY_DIR = "best_per_modality"


def fusion_options(config, run):
    """Keyword arguments of the run's fusion layer: the unimodal-head form.

    Args:
        config: a resolved `keras_dgl.experiments.ExperimentConfig`.
        run: the `keras_dgl.experiments.config.Run`.

    Returns:
        `{"unimodal_head": config.unimodal_head}` for a `"dgl"` run, else
        `{}` (the fusion layer's shared default).

    Example:

    ```python
    fusion_options(config, Run("dgl", seed=0))  # {"unimodal_head": "separate"}
    ```
    """
    if run.method == "dgl" and run.modality is None:
        return {"unimodal_head": config.unimodal_head}
    return {}


class DGLRecipe:
    """The unimodal-head form and epoch choice of one run of an experiment.

    Only `"dgl"` runs are affected; for every other run each method is a
    no-op (shared heads, the runner's fused-accuracy epoch).

    Args:
        config: a resolved `keras_dgl.experiments.ExperimentConfig`.
        run: the `keras_dgl.experiments.config.Run`.
        run_dir: str. The run's folder; per-modality copies are kept in its
            `best_per_modality/` subfolder, so a resumed run still chooses
            among all its epochs.

    Example:

    ```python
    recipe = DGLRecipe(config, Run("dgl", seed=0), run_dir)
    model.fit(..., callbacks=[recorder, *recipe.callbacks(), backup])
    record = recipe.choose_weights(model, log, counter)
    ```
    """

    def __init__(self, config, run, run_dir):
        self.run = run
        self.unimodal_head = fusion_options(config, run).get("unimodal_head")
        self.epoch_choice = config.epoch_choice if self.unimodal_head else None
        self.directory = os.path.join(run_dir, PER_MODALITY_DIR)
        self.best = None
        if self.epoch_choice == "per-modality":
            self.best = BestWeightsPerModality(restore=False, directory=self.directory)

    def callbacks(self):
        """The callbacks the run's `fit` needs (before its backup callback)."""
        return [self.best] if self.best is not None else []

    def choose_weights(self, model, log, counter):
        """Loads the weights to score into `model`; returns what was chosen.

        `model` holds the whole model at its best fused validation epoch
        (the runner loads it first); then, with `epoch_choice="per-modality"`,
        each encoder and its head at its own best epoch; then, with separate
        heads and a fusion layer that can express it, the fused path is set
        to the sum of the heads' logits.

        Args:
            model: the trained model.
            log: callable taking one progress line.
            counter: str. The run's `[i/n]` prefix.

        Returns:
            dict for the run's record: empty for a run the recipe does not
            affect; else `unimodal_head`, `epoch_choice`, `fused_path`
            (`"trained"` or `"logit-sum"`) and, per modality,
            `modality_epochs` (1-based, as Keras prints epochs).
        """
        if self.unimodal_head is None:
            return {}
        record = {
            "unimodal_head": self.unimodal_head,
            "epoch_choice": self.epoch_choice,
            "fused_path": "trained",
        }
        if self.best is not None:
            # A fresh callback reads the copies: the fit may have run no epoch
            # (a run resumed after its last one) or been resumed.
            chosen = BestWeightsPerModality(restore=False, directory=self.directory)
            chosen.set_model(model)
            chosen.on_train_begin()
            missing = sorted(set(model.modality_names) - set(chosen.best_epochs))
            if missing:
                raise RuntimeError(
                    f"{self.run.name}: no per-modality best weights for {missing} "
                    f"in {self.directory}"
                )
            chosen.restore_best_weights()
            record["modality_epochs"] = {
                name: chosen.best_epochs[name] + 1 for name in model.modality_names
            }
        if self.unimodal_head == "separate":
            if _sums_heads(model.fusion):
                model.fusion.set_fused_from_unimodal_heads()
                record["fused_path"] = "logit-sum"
            else:
                log(f"{counter} {self.run.name}: {type(model.fusion).__name__} "
                    "cannot hold the sum of the heads' logits; its trained fused "
                    "path is scored")
        epochs = record.get("modality_epochs")
        if epochs:
            chosen_epochs = ", ".join(f"{name} {e}" for name, e in epochs.items())
            log(f"{counter} {self.run.name}: encoders at epochs {chosen_epochs}; "
                f"fused path: {record['fused_path']}")
        return record


def _sums_heads(fusion):
    # The base class's hook only raises: the layer cannot express the sum.
    hook = type(fusion).assign_fused_from_heads
    return hook is not FusionLayer.assign_fused_from_heads
