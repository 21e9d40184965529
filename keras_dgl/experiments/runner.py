"""`run_experiment`: every run of an experiment, trained, scored, resumable.

Output folder layout (`out`):

```
experiment.json              # the settings the folder belongs to
modalities.json              # the data's modalities (names the baselines)
runs/<run>/result.json       # written when a run has finished (skip marker)
runs/<run>/history.json      # every epoch's logs
runs/<run>/best.json, best.weights.h5   # best validation epoch so far
runs/<run>/best_per_modality/   # dgl: each encoder's best epoch (dgl_recipe)
runs/<run>/backup/           # the training state after the last epoch
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

import math
import os
import shutil
import time

import keras

from keras_dgl import registry
from keras_dgl.callbacks.gradient_monitor import GradientMonitor
from keras_dgl.experiments import plots
from keras_dgl.experiments import store
from keras_dgl.experiments.config import ExperimentError
from keras_dgl.experiments.config import Run
from keras_dgl.experiments.dgl_recipe import DGLRecipe
from keras_dgl.experiments.factories import build_model
from keras_dgl.experiments.factories import load_splits
from keras_dgl.experiments.factories import lr_schedule
from keras_dgl.experiments.factories import recipe
from keras_dgl.experiments.factories import select
from keras_dgl.experiments.presets import PRESETS
from keras_dgl.experiments.report import write_csv
from keras_dgl.experiments.scoring import score_run
from keras_dgl.experiments.summary import summarize
from keras_dgl.utils.data_adapter import batches


def run_experiment(config, verbose=2, callbacks=None, log=print):
    """Trains and scores every run of an experiment; resumes where it stopped.

    Runs whose `result.json` exists in `out` are not trained again; a run
    with a backup continues after its last completed epoch. Writes the files
    listed in this module's docstring.

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
    fingerprint = config.fingerprint(keras.backend.backend())
    fingerprint["recipe"] = recipe(config)
    store.claim_folder(out, fingerprint)
    alpha_changed = config.alpha != PRESETS[config.dataset]["alpha"]
    if config.optimizer == "adam" and alpha_changed and "dgl" in config.methods:
        log(
            "note: with Adam, alpha does not change DGL training (each "
            "parameter sees one loss term and Adam ignores its scale); use "
            "--optimizer sgd for alpha to act as an encoder learning-rate factor "
            "(it does still weight the unimodal losses of joint_aux)"
        )

    multimodal = [m for m in config.methods if m in registry.multimodal_methods()]
    baselines = len(multimodal) != len(config.methods)
    records = []
    done = 0
    for seed in config.seeds:
        splits = None
        modalities = store.read_json(os.path.join(out, "modalities.json"))
        if modalities is None and baselines:
            splits = load_splits(config, seed)
            modalities = sorted(splits.input_shapes)
            store.write_json(os.path.join(out, "modalities.json"), modalities)
        runs = [Run(m, seed) for m in multimodal]
        if baselines:
            runs += [Run("unimodal", seed, name) for name in modalities]
        total = len(runs) * len(config.seeds)
        for run in runs:
            done += 1
            counter = f"[{done}/{total}]"
            run_dir = os.path.join(out, "runs", run.name)
            result = store.read_json(os.path.join(run_dir, "result.json"))
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
        self.history = store.read_json(self.history_path) or {}
        self.best = store.read_json(self.best_path)

    def on_epoch_end(self, epoch, logs=None):
        logs = {key: float(value) for key, value in (logs or {}).items()}
        if self.monitor not in logs:
            raise ExperimentError(
                f"'{self.monitor}' is not logged; the data set needs a "
                "validation split to choose the epoch"
            )
        self.history[str(epoch)] = logs
        store.write_json(self.history_path, self.history)
        value = logs[self.monitor]
        # Strictly better only: ties keep the earlier (cheaper) epoch.
        if self.best is None or value > self.best["value"]:
            with store.atomic_path(self.weights_path) as partial:
                self.model.save_weights(partial)
            self.best = {"epoch": epoch, "value": value}
            store.write_json(self.best_path, self.best)


