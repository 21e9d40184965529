"""A run's training state after every completed epoch, safe against a kill at any moment.

Each checkpoint is a folder `epoch-NNNN` (NNNN epochs done) holding:

- `model.npz`: every variable of the model (weights, batch-norm statistics,
  the random-seed states of dropout layers), in `model.variables` order;
- `optimizer.npz`: every variable of the optimizer;
- `best.npz`: the model variables of the best epoch so far (a hard link to
  that epoch's `model.npz`: no copy);
- `rng.npz`: the backend's global random state, where training draws from
  it (`keras_dgl.backend.global_rng_state`: torch's unseeded dropout);
- `state.json`: epochs done, every epoch's logs, the best epoch and value.

A checkpoint is written as `epoch-NNNN.partial`, every file synced, and only
then renamed to `epoch-NNNN` (one atomic rename commits it). The checkpoint
before it is kept until the new one is committed, and one more is kept as a
fallback: if the newest is unreadable (a disk fault, a hand edit), the run
resumes from the one before it, and if none is readable the error names the
folder to remove. Keras' `BackupAndRestore` overwrites its one backup in
place, so a kill while it writes leaves none; and it does not save the
seed states, so a resumed run would draw other dropout masks.
"""

import dataclasses
import json
import os
import re
import shutil
import zipfile

import keras
import numpy as np

from keras_dgl import backend as dgl_backend
from keras_dgl.experiments import store
from keras_dgl.experiments.errors import ExperimentError
from keras_dgl.experiments.run_state import RunState

_NAME = re.compile(r"^epoch-(\d{4,})$")


