"""Fusion refit: re-train only the fusion head on frozen, cached encoder features.

Under DGL the fusion layer learns on detached features while the encoders
keep moving, so at the end of training it was fit to features that have
since changed (and, with batch normalization, to training-mode features,
while it is tested on inference-mode ones). A refit trains the fused path of
the fusion layer again on features computed once, in inference mode, by the
frozen encoders. Since the features are cached, an epoch of the refit costs
a pass of the small fusion head only, not of the encoders.
"""

import time

import keras
import numpy as np
from keras import ops

from keras_dgl.utils.data_adapter import to_numpy
from keras_dgl.utils.encoder_features import encoder_features

# Examples per encoder call when the data is given as NumPy arrays.
_FEATURE_CHUNK = 512
_EVAL_BATCH = 1024
_MONITORS = ("loss", "accuracy")


def refit_fusion(
    model,
    train_data,
    validation_data=None,
    epochs=100,
    optimizer=None,
    batch_size=64,
    patience=10,
    monitor="loss",
    reinitialize=False,
    verbose=0,
    features_given=False,
):
    """Re-trains the fused path of a model's fusion layer on frozen encoders.

    Encoder features are computed once, with `training=False` (dropout off,
    batch normalization on its moving statistics, which are not updated),
    for the training and validation data (or taken as given, with
    `features_given`). Only the variables the fused logits depend on
    (`model.fusion.fused_path_variables()`) are then trained on those cached
    features with the model's compiled per-term loss (`model.term_loss`;
    sparse categorical cross-entropy on logits if the model is not
    compiled), using
    a new optimizer of the refit's own. The encoders' weights and statistics
    and the model's optimizer state are left exactly as they were; the
    fusion layer is updated in place. Separate unimodal heads
    (`unimodal_head="separate"`) are left unchanged: they only make the
    diagnostic per-modality predictions, not the fused one. Shared unimodal
    predictions (the default) reuse the fusion weights, so they change with
    the refit; score them before it if you want the trained model's.

    The epoch is chosen on the monitored set: the validation features if
    `validation_data` is given, else the training features (both evaluated
    in inference mode at the end of every epoch). The fusion weights from
    before the refit are candidate "epoch 0", so the monitored value never
    gets worse than it was; the best candidate's weights are restored at
    the end. Training stops after `patience` epochs without a strict
    improvement.

    Args:
        model: a built `keras_dgl.DGLModel` (any `method`, any fusion layer).
        train_data: training data as a tuple `(features, labels)` of a dict
            of arrays (one per modality) and an array of labels, or a finite
            iterable of such `(features, labels)` batches, such as a
            `tf.data.Dataset` (e.g. `splits.train`). Passing an augmenting
            pipeline caches one augmented pass; `splits.numpy("train")`
            gives the un-augmented data. With `features_given`, a
            `(features, labels)` pair of encoder features instead.
        validation_data: `None` or validation data in the same forms.
            Defaults to `None`.
        epochs: int. Most epochs of refit training. Defaults to `100`.
        optimizer: `None`, a `keras.optimizers.Optimizer` (not the model's
            own) or its string name. Defaults to `Adam(1e-3)`.
        batch_size: int. Batch size of the refit training. Defaults to `64`.
        patience: int or `None`. Epochs without improvement of the monitored
            value before stopping; `None` trains every epoch. Defaults to
            `10`.
        monitor: str, `"loss"` or `"accuracy"` of the monitored set.
            Defaults to `"loss"`.
        reinitialize: bool. Draw the fused-path weights afresh (with the
            layer's initializers) before training instead of starting from
            the current ones. The current weights stay candidate "epoch 0".
            Defaults to `False`.
        verbose: int. Verbosity of the refit's `fit`. Defaults to `0`.
        features_given: bool. The data already holds each encoder's
            inference-mode features (as `keras_dgl.utils.encoder_features`
            returns them), so the encoders are not run: scoring code that
            has encoded the splits once passes them here. Defaults to
            `False`.

    Returns:
        A dict: `before` and `after` (each with `train_loss`,
        `train_accuracy`, `val_loss`, `val_accuracy`, in inference mode;
        the `val_` entries are `None` without validation data),
        `best_epoch` (int; `0` means the original weights were kept),
        `epochs_run`, `monitored_on` (`"validation"` or `"train"`),
        `monitor`, `history` (per-epoch `loss` and `accuracy` of training
        and `monitored_loss`, `monitored_accuracy`), `num_train`,
        `num_validation`, and `seconds` (`features`, `fit`).

    Example:

    ```python
    splits = keras_dgl.datasets.synthetic(num_classes=4)
    model.fit(splits.train, validation_data=splits.validation, epochs=20)
    result = keras_dgl.refit.refit_fusion(
        model, splits.numpy("train"), splits.numpy("validation")
    )
    result["before"]["val_accuracy"], result["after"]["val_accuracy"]
    ```
    """
    if monitor not in _MONITORS:
        raise ValueError(
            f"`monitor` must be one of {_MONITORS}. Received: {monitor!r}"
        )
    if int(epochs) < 1:
        raise ValueError(f"`epochs` must be >= 1. Received: {epochs}")
    if patience is not None and int(patience) < 1:
        raise ValueError(
            f"`patience` must be >= 1 or None. Received: {patience}"
        )
    fusion = getattr(model, "fusion", None)
    encoders = getattr(model, "encoders", None)
    if fusion is None or not isinstance(encoders, dict):
        raise TypeError(
            "refit_fusion needs a keras_dgl.DGLModel (with `encoders` and "
            f"`fusion`). Received: {type(model).__name__}"
        )
    if not getattr(model, "fused_by_fusion_layer", True):
        raise ValueError(
            f"Method {model.method!r} fuses the unimodal predictions, not with "
            "the fusion layer, so there is no fused path to refit."
        )
    if optimizer is not None and optimizer is getattr(model, "optimizer", None):
        raise ValueError(
            "Pass a new optimizer to refit_fusion, not the model's own: the "
            "refit must leave the model's optimizer state untouched."
        )

    started = time.perf_counter()
    train_x, train_y = _features(encoders, train_data, features_given)
    if validation_data is not None:
        val_x, val_y = _features(encoders, validation_data, features_given)
    else:
        val_x = val_y = None
    feature_seconds = time.perf_counter() - started
    if not fusion.built:
        fusion({name: value[:1] for name, value in train_x.items()})

    head = _FusedHead(fusion, name="fusion_refit")
    if getattr(model, "compiled", False) and hasattr(model, "term_loss"):
        term_loss = model.term_loss
    else:
        term_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    # Separate unimodal heads get no gradient from the fused loss; freezing
    # them keeps weight decay and the like off them, too.
    frozen_heads = [h for h in fusion.unimodal_heads.values() if h.trainable]
    for layer in frozen_heads:
        layer.trainable = False
    keeper = None
    try:
        if optimizer is None:
            optimizer = keras.optimizers.Adam(1e-3)
        head.compile(
            optimizer=optimizer,
            loss=term_loss,
            metrics=["accuracy"],
        )
        before = _scores(head, train_x, train_y, val_x, val_y)
        monitored = (val_x, val_y) if val_x is not None else (train_x, train_y)
        key = "val_" if val_x is not None else "train_"
        keeper = _KeepBest(
            monitor,
            initial=before[key + monitor],
            initial_weights=head.get_weights(),
            patience=patience,
        )
        if reinitialize:
            _reinitialize(fusion, train_x)
        started = time.perf_counter()
        history = head.fit(
            train_x,
            train_y,
            batch_size=int(batch_size),
            epochs=int(epochs),
            validation_data=monitored,
            # Batched as in _scores, so epoch 0 compares like with like.
            validation_batch_size=_EVAL_BATCH,
            callbacks=[keeper],
            shuffle=True,
            verbose=verbose,
        )
        fit_seconds = time.perf_counter() - started
        head.set_weights(keeper.best_weights)
        after = _scores(head, train_x, train_y, val_x, val_y)
    except BaseException:
        # An interrupted refit must not leave a half-trained (or freshly
        # reinitialized) head behind: fall back to the best weights seen.
        if keeper is not None:
            head.set_weights(keeper.best_weights)
        raise
    finally:
        for layer in frozen_heads:
            layer.trainable = True

    logs = history.history
    return {
        "before": before,
        "after": after,
        "best_epoch": keeper.best_epoch,
        "epochs_run": len(logs.get("loss", [])),
        "monitored_on": "validation" if val_x is not None else "train",
        "monitor": monitor,
        "history": {
            "loss": _floats(logs.get("loss")),
            "accuracy": _floats(logs.get("accuracy")),
            "monitored_loss": _floats(logs.get("val_loss")),
            "monitored_accuracy": _floats(logs.get("val_accuracy")),
        },
        "num_train": int(len(train_y)),
        "num_validation": None if val_y is None else int(len(val_y)),
        "seconds": {
            "features": round(feature_seconds, 3),
            "fit": round(fit_seconds, 3),
        },
    }


