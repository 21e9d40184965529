"""Linear probe of each encoder's frozen features."""

import numpy as np

from keras_dgl.diagnostics._data import class_ids
from keras_dgl.diagnostics._data import encoder_features
from keras_dgl.diagnostics._data import score
from keras_dgl.diagnostics._data import task_of
from keras_dgl.diagnostics._data import to_numpy


def linear_probe(model, train_data, test_data, max_iter=1000, batch_size=256):
    """Per-modality score of a linear model on frozen encoder features.

    Each encoder is run in inference mode on both splits; a standardized
    linear model (scikit-learn) matching the model's `task` is fit on its
    training features and scored on its test features: a multinomial
    logistic regression scored by accuracy (classification), one logistic
    regression per label scored by the mean per-label accuracy
    (multi-label), a ridge regression scored by R² (regression). This
    measures what a jointly trained encoder has learned better than the
    model's own per-modality prediction (the fusion layer with the other
    modalities zeroed), which can be far worse than the features allow;
    both are returned, with the fused score, all on `test_data` and all in
    the same measure.

    Args:
        model: a `keras_dgl.DGLModel`.
        train_data: `(x, y)` arrays or a finite iterable of `(x, y)` batches
            (e.g. a `tf.data.Dataset`) to fit the probes on.
        test_data: the same, to score them on.
        max_iter: int. Iterations of the logistic-regression solver.
            Defaults to `1000`.
        batch_size: int. Batch size of the feature extraction. Defaults to
            `256`.

    Returns:
        A dict: `"linear_probe"` and `"unimodal_head"`, each
        `{modality: score}`, and `"fused"`, the fused score.

    Example:

    ```python
    splits = keras_dgl.datasets.synthetic()
    result = keras_dgl.diagnostics.linear_probe(
        model, splits.numpy("train"), splits.numpy("test")
    )
    result["linear_probe"]["weak"], result["unimodal_head"]["weak"]
    ```

    References:
        - [Alain and Bengio, 2016](https://arxiv.org/abs/1610.01644) (linear
          probes)
        - [Peng et al., CVPR 2022](https://arxiv.org/abs/2203.15332) (probes of
          jointly trained encoders)
    """
    task = task_of(model, "linear_probe")
    x_train, y_train = to_numpy(train_data)
    x_test, y_test = to_numpy(test_data)
    train_features = encoder_features(model, x_train, batch_size)
    test_features = encoder_features(model, x_test, batch_size)
    probes = {}
    for name in model.modality_names:
        probe = _probe(task, max_iter)
        if task == "classification":
            probe.fit(train_features[name], class_ids(y_train))
            probes[name] = float(
                np.mean(probe.predict(test_features[name]) == class_ids(y_test))
            )
            continue
        targets = np.asarray(y_train).reshape(len(y_train), -1)
        if task == "multilabel":
            probe.fit(train_features[name], (targets > 0.5).astype(int))
            outputs = probe.decision_function(test_features[name])
        else:
            probe.fit(train_features[name], targets)
            outputs = probe.predict(test_features[name])
        outputs = np.asarray(outputs).reshape(len(y_test), -1)
        probes[name] = score(outputs, y_test, task)
    predictions = model.predict_modalities(x_test, batch_size=batch_size, verbose=0)
    return {
        "linear_probe": probes,
        "unimodal_head": {
            name: score(predictions[name], y_test, task)
            for name in model.modality_names
        },
        "fused": score(predictions["fused"], y_test, task),
    }


def _probe(task, max_iter):
    from sklearn.linear_model import LogisticRegression
    from sklearn.linear_model import Ridge
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if task == "classification":
        model = LogisticRegression(max_iter=max_iter)
    elif task == "multilabel":
        model = OneVsRestClassifier(LogisticRegression(max_iter=max_iter))
    else:
        model = Ridge(alpha=1.0)
    return make_pipeline(StandardScaler(), model)
