"""Gradient-Blending: loss weights from overfitting-to-generalization ratios."""

import math

# Keeps the weight finite when a term's overfitting did not change at all.
_MIN_SQUARED_DELTA_OVERFITTING = 1e-12


def gblend_weights(
    model_builder, train_data, validation_data, epochs=5, verbose=0
):
    """Estimates Gradient-Blending weights for the fused and unimodal losses.

    Offline Gradient-Blending (Wang et al., 2020). Each loss term, the
    multimodal one (`"fused"`) and each modality's unimodal one, is trained
    alone on a fresh model for `epochs` epochs. For each, with `L_T` and `L_V`
    its loss on `train_data` and `validation_data` before (`0`) and after
    (`N`) that training:

    - generalization gain `dG = L_V(0) - L_V(N)`;
    - overfitting `O = L_V - L_T` and its change `dO = O(N) - O(0)`;
    - weight `w ∝ max(dG, 0) / dO²`, normalized to sum to 1 over the terms
      (uniform if no term generalized).

    Terms that learn much and overfit little get large weights. The
    validation split must not be the test split; the paper holds out part
    of the training set.

    `model_builder` must return a fresh, compiled `keras_dgl.DGLModel` built
    from the keyword arguments `method`, `alpha` and `fused_weight` it is
    called with; it is called once per term with `method="gblend"`. Use the
    same builder, optimizer and epochs as for the final model.

    Args:
        model_builder: callable `(method, alpha, fused_weight) -> DGLModel`.
        train_data: `(x, y)` arrays or a `tf.data.Dataset` of `(x, y)`
            batches, as for `fit`.
        validation_data: the same, for the validation split.
        epochs: int. Epochs each term is trained for. Defaults to `5`.
        verbose: int. Verbosity of the `fit` calls. Defaults to `0`.

    Returns:
        A dict with `"weights"`, `{"fused": w, "<modality>": w, ...}` summing
        to 1, and `"terms"`, per term the losses before and after training
        and `delta_generalization`, `delta_overfitting`, `ogr` (|dO / dG|).

    Example:

    ```python
    def build(**kwargs):
        model = keras_dgl.DGLModel(
            {"audio": keras_dgl.encoders.MLPEncoder(),
             "video": keras_dgl.encoders.MLPEncoder()},
            keras_dgl.layers.ConcatFusion(num_classes=6),
            **kwargs,
        )
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9))
        return model

    blend = keras_dgl.gblend_weights(build, splits.train, splits.validation)
    weights = blend["weights"]
    model = build(
        method="gblend",
        fused_weight=weights.pop("fused"),
        alpha=weights,
    )
    model.fit(splits.train, epochs=20)
    ```

    References:
        - [Wang, Tran and Feiszli, CVPR 2020](https://arxiv.org/abs/1905.12681)
    """
    if int(epochs) < 1:
        raise ValueError(f"`epochs` must be at least 1. Received: {epochs}")
    first = model_builder(method="gblend", alpha=0.0, fused_weight=1.0)
    names = list(first.modality_names)
    terms = {}
    for term in ["fused"] + names:
        if term == "fused":
            model, log_name = first, "multimodal_loss"
        else:
            alpha = {name: float(name == term) for name in names}
            model = model_builder(method="gblend", alpha=alpha, fused_weight=0.0)
            log_name = f"{term}_loss"
        terms[term] = _train_one_term(
            model, log_name, train_data, validation_data, int(epochs), verbose
        )
    raw = {
        term: max(info["delta_generalization"], 0.0)
        / max(info["delta_overfitting"] ** 2, _MIN_SQUARED_DELTA_OVERFITTING)
        for term, info in terms.items()
    }
    total = sum(raw.values())
    if total > 0 and math.isfinite(total):
        weights = {term: value / total for term, value in raw.items()}
    else:
        weights = {term: 1.0 / len(raw) for term in raw}
    return {"weights": weights, "terms": terms}


def _train_one_term(model, log_name, train_data, validation_data, epochs, verbose):
    before_train = _loss(model, train_data, log_name)
    before_val = _loss(model, validation_data, log_name)
    if isinstance(train_data, tuple):
        model.fit(*train_data, epochs=epochs, verbose=verbose)
    else:
        # A dataset shuffles itself; Keras warns if asked to shuffle one.
        model.fit(train_data, epochs=epochs, verbose=verbose, shuffle=False)
    after_train = _loss(model, train_data, log_name)
    after_val = _loss(model, validation_data, log_name)
    delta_generalization = before_val - after_val
    delta_overfitting = (after_val - after_train) - (before_val - before_train)
    ogr = (
        abs(delta_overfitting / delta_generalization)
        if delta_generalization
        else math.inf
    )
    return {
        "train_loss": [before_train, after_train],
        "validation_loss": [before_val, after_val],
        "delta_generalization": delta_generalization,
        "delta_overfitting": delta_overfitting,
        "ogr": ogr,
    }


def _loss(model, data, log_name):
    if isinstance(data, tuple):
        logs = model.evaluate(*data, verbose=0, return_dict=True)
    else:
        logs = model.evaluate(data, verbose=0, return_dict=True)
    return float(logs[log_name])