class _FusedHead(keras.Model):
    """Feature dict -> fused logits through a shared fusion layer.

    It holds the model's own fusion layer (not a copy), so training it
    updates the model in place; the encoders are not part of it.
    """

    def __init__(self, fusion, **kwargs):
        super().__init__(**kwargs)
        self.fusion = fusion

    def call(self, features, training=None):
        return ops.cast(self.fusion(features, training=training), "float32")


class _KeepBest(keras.callbacks.Callback):
    """Tracks the best monitored epoch (the starting weights are epoch 0)."""

    def __init__(self, monitor, initial, initial_weights, patience):
        super().__init__()
        self.key = f"val_{monitor}"
        self.higher_is_better = monitor == "accuracy"
        self.best = initial
        self.best_epoch = 0
        self.best_weights = initial_weights
        self.patience = patience
        self.wait = 0

    def _improves(self, value):
        if value is None or not np.isfinite(value):
            return False
        if self.best is None or not np.isfinite(self.best):
            return True
        return value > self.best if self.higher_is_better else value < self.best

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.key)
        if self._improves(value):
            self.best = float(value)
            self.best_epoch = epoch + 1
            self.best_weights = self.model.get_weights()
            self.wait = 0
            return
        self.wait += 1
        if self.patience is not None and self.wait >= self.patience:
            self.model.stop_training = True