class RunCheckpoints:
    """The checkpoints of one run, in `folder`.

    Args:
        folder: str. The run's checkpoint folder (created on first save).
        run_name: str. The run's name, for messages.
        log: callable taking one line, for fallback notes.

    Example:

    ```python
    checkpoints = RunCheckpoints("out/runs/dgl-seed0/checkpoints", "dgl-seed0")
    state = checkpoints.restore(model) or RunState()
    ```
    """

    def __init__(self, folder, run_name, log=print):
        self.folder = folder
        self.run_name = run_name
        self.log = log
        self._latest = None
        # The restored checkpoint's global random state (see RunRecorder).
        self.rng_state = None

    def exists(self):
        """Whether any committed checkpoint is on disk (readable or not)."""
        return bool(self._committed())

    def _committed(self):
        """`[(epochs_done, path)]`, newest first."""
        if not os.path.isdir(self.folder):
            return []
        found = []
        for name in os.listdir(self.folder):
            match = _NAME.match(name)
            if match:
                found.append((int(match.group(1)), os.path.join(self.folder, name)))
        return sorted(found, reverse=True)

    def restore(self, model):
        """Loads the newest readable checkpoint into `model` and its optimizer.

        Unreadable newer checkpoints are removed (each named in a log line);
        unfinished ones (`.partial`) and leftovers of removals are dropped.

        Returns:
            The checkpoint's `RunState`, or `None` when there is none.

        Raises:
            ExperimentError: checkpoints exist but none is readable; the
                message names the folder to remove.
        """
        self._drop_leftovers()
        problems = []
        for _, path in self._committed():
            try:
                state = _read_state(path)
                _assign(model.variables, _load(os.path.join(path, "model.npz")), "model")
                optimizer = model.optimizer
                if not optimizer.built:
                    optimizer.build(model.trainable_variables)
                _assign(
                    optimizer.variables,
                    _load(os.path.join(path, "optimizer.npz")),
                    "optimizer",
                )
                _check_shapes(model.variables, _load(os.path.join(path, "best.npz")), "best")
                self.rng_state = _load_rng(path)
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
                problems.append(f"{os.path.basename(path)}: {error}")
                self.log(
                    f"{self.run_name}: checkpoint {path} is unreadable ({error}); "
                    "removing it and trying the one before"
                )
                _remove(path)
                continue
            self._latest = path
            return state
        if problems:
            raise ExperimentError(
                f"cannot resume {self.run_name}: no checkpoint in {self.folder} "
                f"is readable ({'; '.join(problems)}); remove {self.folder} to "
                "train this run afresh"
            )
        return None

    def save(self, model, state):
        """Commits a checkpoint of `model` after `state.epochs_done` epochs."""
        os.makedirs(self.folder, exist_ok=True)
        final = os.path.join(self.folder, f"epoch-{state.epochs_done:04d}")
        partial = final + ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        os.makedirs(partial)
        _save(os.path.join(partial, "model.npz"), model.variables)
        _save(os.path.join(partial, "optimizer.npz"), model.optimizer.variables)
        rng = dgl_backend.global_rng_state()
        if rng is not None:
            _save_arrays(os.path.join(partial, "rng.npz"), [rng])
        best = os.path.join(partial, "best.npz")
        if state.best["epoch"] == state.epochs_done - 1 or self._latest is None:
            _link(os.path.join(partial, "model.npz"), best)
        else:
            _link(os.path.join(self._latest, "best.npz"), best)
        with open(os.path.join(partial, "state.json"), "w") as handle:
            json.dump(dataclasses.asdict(state), handle, default=store.json_default)
            handle.flush()
            os.fsync(handle.fileno())
        store.fsync_dir(partial)
        if os.path.exists(final):  # retraining an epoch after a fallback
            _remove(final)
        os.replace(partial, final)
        store.fsync_dir(self.folder)
        previous, self._latest = self._latest, final
        # Keep the new one and the one before it; older ones go.
        for _, path in self._committed():
            if path not in (final, previous):
                _remove(path)

    def load_best(self, model):
        """Loads the best epoch's model variables (not the optimizer's) into `model`."""
        if self._latest is None:
            raise ExperimentError(f"{self.run_name}: no epoch was recorded")
        _assign(model.variables, _load(os.path.join(self._latest, "best.npz")), "best")

    def remove(self):
        """Deletes every checkpoint (the run is complete)."""
        if os.path.isdir(self.folder):
            _remove(self.folder)
        shutil.rmtree(f"{self.folder}.removing", ignore_errors=True)
        self._latest = None

    def _drop_leftovers(self):
        if not os.path.isdir(self.folder):
            return
        for name in os.listdir(self.folder):
            if not _NAME.match(name):
                path = os.path.join(self.folder, name)
                if os.path.isdir(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.remove(path)


def _read_state(path):
    with open(os.path.join(path, "state.json")) as handle:
        try:
            raw = json.load(handle)
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise ValueError(f"state.json is corrupt ({error})") from error
    state = RunState(**raw)
    if not isinstance(state.epochs_done, int) or state.best is None:
        raise ValueError("state.json lacks the epoch or the best value")
    return state


def _save(path, variables):
    _save_arrays(path, [keras.ops.convert_to_numpy(v.value) for v in variables])


def _save_arrays(path, arrays):
    with open(path, "wb") as handle:
        np.savez(handle, *arrays)
        handle.flush()
        os.fsync(handle.fileno())


def _load_rng(path):
    path = os.path.join(path, "rng.npz")
    return _load(path)[0] if os.path.exists(path) else None


def _load(path):
    with np.load(path, allow_pickle=False) as archive:
        return [archive[f"arr_{i}"] for i in range(len(archive.files))]


def _check_shapes(variables, values, what):
    if len(values) != len(variables):
        raise ValueError(
            f"{what}: {len(values)} arrays saved for {len(variables)} variables"
        )
    for variable, value in zip(variables, values):
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(
                f"{what}: {variable.path} has shape {tuple(variable.shape)}, "
                f"saved {tuple(value.shape)}"
            )


def _assign(variables, values, what):
    _check_shapes(variables, values, what)
    for variable, value in zip(variables, values):
        variable.assign(value)


def _link(source, target):
    """A hard link (no copy); a copy where the file system has no links."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
        with open(target, "rb+") as handle:
            os.fsync(handle.fileno())


def _remove(path):
    """Deletes a folder: renamed out of the way first, so a kill leaves no half."""
    trash = f"{path}.removing"
    shutil.rmtree(trash, ignore_errors=True)
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)
