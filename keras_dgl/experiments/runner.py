"""`run_experiment`: every run of an experiment, trained, scored, resumable.

Output folder layout (`out`):

```
experiment.json              # the settings the folder belongs to
modalities.json              # the data's modalities (names the baselines)
runs/<run>/result.json       # written when a run has finished (skip marker)
runs/<run>/best.weights.h5   # the finished run's best validation epoch
runs/<run>/best_per_modality/   # dgl: each encoder's best epoch (dgl_recipe)
runs/<run>/checkpoints/      # an unfinished run's state after its last epochs
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
completed epoch, with the same numbers as an uninterrupted run. Every file
is written atomically (`store`) and the checkpoints survive a kill at any
moment (`checkpoints`), so a rerun always resumes.
"""

import math
import os
import shutil
import time

import keras

from keras_dgl import registry
from keras_dgl.callbacks.gradient_monitor import GradientMonitor
from keras_dgl.experiments import determinism
from keras_dgl.experiments import plots
from keras_dgl.experiments import store
from keras_dgl.experiments.checkpoints import RunCheckpoints
from keras_dgl.experiments.dgl_recipe import DGLRecipe
from keras_dgl.experiments.factories import build_model
from keras_dgl.experiments.factories import load_splits
from keras_dgl.experiments.factories import lr_schedule
from keras_dgl.experiments.factories import recipe
from keras_dgl.experiments.factories import select
from keras_dgl.experiments.presets import PRESETS
from keras_dgl.experiments.report import write_csv
from keras_dgl.experiments.run import Run
from keras_dgl.experiments.run_recorder import RunRecorder
from keras_dgl.experiments.run_state import RunState
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
        `table` (the printed text) and `deterministic` (whether the
        frameworks' deterministic modes were on: `keras-dgl train` turns
        them on unless `--no-deterministic`; see
        `keras_dgl.experiments.determinism`).

    Raises:
        ExperimentError: bad settings, missing data, or an `out` folder
            that holds another experiment, is a file or cannot be written.
        TrainingDiverged: a run's loss became non-finite (the message
            names the run); the runs finished before it are kept.

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
                # A kill right after the result was written leaves these.
                RunCheckpoints(os.path.join(run_dir, "checkpoints"), run.name).remove()
                records.append(result)
                continue
            extra = callbacks(run.name) if callable(callbacks) else callbacks
            records.append(
                _train_run(config, run, out, verbose, extra or [], log, counter)
            )
    results = summarize(records, config)
    results["deterministic"] = determinism.enabled()
    _write_outputs(out, config, results)
    log(results["table"])
    log(f"Results, plots and TensorBoard logs: {out}")
    return results


def _train_run(config, run, out, verbose, extra_callbacks, log, counter):
    run_dir = os.path.join(out, "runs", run.name)
    tensorboard_dir = os.path.join(out, "tensorboard", run.name)
    checkpoints = RunCheckpoints(os.path.join(run_dir, "checkpoints"), run.name, log)
    if not checkpoints.exists():
        # A fresh start: drop what an attempt killed before its first
        # completed epoch may have left (a finished gblend estimate stays).
        for name in os.listdir(run_dir) if os.path.isdir(run_dir) else []:
            if name != "gblend.json":
                _remove_path(os.path.join(run_dir, name))
        shutil.rmtree(tensorboard_dir, ignore_errors=True)
        log(f"{counter} {run.name}: training {config.epochs} epochs")
    os.makedirs(run_dir, exist_ok=True)

    overrides, extra_record = {}, {}
    prepare = registry.METHODS[run.method].prepare
    if prepare is not None:
        splits = _fresh_splits(config, run)
        overrides, extra_record = registry.resolve(prepare)(
            config, run, splits, run_dir, log, counter
        )
    # Everything random in a run starts from its own seed, whatever ran
    # before it in this process: the data order (a new pipeline), the
    # initial weights and the dropout masks. The same seed for every method
    # of a split gives DGL and joint the same initial encoders and batches,
    # so their difference is paired.
    splits = _fresh_splits(config, run)
    keras.utils.set_random_seed(run.seed)
    model, encoders = build_model(config, run, splits, **overrides)
    state = checkpoints.restore(model) or RunState()
    first_epoch = min(state.epochs_done, config.epochs)
    if first_epoch == config.epochs:
        log(f"{counter} {run.name}: all {config.epochs} epochs done; scoring")
    elif first_epoch:
        log(f"{counter} {run.name}: resuming after epoch {first_epoch} "
            f"of {config.epochs}")
    train, steps = _epoch_stream(select(splits.train, run.modality), first_epoch)
    recorder = RunRecorder(checkpoints, state)
    dgl_recipe = DGLRecipe(config, run, run_dir)
    own = [
        *dgl_recipe.callbacks(),
        keras.callbacks.TensorBoard(tensorboard_dir, write_graph=False),
        # Last of ours: an epoch counts as completed once it is checkpointed.
        recorder,
    ]
    if run.modality is None:
        # Before the recorder: its epoch-end ratios join the logs, and so the
        # checkpointed history, which (unlike the monitor) survives a
        # resume. Epoch ends only: E + 1 measurements on one batch cost well
        # under a percent of a run; per-step ones would cost more and not
        # survive.
        probe = next(batches(splits.unaugmented("validation"), config.batch_size))
        own.insert(0, GradientMonitor(probe))
    schedule = lr_schedule(config)
    if schedule is not None:
        own.insert(0, schedule)
    started = time.time()
    model.fit(
        train,
        steps_per_epoch=steps,
        validation_data=select(splits.validation, run.modality),
        epochs=config.epochs,
        initial_epoch=first_epoch,
        callbacks=own + list(extra_callbacks),
        verbose=verbose,
        # The pipelines shuffle themselves.
        shuffle=False,
    )
    seconds = time.time() - started
    checkpoints.load_best(model)
    extra_record.update(dgl_recipe.choose_weights(model, log, counter))

    history = _history_lists(state.history)
    # The refit's shuffles, too, are the run's own.
    keras.utils.set_random_seed(run.seed)
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
        "best_epoch": state.best["epoch"] + 1,
        "best_val_accuracy": state.best["value"],
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
    # The best epoch's weights (scored before the refit), for users.
    checkpoints.load_best(model)
    with store.atomic_path(os.path.join(run_dir, "best.weights.h5")) as partial:
        model.save_weights(partial)
    store.write_json(os.path.join(run_dir, "result.json"), result)
    # Only now is the run complete; its checkpoints are no longer needed.
    checkpoints.remove()
    return result


def _epoch_stream(train, first_epoch):
    """The training batches from epoch `first_epoch` on, as `fit` gets them.

    A tf.data pipeline reshuffles each time a new iterator of it is made,
    and how many iterators `fit` makes (peeks, one per epoch) is Keras' and
    the backend's business. Repeated and cut into epochs by
    `steps_per_epoch`, it is read through one iterator, in which epoch e is
    the e-th pass. A run resumed after k epochs first makes (and does not
    read) k iterators, so its next pass is the uninterrupted run's epoch k.

    Returns:
        `(data, steps_per_epoch)`; where the number of batches per epoch is
        unknown, the pipeline as it is and `None` (a resumed run then sees
        another order).
    """
    steps = int(train.cardinality())
    if steps <= 0:
        return train, None
    for _ in range(first_epoch):
        iter(train)
    return train.repeat(), steps


def _fresh_splits(config, run):
    keras.utils.clear_session()
    keras.utils.set_random_seed(run.seed)
    return load_splits(config, run.seed)


def _remove_path(path):
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        os.remove(path)


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