def _features(encoders, data, features_given):
    """Inference-mode encoder features and labels of all of `data`, as NumPy."""
    if features_given:
        x, y = to_numpy(data)
        missing = sorted(set(encoders) - set(x))
        if missing:
            raise ValueError(
                f"refit_fusion: the given features lack the modalities {missing}."
            )
        x = {name: np.asarray(x[name], "float32") for name in encoders}
    else:
        try:
            x, y = encoder_features(encoders, data, batch_size=_FEATURE_CHUNK)
        except (TypeError, ValueError) as error:
            raise type(error)(f"refit_fusion: {error}") from error
    if not len(y):
        raise ValueError("refit_fusion received empty data.")
    return x, y


def _reinitialize(fusion, features):
    """Redraws the fused-path weights from a fresh copy of the layer."""
    fresh = fusion.__class__.from_config(fusion.get_config())
    fresh({name: value[:1] for name, value in features.items()})
    old, new = fusion.fused_path_variables(), fresh.fused_path_variables()
    if [tuple(v.shape) for v in old] != [tuple(v.shape) for v in new]:
        raise ValueError(
            f"Cannot reinitialize {type(fusion).__name__}: a fresh copy has "
            "different fused-path variables."
        )
    for variable, value in zip(old, new):
        variable.assign(value.value)


def _scores(head, train_x, train_y, val_x, val_y):
    """Inference-mode loss and accuracy on the cached features."""
    scores = {}
    for prefix, x, y in (("train_", train_x, train_y), ("val_", val_x, val_y)):
        if x is None:
            scores[prefix + "loss"] = scores[prefix + "accuracy"] = None
            continue
        logs = head.evaluate(
            x, y, batch_size=_EVAL_BATCH, verbose=0, return_dict=True
        )
        scores[prefix + "loss"] = float(logs["loss"])
        scores[prefix + "accuracy"] = float(logs["accuracy"])
    return scores


def _floats(values):
    return [float(v) for v in values or []]
