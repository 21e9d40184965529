"""Linear probes of each encoder's frozen features."""

import numpy as np

from keras_dgl.diagnostics._task import check_task
from keras_dgl.diagnostics._task import score
from keras_dgl.diagnostics._task import task_of
from keras_dgl.utils.accuracy import class_ids
from keras_dgl.utils.encoder_features import encoder_features
from keras_dgl.utils.encoder_features import predictions_from_features


def probe_accuracy(
    train_features,
    train_labels,
    test_features,
    test_labels,
    max_iter=1000,
    task="classification",
):
    """Test score of a linear model fit on each modality's features.

    For every modality, a standardized linear model (scikit-learn) matching
    `task` is fit on its training features and scored on its test features:
    a multinomial logistic regression scored by accuracy
    (`"classification"`), one logistic regression per label scored by the
    mean per-label accuracy (`"multilabel"`, 0/1 targets), a ridge
    regression scored by R² averaged over targets (`"regression"`). BLAS runs on one thread: these fits are small, and BLAS
    threads spinning beside a Keras backend's own threads make them many
    times slower on a few cores.

    Args:
        train_features: dict mapping a modality to an `(n_train, dim)`
            array (e.g. from `keras_dgl.utils.encoder_features`).
        train_labels: array of `n_train` sparse or one-hot labels.
        test_features: dict with the same keys, `(n_test, dim)` arrays.
        test_labels: array of `n_test` labels.
        max_iter: int. Iterations of the solver. Defaults to `1000`.
        task: str. `"classification"` (default), `"multilabel"` or
            `"regression"` (see `keras_dgl.DGLModel.task`).

    Returns:
        dict `{modality: test score}`.

    Example:

    ```python
    train = keras_dgl.utils.encoder_features(model.encoders, splits.numpy("train"))
    test = keras_dgl.utils.encoder_features(model.encoders, splits.numpy("test"))
    keras_dgl.diagnostics.probe_accuracy(*train, *test)  # {"strong": 0.97, ...}
    ```

    References:
        - [Alain and Bengio, 2016](https://arxiv.org/abs/1610.01644) (linear
          probes)
    """
    from threadpoolctl import threadpool_limits

    check_task(task, "probe_accuracy")
    missing = sorted(set(train_features) ^ set(test_features))
    if missing:
        raise ValueError(
            f"Training and test features must name the same modalities; "
            f"only one of them has {missing}."
        )
    if task == "classification":
        y_train = class_ids(train_labels)
    else:
        y_train = np.asarray(train_labels, "float64")
        y_train = y_train.reshape(len(y_train), -1)
        if task == "multilabel":
            y_train = (y_train > 0.5).astype("int64")
    scores = {}
    with threadpool_limits(1):
        for name in train_features:
            probe = _probe(task, max_iter)
            probe.fit(train_features[name], y_train)
            if task == "classification":
                scores[name] = float(
                    probe.score(test_features[name], class_ids(test_labels))
                )
                continue
            if task == "multilabel":
                outputs = probe.decision_function(test_features[name])
            else:
                outputs = probe.predict(test_features[name])
            scores[name] = score(outputs, test_labels, task)
    return scores


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


def linear_probe(model, train_data, test_data, max_iter=1000, batch_size=256):
    """Per-modality score of a linear model on frozen encoder features.

    Each encoder is run in inference mode on both splits and probed with
    `probe_accuracy` for the model's `task` (accuracy for classification,
    mean per-label accuracy for multi-label, R² for regression). This measures what a jointly trained encoder has
    learned better than the model's own per-modality prediction (the fusion
    layer with the other modalities zeroed), which can be far worse than the
    features allow; both are returned, with the fused score, all on
    `test_data` and in the same measure.

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
    # Streamed: each split is encoded once, one batch of inputs at a time,
    # and the model's predictions are computed from the test features.
    train = encoder_features(model.encoders, train_data, batch_size)
    test = encoder_features(model.encoders, test_data, batch_size)
    probes = probe_accuracy(*train, *test, max_iter=max_iter, task=task)
    y_test = test[1]
    predictions = predictions_from_features(
        model.outputs_from_features, test[0], batch_size
    )
    return {
        "linear_probe": {name: probes[name] for name in model.modality_names},
        "unimodal_head": {
            name: score(predictions[name], y_test, task)
            for name in model.modality_names
        },
        "fused": score(predictions["fused"], y_test, task),
    }
