"""Callback that keeps each encoder at the epoch of its own best validation score."""

import math
import os
import tempfile

import keras
import numpy as np
from keras import ops

_MONITORS = ("accuracy", "loss")


class BestWeightsPerModality(keras.callbacks.Callback):
    """Restores each encoder, and the fused path, at its own best epoch.

    At every epoch end it reads, from the validation logs of a
    `keras_dgl.DGLModel`, each modality's unimodal score
    (`val_<modality>_accuracy` or `val_<modality>_loss`) and the fused score
    (`val_accuracy`, which needs `compile(metrics=["accuracy"])`, or
    `val_multimodal_loss`). It keeps a copy of each encoder's weights (batch
    normalization statistics included) and, with
    `unimodal_head="separate"`, of its unimodal head from the epoch where
    that modality scored best, and a copy of the fusion layer's other
    weights from the epoch where the fused prediction scored best. When
    training ends it restores them.

    Why: under `method="dgl"` with separate unimodal heads, each encoder and
    its head learn only from their own unimodal loss. With an optimizer that
    updates each variable from its own gradient alone (Adam, SGD, RMSprop;
    not `global_clipnorm`), their training is then the same as training
    that encoder alone with a linear head, and choosing its epoch on its own
    validation score gives exactly the model one would get that way. One
    DGL run then yields one unimodal model per modality plus a fusion.

    Epochs chosen for different modalities generally differ, so the
    restored fused path was trained on other features than the restored
    encoders give: refit it afterwards (`model.refit_fusion`, optionally
    starting from `model.fusion.set_fused_from_unimodal_heads()`). With
    shared unimodal heads (the default), an encoder's unimodal score also
    depends on the fusion weights of its epoch; its choice is then only an
    approximation, and the per-modality predictions of the restored model
    use the restored fusion weights.

    Ties keep the earlier epoch. Epochs are counted from 0, as in
    `keras.callbacks.EarlyStopping`. The copies live in memory (the weights
    of one model per modality) and, with `directory`, also on disk: each
    new best is written there at once, atomically, as `<name>.npz`, and a
    new callback with the same directory starts from them, so a `fit`
    resumed after an interruption (e.g. with
    `keras.callbacks.BackupAndRestore`) still chooses among all epochs.

    Args:
        monitor: str, `"accuracy"` (highest is best) or `"loss"` (lowest is
            best). The validation score that chooses every epoch. Defaults
            to `"accuracy"`.
        restore: bool. Restore the chosen weights when training ends.
            Defaults to `True`; with `False` call `restore_best_weights()`
            yourself.
        directory: str or `None`. Folder for the on-disk copies; files found
            there when training begins are taken as earlier epochs of the
            same training. Clear it to start afresh. Defaults to `None`
            (memory only).

    Attributes:
        best_epochs: dict mapping each modality name and `"fused"` to the
            chosen epoch (0-based), filled as training runs.
        best_values: dict with the matching monitored values.

    Example:

    ```python
    fusion = keras_dgl.layers.ConcatFusion(num_classes=7, unimodal_head="separate")
    model = keras_dgl.DGLModel(encoders, fusion)
    model.compile(optimizer="adam", metrics=["accuracy"])
    best = keras_dgl.callbacks.BestWeightsPerModality()
    model.fit(splits.train, validation_data=splits.validation, epochs=12,
              callbacks=[best])
    best.best_epochs  # e.g. {"accelerometer": 9, "gyroscope": 6, "fused": 9}
    model.fusion.set_fused_from_unimodal_heads()
    model.refit_fusion(splits.numpy("train"), splits.numpy("validation"))
    ```
    """

    def __init__(self, monitor="accuracy", restore=True, directory=None):
        super().__init__()
        if monitor not in _MONITORS:
            raise ValueError(
                f"`monitor` must be one of {_MONITORS}. Received: {monitor!r}"
            )
        self.monitor = monitor
        self.restore = bool(restore)
        self.directory = None if directory is None else os.fspath(directory)
        self.best_epochs = {}
        self.best_values = {}
        self._weights = {}

    def _keys(self):
        names = list(self.model.modality_names)
        keys = {name: f"val_{name}_{self.monitor}" for name in names}
        keys["fused"] = (
            "val_accuracy" if self.monitor == "accuracy" else "val_multimodal_loss"
        )
        return keys

    def _improves(self, name, value):
        if not math.isfinite(value):
            return False
        best = self.best_values.get(name)
        if best is None:
            return True
        return value > best if self.monitor == "accuracy" else value < best

    def on_train_begin(self, logs=None):
        model = self.model
        if not isinstance(getattr(model, "encoders", None), dict) or not hasattr(
            model, "fusion"
        ):
            raise TypeError(
                "BestWeightsPerModality needs a keras_dgl.DGLModel (with "
                f"`encoders` and `fusion`). Received: {type(model).__name__}"
            )
        self.best_epochs, self.best_values, self._weights = {}, {}, {}
        if self.directory is not None:
            os.makedirs(self.directory, exist_ok=True)
            for name in list(model.modality_names) + ["fused"]:
                self._load(name)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        for name, key in self._keys().items():
            if key not in logs:
                raise ValueError(
                    f"BestWeightsPerModality needs '{key}' in the epoch logs; "
                    "pass `validation_data` to fit"
                    + (
                        " and compile the model with metrics=['accuracy']"
                        if key == "val_accuracy"
                        else ""
                    )
                    + f". Logged: {sorted(logs)}"
                )
            value = float(logs[key])
            if self._improves(name, value):
                self.best_values[name] = value
                self.best_epochs[name] = epoch
                self._weights[name] = self._copy(name)
                if self.directory is not None:
                    self._save(name)

    def on_train_end(self, logs=None):
        if self.restore:
            self.restore_best_weights()

    def restore_best_weights(self):
        """Sets the model to the chosen weights (no-op before any epoch)."""
        fusion = self.model.fusion
        if "fused" in self._weights:
            # The whole layer first, then each separate head from its own
            # modality's epoch.
            fusion.set_weights(self._weights["fused"])
        for name in self.model.modality_names:
            if name not in self._weights:
                continue
            encoder_weights, head_weights = self._weights[name]
            self.model.encoders[name].set_weights(encoder_weights)
            if head_weights is not None:
                fusion.unimodal_heads[name].set_weights(head_weights)

    def _copy(self, name):
        if name == "fused":
            return [_numpy(w) for w in self.model.fusion.weights]
        head = self.model.fusion.unimodal_heads.get(name)
        return (
            [_numpy(w) for w in self.model.encoders[name].weights],
            None if head is None else [_numpy(w) for w in head.weights],
        )


    # On-disk copies ------------------------------------------------------------

    def _path(self, name):
        return os.path.join(self.directory, f"{name}.npz")

    def _save(self, name):
        weights = self._weights[name]
        arrays = {
            "epoch": np.asarray(self.best_epochs[name]),
            "value": np.asarray(self.best_values[name]),
            "monitor": np.asarray(self.monitor),
        }
        if name == "fused":
            arrays.update({f"fusion_{i}": w for i, w in enumerate(weights)})
        else:
            encoder, head = weights
            arrays.update({f"encoder_{i}": w for i, w in enumerate(encoder)})
            for i, w in enumerate(head or []):
                arrays[f"head_{i}"] = w
        path = self._path(name)
        handle, partial = tempfile.mkstemp(
            prefix=f".{name}-", suffix=".npz.partial", dir=self.directory
        )
        try:
            with os.fdopen(handle, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, path)
        except BaseException:
            if os.path.exists(partial):
                os.remove(partial)
            raise

    def _load(self, name):
        path = self._path(name)
        if not os.path.exists(path):
            return
        try:
            with np.load(path) as data:
                arrays = {key: data[key] for key in data.files}
            monitor = str(arrays["monitor"])
            epoch, value = int(arrays["epoch"]), float(arrays["value"])
        except Exception as error:  # np.load raises many kinds on bad files.
            raise ValueError(
                f"BestWeightsPerModality cannot read {path} ({type(error).__name__}: "
                f"{error}); remove it (or the whole folder) to start afresh."
            ) from error
        if monitor != self.monitor:
            raise ValueError(
                f"{path} holds the best epoch by validation {monitor}, but this "
                f"callback monitors {self.monitor}; use another directory or "
                "remove it."
            )
        if name == "fused":
            weights = _numbered(arrays, "fusion_")
        else:
            heads = _numbered(arrays, "head_")
            weights = (_numbered(arrays, "encoder_"), heads or None)
        self._weights[name] = weights
        self.best_epochs[name] = epoch
        self.best_values[name] = value


def _numbered(arrays, prefix):
    """`arrays[prefix + "0"], arrays[prefix + "1"], ...` in order."""
    keys = [key for key in arrays if key.startswith(prefix)]
    return [arrays[key] for key in sorted(keys, key=lambda k: int(k[len(prefix):]))]


def _numpy(variable):
    return ops.convert_to_numpy(variable).copy()
