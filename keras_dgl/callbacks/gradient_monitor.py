"""Callback measuring how much gradient each encoder gets from fusion vs alone."""

import math

import keras
import numpy as np

from keras_dgl import backend as dgl_backend
from keras_dgl.utils.data_adapter import first_batch


class GradientMonitor(keras.callbacks.Callback):
    """Tracks each encoder's multimodal-to-unimodal gradient-norm ratio.

    On a fixed probe batch, for every encoder of a `keras_dgl.DGLModel`, it
    measures the L2 norm (over all the encoder's trainable variables) of
    the gradient the encoder would receive from the multimodal loss
    `CE(fusion(features), y)` and from its own unimodal loss
    `CE(unimodal_m, y)`, both without any stop-gradient and whatever the
    model's `method`, and their ratio (multimodal / unimodal). Trained
    jointly, the ratio falls below 1 as the other modalities learn: fusion
    shrinks the gradient each encoder receives, which is the imbalance
    Disentangled Gradient Learning removes.

    The measurement changes nothing: no variable is updated and state
    updates (batch-norm statistics, seeds) are discarded. It runs eagerly,
    so keep the probe batch small. It is taken at the start of training,
    every `every_n_steps` training steps, and at each epoch end.

    Epoch-end values are added to the logs, so they reach the `History`
    returned by `fit` and later callbacks, as `<modality>_grad_multimodal`,
    `<modality>_grad_unimodal` and `<modality>_grad_ratio`. Every
    measurement is kept in `monitor.history`, a dict of lists with the same
    keys plus `"step"` (training steps done) and `"epoch"`. With `log_dir`,
    each measurement is also written as TensorBoard scalars
    (`grad_ratio/<modality>`, ...).

    Args:
        data: the probe batch: a `(x, y)` tuple (`x` a dict keyed by
            modality) or a `tf.data.Dataset` / iterable of such batches, of
            which the first batch is used.
        every_n_steps: int or `None`. Also measure every this many training
            steps. Defaults to `None` (start of training and epoch ends only).
        log_dir: str or `None`. TensorBoard log directory. Defaults to `None`.
        training: bool. Run the encoders and fusion in training mode
            (dropout, batch statistics) when measuring. Defaults to `False`.

    Example:

    ```python
    monitor = keras_dgl.callbacks.GradientMonitor(
        splits.validation.take(1), every_n_steps=10, log_dir="logs/joint"
    )
    history = model.fit(splits.train, epochs=5, callbacks=[monitor])
    history.history["weak_grad_ratio"]  # one value per epoch
    monitor.history["weak_grad_ratio"]  # one value per measurement
    ```

    References:
        - [Wei, Luo and Luo, ICCV 2025](https://arxiv.org/abs/2507.10213)
    """

    def __init__(self, data, every_n_steps=None, log_dir=None, training=False):
        super().__init__()
        if every_n_steps is not None and (
            isinstance(every_n_steps, bool)
            or not isinstance(every_n_steps, int)
            or every_n_steps < 1
        ):
            raise ValueError(
                "`every_n_steps` must be a positive int or None. "
                f"Received: {every_n_steps!r}"
            )
        self.every_n_steps = every_n_steps
        self.log_dir = log_dir
        self.training = bool(training)
        self._x, self._y = first_batch(data)
        self.history = {"step": [], "epoch": []}
        self._step = 0
        self._epoch = 0
        self._writer = None

    # Measurement -------------------------------------------------------------

    def measure(self):
        """Gradient norms and ratios on the probe batch, now.

        Returns:
            dict `{"<modality>_grad_multimodal": float,
            "<modality>_grad_unimodal": float, "<modality>_grad_ratio": float}`.
        """
        model = self.model  # on JAX this syncs the training state first
        names = list(model.modality_names)
        if not getattr(model, "compiled", False) or not hasattr(model, "term_loss"):
            raise RuntimeError("GradientMonitor needs a compiled DGLModel.")
        if not model.built:
            # The TensorFlow trainer builds the model only in its first step.
            model.build({name: (None,) + self._x[name].shape[1:] for name in names})
        variables = [
            v for name in names for v in model.encoders[name].trainable_variables
        ]
        owners = [
            name for name in names for _ in model.encoders[name].trainable_variables
        ]
        x, y = self._x, self._y

        def features():
            return {
                name: model.encoders[name](x[name], training=self.training)
                for name in names
            }

        def multimodal_loss():
            with _discarded_state_updates(model):
                logits = model.fusion(features(), training=self.training)
                return model.term_loss(y, logits)

        def unimodal_losses():
            # Each unimodal prediction depends on its own encoder only, so the
            # gradient of the sum gives every encoder its own term's gradient.
            with _discarded_state_updates(model):
                logits = model.fusion(
                    features(), unimodal=True, training=self.training
                )
                total = 0.0
                for name in names:
                    total = total + model.term_loss(y, logits[name])
                return total

        with dgl_backend.preserved_global_rng():
            _, multimodal = dgl_backend.value_and_gradients(multimodal_loss, variables)
            _, unimodal = dgl_backend.value_and_gradients(unimodal_losses, variables)
        results = {}
        for name in names:
            mm = _norm(g for g, o in zip(multimodal, owners) if o == name)
            uni = _norm(g for g, o in zip(unimodal, owners) if o == name)
            results[f"{name}_grad_multimodal"] = mm
            results[f"{name}_grad_unimodal"] = uni
            results[f"{name}_grad_ratio"] = mm / uni if uni > 0 else math.nan
        return results

    def _record(self):
        if self.history["step"] and self.history["step"][-1] == self._step:
            # Already measured at this step (e.g. every_n_steps at an epoch end).
            return {
                key: values[-1]
                for key, values in self.history.items()
                if key not in ("step", "epoch")
            }
        values = self.measure()
        self.history["step"].append(self._step)
        self.history["epoch"].append(self._epoch)
        for key, value in values.items():
            self.history.setdefault(key, []).append(value)
        if self._writer is not None:
            import tensorflow as tf

            with self._writer.as_default():
                for key, value in values.items():
                    name, _, quantity = key.rpartition("_grad_")
                    tf.summary.scalar(f"grad_{quantity}/{name}", value, step=self._step)
            self._writer.flush()
        return values

    # Callback hooks ----------------------------------------------------------

    def on_train_begin(self, logs=None):
        if self.log_dir is not None and self._writer is None:
            import tensorflow as tf

            self._writer = tf.summary.create_file_writer(self.log_dir)
        self._record()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self.every_n_steps and self._step % self.every_n_steps == 0:
            self._record()

    def on_epoch_end(self, epoch, logs=None):
        values = self._record()
        if logs is not None:
            logs.update(values)

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def get_config(self):
        # The probe batch is data, not configuration.
        return {
            "every_n_steps": self.every_n_steps,
            "log_dir": self.log_dir,
            "training": self.training,
        }


def _norm(gradients):
    return float(math.sqrt(sum(float(np.sum(np.square(g))) for g in gradients)))


class _discarded_state_updates:
    """Runs a block with every model variable at its current value, keeping no update.

    Values are read through any enclosing StatelessScope, so gradients taken
    by `keras_dgl.backend.value_and_gradients` still reach them on JAX.
    """

    def __init__(self, model):
        self._scope = keras.StatelessScope(
            state_mapping=[(v, v.value) for v in model.variables]
        )

    def __enter__(self):
        return self._scope.__enter__()

    def __exit__(self, *args):
        return self._scope.__exit__(*args)
