"""Pieces shared by several methods: forward paths, loss terms, variable owners."""

import keras
from keras import ops

# Guards logarithms and ratios of probabilities that underflow to 0.
EPSILON = 1e-12


def detach(features):
    return {name: ops.stop_gradient(f) for name, f in features.items()}


def frozen_unimodal(model, features, training):
    """Unimodal predictions whose gradient cannot reach the fusion weights.

    The weights on the fused path are swapped for stop-gradient copies of
    their current values (a StatelessScope), so the unimodal losses reach
    the encoders through them without training them. Separate unimodal
    heads stay live. This works for any fusion layer, sublayers included.
    """
    fusion = model.fusion
    frozen = {id(v) for v in fusion.fused_path_variables()}
    mapping = [
        (v, ops.stop_gradient(v.value) if id(v) in frozen else v.value)
        for v in fusion.trainable_variables
    ]
    # Non-trainable state must be mapped too: on JAX an unmapped variable
    # would be read as a constant captured at trace time.
    mapping += [(v, v.value) for v in fusion.non_trainable_variables]
    with keras.StatelessScope(state_mapping=mapping):
        return fusion(features, unimodal=True, training=training)


def weighted_terms(model, y, y_pred, sample_weight, unimodal=True):
    """`fused_weight * CE(fused) + sum_m alpha_m * CE(unimodal_m)`."""
    total = model._term(y, y_pred["fused"], sample_weight)
    if model.fused_weight != 1.0:
        total = ops.multiply(model.fused_weight, total)
    if unimodal:
        for name in model.modality_names:
            weight = model._alphas[name]
            if weight:
                term = model._term(y, y_pred["unimodal"][name], sample_weight)
                total = ops.add(total, ops.multiply(weight, term))
    return total


def encoder_owners(model):
    """For each of `model.trainable_variables`, the modality owning it, or None."""
    owner = {
        id(v): name
        for name in model.modality_names
        for v in model.encoders[name].trainable_variables
    }
    return [owner.get(id(v)) for v in model.trainable_variables]


def targets(y, num_classes):
    """One-hot float32 targets from class ids `(batch,)`/`(batch, 1)` or one-hot."""
    if len(y.shape) == 2 and y.shape[-1] not in (None, 1):
        return ops.cast(y, "float32")
    ids = ops.cast(ops.reshape(y, (-1,)), "int32")
    return ops.one_hot(ids, num_classes, dtype="float32")


def true_class_probabilities(logits, y):
    """Per example, the softmax probability of the true class (no gradient)."""
    logits = ops.cast(ops.stop_gradient(logits), "float32")
    probabilities = ops.softmax(logits, axis=-1)
    return ops.sum(probabilities * targets(y, logits.shape[-1]), axis=-1)


def mean_of_others(values, name):
    """Mean of a dict of scalars over every key but `name`."""
    return ops.mean(ops.stack([v for k, v in values.items() if k != name]))


def zero_gradient_if_none(gradient, variable):
    return ops.zeros(variable.shape, variable.dtype) if gradient is None else gradient