def _train_run(config, run, splits, out, verbose, extra_callbacks, log, counter):
    run_dir = os.path.join(out, "runs", run.name)
    backup_dir = os.path.join(run_dir, "backup")
    tensorboard_dir = os.path.join(out, "tensorboard", run.name)
    metadata = store.read_json(os.path.join(backup_dir, "training_metadata.json"))
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

    overrides, extra_record = {}, {}
    prepare = registry.METHODS[run.method].prepare
    if prepare is not None:
        overrides, extra_record = registry.resolve(prepare)(
            config, run, splits, run_dir, log, counter
        )

    keras.utils.clear_session()
    # The same seed for every method of a split: same initial encoders for
    # DGL and joint, so their difference is paired.
    keras.utils.set_random_seed(run.seed)
    model, encoders = build_model(config, run, splits, **overrides)
    recorder = _RunRecorder(run_dir)
    dgl_recipe = DGLRecipe(config, run, run_dir)
    own = [
        recorder,
        *dgl_recipe.callbacks(),
        keras.callbacks.TensorBoard(tensorboard_dir, write_graph=False),
        # Last of ours: an epoch counts as completed only once recorded.
        keras.callbacks.BackupAndRestore(backup_dir, delete_checkpoint=False),
    ]
    if run.modality is None:
        # Before the recorder: its epoch-end ratios join the logs, and so the
        # history file, which (unlike the monitor) survives a resume. Epoch
        # ends only: E + 1 measurements on one batch cost well under a
        # percent of a run; per-step ones would cost more and not survive.
        probe = next(batches(splits.unaugmented("validation"), config.batch_size))
        own.insert(0, GradientMonitor(probe))
    schedule = lr_schedule(config)
    if schedule is not None:
        own.insert(0, schedule)
    started = time.time()
    model.fit(
        select(splits.train, run.modality),
        validation_data=select(splits.validation, run.modality),
        epochs=config.epochs,
        callbacks=own + list(extra_callbacks),
        verbose=verbose,
        # The pipelines shuffle themselves.
        shuffle=False,
    )
    seconds = time.time() - started
    if recorder.best is None:
        raise ExperimentError(f"{run.name}: no epoch was recorded")
    chosen = dgl_recipe.choose_weights(model, recorder.weights_path, log, counter)
    extra_record.update(chosen)

    history = _history_lists(recorder.history)
    scores = score_run(model, encoders, run, splits, config, log, counter)
    result = {
        "run": run.name,
        "row": run.row,
        "method": run.method,
        "modality": run.modality,
        "seed": run.seed,
        "test_accuracy": scores["test_accuracy"],
        "probe_accuracy": scores["probe_accuracy"],
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
        result["contribution"] = scores["contribution"]
        result.update(extra_record)
        if "refit" in scores:
            result["refit"] = scores["refit"]
    store.write_json(os.path.join(run_dir, "result.json"), result)
    # Only now is the run complete; its backup is no longer needed.
    shutil.rmtree(backup_dir, ignore_errors=True)
    return result


def _history_lists(history):
    """`{epoch: logs}` to `{metric: [value per epoch]}`."""
    epochs = sorted(history, key=int)
    keys = sorted({key for epoch in epochs for key in history[epoch]})
    return {
        key: [history[epoch].get(key, math.nan) for epoch in epochs]
        for key in keys
    }


def _write_outputs(out, config, results):
    store.write_json(os.path.join(out, "results.json"), results)
    store.write_text(os.path.join(out, "table.txt"), results["table"] + "\n")
    write_csv(os.path.join(out, "results.csv"), results["runs"], config.probe)
    plots.plot_validation_curves(results, os.path.join(out, "validation_accuracy.png"))
    plots.plot_comparison(results, os.path.join(out, "comparison.png"))
    plots.plot_method_gradient_ratios(results, out)
