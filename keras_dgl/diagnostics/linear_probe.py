"""Linear probes of each encoder's frozen features."""

from keras_dgl.utils.accuracy import accuracy
from keras_dgl.utils.accuracy import class_ids
from keras_dgl.utils.data_adapter import to_numpy
from keras_dgl.utils.encoder_features import encoder_features


def probe_accuracy(train_features, train_labels, test_features, test_labels, max_iter=1000):
    """Test accuracy of a linear classifier fit on each modality's features.

    For every modality, a standardized multinomial logistic regression
    (scikit-learn) is fit on its training features and scored on its test
    features. BLAS runs on one thread: these fits are small, and BLAS
    threads spinning beside a Keras backend's own threads make them many
    times slower on a few cores.

    Args:
        train_features: dict mapping a modality to an `(n_train, dim)`
            array (e.g. from `keras_dgl.utils.encoder_features`).
        train_labels: array of `n_train` sparse or one-hot labels.
        test_features: dict with the same keys, `(n_test, dim)` arrays.
        test_labels: array of `n_test` labels.
        max_iter: int. Iterations of the solver. Defaults to `1000`.

    Returns:
        dict `{modality: test accuracy}`.

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
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    missing = sorted(set(train_features) ^ set(test_features))
    if missing:
        raise ValueError(
            f"Training and test features must name the same modalities; "
            f"only one of them has {missing}."
        )
    y_train, y_test = class_ids(train_labels), class_ids(test_labels)
    scores = {}
    with threadpool_limits(1):
        for name in train_features:
            probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter))
            probe.fit(train_features[name], y_train)
            scores[name] = float(probe.score(test_features[name], y_test))
    return scores


def linear_probe(model, train_data, test_data, max_iter=1000, batch_size=256):
    """Per-modality accuracy of a linear classifier on frozen encoder features.

    Each encoder is run in inference mode on both splits and probed with
    `probe_accuracy`. This measures what a jointly trained encoder has
    learned better than the model's own per-modality prediction (the fusion
    layer with the other modalities zeroed), which can be far worse than the
    features allow; both are returned, with the fused accuracy, all on
    `test_data`.

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
        `{modality: accuracy}`, and `"fused"`, the fused accuracy.

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
    x_test, y_test = to_numpy(test_data)
    train = encoder_features(model.encoders, train_data, batch_size)
    test = encoder_features(model.encoders, (x_test, y_test), batch_size)
    probes = probe_accuracy(*train, *test, max_iter=max_iter)
    predictions = model.predict_modalities(x_test, batch_size=batch_size, verbose=0)
    return {
        "linear_probe": {name: probes[name] for name in model.modality_names},
        "unimodal_head": {
            name: accuracy(predictions[name], y_test) for name in model.modality_names
        },
        "fused": accuracy(predictions["fused"], y_test),
    }
