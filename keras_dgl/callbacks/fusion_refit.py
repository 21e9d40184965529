"""Callback that refits the fusion head on frozen encoders when training ends."""

import keras

from keras_dgl.refit import refit_fusion


class FusionRefit(keras.callbacks.Callback):
    """Runs `keras_dgl.refit.refit_fusion` on the model at the end of `fit`.

    The fusion layer is re-trained (its fused path only) on inference-mode
    features of the frozen encoders, with the epoch chosen on
    `validation_data`; see `refit_fusion`. The encoders and the model's
    optimizer are not changed. The result dict is kept in `self.result`
    (`None` until training ends) and, when `verbose`, a one-line summary is
    printed.

    Place it after any callback that changes the weights at the end of
    training (e.g. `EarlyStopping(restore_best_weights=True)`): callbacks
    run in list order, and the refit must see the final encoders. A loop
    that restores weights itself after `fit` (as `keras_dgl.experiments`
    does) should call `model.refit_fusion(...)` after restoring instead.

    Args:
        train_data: training data for the refit: a `(features, labels)`
            tuple of arrays or a finite iterable of such batches (e.g. a
            `tf.data.Dataset`). Features are computed from it once.
        validation_data: `None` or validation data in the same forms; it
            chooses the refit's epoch. Defaults to `None`.
        verbose: int. `1` prints the before/after summary. Defaults to `0`.
        **refit_kwargs: other arguments of `refit_fusion` (`epochs`,
            `optimizer`, `batch_size`, `patience`, `monitor`,
            `reinitialize`).

    Example:

    ```python
    refit = keras_dgl.callbacks.FusionRefit(
        splits.numpy("train"), splits.numpy("validation"), patience=10
    )
    model.fit(splits.train, validation_data=splits.validation, epochs=30,
              callbacks=[refit])
    refit.result["after"]["val_accuracy"]
    ```
    """

    def __init__(self, train_data, validation_data=None, verbose=0, **refit_kwargs):
        super().__init__()
        self.train_data = train_data
        self.validation_data = validation_data
        self.verbose = verbose
        self.refit_kwargs = refit_kwargs
        self.result = None

    def on_train_end(self, logs=None):
        self.result = refit_fusion(
            self.model, self.train_data, self.validation_data, **self.refit_kwargs
        )
        if self.verbose:
            before, after = self.result["before"], self.result["after"]
            split = "val" if after["val_loss"] is not None else "train"
            print(
                f"Fusion refit: {self.result['epochs_run']} epochs, best "
                f"epoch {self.result['best_epoch']}; {split} accuracy "
                f"{before[split + '_accuracy']:.4f} -> "
                f"{after[split + '_accuracy']:.4f}, {split} loss "
                f"{before[split + '_loss']:.4f} -> {after[split + '_loss']:.4f}"
            )
