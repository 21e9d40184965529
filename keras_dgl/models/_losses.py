"""The per-term loss of a DGLModel: resolved from `compile(loss=...)`, read on logits."""

import keras
from keras import ops

from keras_dgl.models import _validation

# Losses that would read the model's logits as probabilities when named by string.
_LOGIT_LOSSES = {
    "sparse_categorical_crossentropy": keras.losses.SparseCategoricalCrossentropy,
    "categorical_crossentropy": keras.losses.CategoricalCrossentropy,
    "categorical_focal_crossentropy": keras.losses.CategoricalFocalCrossentropy,
    "binary_crossentropy": keras.losses.BinaryCrossentropy,
    "binary_focal_crossentropy": keras.losses.BinaryFocalCrossentropy,
}


def logits_loss(loss):
    """The per-term loss, checked to read logits (the model outputs logits)."""
    if loss is None:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    if isinstance(loss, str) and loss in _LOGIT_LOSSES:
        return _LOGIT_LOSSES[loss](from_logits=True)
    loss = keras.losses.get(loss)
    if isinstance(loss, keras.losses.Loss):
        if loss.get_config().get("from_logits") is False:
            raise ValueError(
                f"DGLModel outputs logits, but the loss {loss.name!r} expects "
                "probabilities. Pass `from_logits=True` to the loss."
            )
    elif any(loss is getattr(keras.losses, name, None) for name in _LOGIT_LOSSES):
        # The functions read probabilities unless called with from_logits.
        raise ValueError(
            f"DGLModel outputs logits, but the loss function {loss.__name__} "
            f"reads probabilities. Pass loss={loss.__name__!r} (a string) or "
            "a loss object with `from_logits=True`."
        )
    elif callable(loss):
        loss = _FunctionLoss(loss)
    return loss


class _FunctionLoss(keras.losses.Loss):
    """A loss function (`"mse"`, or the user's own) applied as a Loss object.

    A bare function returns per-example values and takes no sample weights;
    `keras.losses.Loss` reduces and weighs them as Keras' loss classes do.
    The compile config keeps the function itself, so this is never saved.
    """

    def __init__(self, fn):
        super().__init__(name=getattr(fn, "__name__", "loss"))
        self.fn = fn

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred)


def loss_name(loss):
    return repr(getattr(loss, "name", None) or getattr(loss, "__name__", str(loss)))


def check_task(model, kind, loss):
    """Checks that the loss's task suits the fusion layer's width and the method."""
    task = _validation.TASKS[kind]
    units = model.fusion.units
    if kind in (_validation.CLASS_IDS, _validation.ONE_HOT) and units < 2:
        raise ValueError(
            f"A classification loss needs at least 2 outputs; the fusion "
            f"layer has units={units}. For one 0/1 target use "
            "loss='binary_crossentropy', for a real-valued one e.g. "
            "loss='mse'."
        )
    method = model._method
    # A custom loss may well be a classification one: only the known
    # multi-label and regression losses are refused.
    if method.needs_class_labels and task in ("multilabel", "regression"):
        raise ValueError(
            f"method={model.method!r} needs a classification loss (sparse or "
            f"categorical cross-entropy): {method.needs_class_labels} The "
            f"loss {loss_name(loss)} makes this a {task} task; use one of the "
            "methods 'dgl', 'joint', 'joint_aux', 'gblend' or 'mmpareto'."
        )


def class_ids(y):
    """Integer class ids from sparse or one-hot labels."""
    if len(y.shape) == 2 and y.shape[1] not in (None, 1):
        return ops.argmax(y, axis=-1)
    return ops.cast(ops.reshape(y, (-1,)), "int32")
