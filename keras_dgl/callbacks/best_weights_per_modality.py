"""Callback that keeps each encoder at the epoch of its own best validation score."""

import math

import keras
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
    starting from `model.fusion.fused_path_from_unimodal_heads()`). With
    shared unimodal heads (the default), an encoder's unimodal score also
    depends on the fusion weights of its epoch; its choice is then only an
    approximation, and the per-modality predictions of the restored model
    use the restored fusion weights.

    Ties keep the earlier epoch. Epochs are counted from 0, as in
    `keras.callbacks.EarlyStopping`. The copies live in memory (the weights
    of one model per modality); an interrupted `fit` loses them.

    Args:
        monitor: str, `"accuracy"` (highest is best) or `"loss"` (lowest is
            best). The validation score that chooses every epoch. Defaults
            to `"accuracy"`.
        restore: bool. Restore the chosen weights when training ends.
            Defaults to `True`; with `False` call `restore_best_weights()`
            yourself.

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
    model.fusion.fused_path_from_unimodal_heads()
    model.refit_fusion(splits.numpy("train"), splits.numpy("validation"))
    ```
    """

    def __init__(self, monitor="accuracy", restore=True):
        super().__init__()
        if monitor not in _MONITORS:
            raise ValueError(
                f"`monitor` must be one of {_MONITORS}. Received: {monitor!r}"
            )
        self.monitor = monitor
        self.restore = bool(restore)
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


def _numpy(variable):
    return ops.convert_to_numpy(variable).copy()
