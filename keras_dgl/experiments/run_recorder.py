"""The callback that records each epoch of a run and commits its checkpoint."""

import keras
import numpy as np

from keras_dgl import backend as dgl_backend
from keras_dgl.experiments.errors import ExperimentError
from keras_dgl.experiments.errors import TrainingDiverged


class RunRecorder(keras.callbacks.Callback):
    """Records each epoch, keeps the best one, checkpoints the run; stops divergence.

    At every epoch end: refuses a non-finite training loss (the run
    diverged: `TrainingDiverged`, naming it), records the logs, updates the
    best epoch on `monitor` (strictly better only: ties keep the earlier
    epoch) and commits a checkpoint. Place it after every callback that
    adds to the logs. On resume it restores the checkpoint's global random
    state before the first step.

    Args:
        checkpoints: the run's `RunCheckpoints`.
        state: the `RunState` to continue from.
        monitor: str. The log that chooses the best epoch. Defaults to
            `"val_accuracy"`.
    """

    def __init__(self, checkpoints, state, monitor="val_accuracy"):
        super().__init__()
        self.checkpoints = checkpoints
        self.state = state
        self.monitor = monitor
        self._rng_state = checkpoints.rng_state

    def on_train_batch_begin(self, batch, logs=None):
        # The first step of a resumed run draws from the state saved after
        # the last completed epoch. Not earlier: `fit` itself draws from
        # the global generator when it sets up its data iterators, which an
        # uninterrupted run did long before this epoch.
        if self._rng_state is not None:
            dgl_backend.set_global_rng_state(self._rng_state)
            self._rng_state = None

    def on_epoch_end(self, epoch, logs=None):
        logs = {key: float(value) for key, value in (logs or {}).items()}
        name = self.checkpoints.run_name
        loss = logs.get("loss")
        if loss is not None and not np.isfinite(loss):
            raise TrainingDiverged(
                f"{name}: training diverged: the loss of epoch {epoch + 1} is "
                f"{loss}; nothing of this epoch was kept. Lower --learning-rate "
                "(or alpha) and run the same command again"
            )
        if self.monitor not in logs:
            raise ExperimentError(
                f"'{self.monitor}' is not logged; the data set needs a "
                "validation split to choose the epoch"
            )
        state = self.state
        state.history[str(epoch)] = logs
        value = logs[self.monitor]
        if state.best is None or value > state.best["value"]:
            state.best = {"epoch": epoch, "value": value}
        state.epochs_done = epoch + 1
        self.checkpoints.save(self.model, state)
