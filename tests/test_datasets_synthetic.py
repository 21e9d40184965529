"""Tests of keras_dgl.datasets.synthetic and DatasetSplits."""

import numpy as np
import pytest

from keras_dgl.datasets import DatasetSplits, synthetic


def _nearest_mean_accuracy(train_x, train_y, test_x, test_y, num_classes):
    means = np.stack([train_x[train_y == k].mean(0) for k in range(num_classes)])
    distances = ((test_x[:, None, :] - means[None]) ** 2).sum(-1)
    return float((distances.argmin(1) == test_y).mean())


def test_shapes_dtypes_and_counts():
    splits = synthetic(num_train=300, num_validation=100, num_test=200,
                       batch_size=64)
    assert isinstance(splits, DatasetSplits)
    assert splits.num_classes == 6
    assert splits.class_names == [f"class_{k}" for k in range(6)]
    assert splits.input_shapes == {"strong": (16,), "weak": (16,)}
    features, labels = next(iter(splits.train))
    assert set(features) == {"strong", "weak"}
    assert features["strong"].dtype.name == "float32"
    assert features["strong"].shape == (64, 16)
    assert labels.dtype.name == "int32" and labels.shape == (64,)
    for split, count in (("train", 300), ("validation", 100), ("test", 200)):
        x, y = splits.numpy(split)
        assert y.shape == (count,) and y.dtype == np.int32
        assert x["weak"].shape == (count, 16) and x["weak"].dtype == np.float32
        assert 0 <= y.min() and y.max() < 6
        assert sum(splits.info["class_counts"][split]) == count
    # The test pipeline yields the same rows, in order, as numpy("test").
    x, y = splits.numpy("test")
    streamed = [(f["strong"].numpy(), l.numpy()) for f, l in splits.test]
    np.testing.assert_array_equal(np.concatenate([s[0] for s in streamed]),
                                  x["strong"])
    np.testing.assert_array_equal(np.concatenate([s[1] for s in streamed]), y)


def test_deterministic_given_seed():
    a = synthetic(seed=3, num_train=200, num_validation=50, num_test=50)
    b = synthetic(seed=3, num_train=200, num_validation=50, num_test=50)
    c = synthetic(seed=4, num_train=200, num_validation=50, num_test=50)
    for split in ("train", "validation", "test"):
        xa, ya = a.numpy(split)
        xb, yb = b.numpy(split)
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(xa["strong"], xb["strong"])
    assert not np.array_equal(a.numpy("train")[0]["weak"],
                              c.numpy("train")[0]["weak"])
    # The shuffled training stream is seeded too.
    first_a = next(iter(a.train))[1].numpy()
    first_b = next(iter(b.train))[1].numpy()
    np.testing.assert_array_equal(first_a, first_b)


def test_appending_a_modality_keeps_earlier_ones():
    one = synthetic(modalities={"a": 0.7}, num_train=100, num_validation=0,
                    num_test=50)
    two = synthetic(modalities={"a": 0.7, "b": 0.2}, num_train=100,
                    num_validation=0, num_test=50)
    np.testing.assert_array_equal(one.numpy("train")[0]["a"],
                                  two.numpy("train")[0]["a"])
    assert one.validation is None
    with pytest.raises(ValueError, match="no 'validation' split"):
        one.numpy("validation")


def test_strong_modality_is_more_informative():
    splits = synthetic(num_train=1200, num_validation=0, num_test=600)
    train_x, train_y = splits.numpy("train")
    test_x, test_y = splits.numpy("test")
    accuracy = {
        name: _nearest_mean_accuracy(train_x[name], train_y, test_x[name],
                                     test_y, 6)
        for name in ("strong", "weak")
    }
    assert accuracy["strong"] > 0.85
    assert accuracy["strong"] > accuracy["weak"] + 0.15
    assert accuracy["weak"] > 1.0 / 6 + 0.1  # weak, but not pure noise


def test_any_number_of_modalities_and_dims():
    modalities = {
        "a": {"dim": 4, "informativeness": 1.0},
        "b": 0.5,
        "c": {"dim": 9, "informativeness": 0.0},
    }
    splits = synthetic(num_classes=3, modalities=modalities, num_train=90,
                       num_validation=30, num_test=30, batch_size=16)
    assert splits.input_shapes == {"a": (4,), "b": (16,), "c": (9,)}
    features, labels = next(iter(splits.validation))
    assert features["c"].shape == (16, 9)
    assert splits.info["informativeness"] == {"a": 1.0, "b": 0.5, "c": 0.0}
    single = synthetic(modalities={"only": 0.5}, num_train=10,
                       num_validation=5, num_test=5)
    assert list(single.input_shapes) == ["only"]


def test_class_ratio_gives_imbalanced_priors():
    splits = synthetic(num_classes=4, class_ratio=8.0, num_train=4000,
                       num_validation=0, num_test=10)
    counts = np.array(splits.info["class_counts"]["train"])
    assert counts[0] > 5 * counts[-1]
    np.testing.assert_allclose(splits.info["class_priors"][0]
                               / splits.info["class_priors"][-1], 8.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(modalities={}), "non-empty dict"),
        (dict(modalities={"a": 1.5}), "informativeness must lie in"),
        (dict(modalities={"a": {"dim": 3}}), "informativeness"),
        (dict(modalities={"a": {"dim": 0, "informativeness": 0.5}}), "dim"),
        (dict(modalities={"a": "strong"}), "float or a dict"),
        (dict(num_classes=1), "num_classes"),
        (dict(num_train=0), "num_train"),
        (dict(class_ratio=0.5), "class_ratio"),
        (dict(task="ranking"), "task must be one of"),
        (dict(task="multilabel", num_classes=0), "num_classes"),
        (dict(task="regression", num_targets=0), "num_targets"),
        (dict(task="regression", class_ratio=2.0), "classification only"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        synthetic(**kwargs)


def test_unknown_split_name():
    splits = synthetic(num_train=10, num_validation=5, num_test=5)
    with pytest.raises(ValueError, match="Unknown split"):
        splits.numpy("valid")


def test_feeds_keras_fit_on_current_backend():
    import keras

    splits = synthetic(num_classes=3, num_train=128, num_validation=32,
                       num_test=32, batch_size=32)
    inputs = {
        name: keras.Input(shape=shape, name=name)
        for name, shape in splits.input_shapes.items()
    }
    merged = keras.layers.Concatenate()([inputs["strong"], inputs["weak"]])
    outputs = keras.layers.Dense(3)(merged)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(splits.train, validation_data=splits.validation,
                        epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    predictions = model.predict(splits.test, verbose=0)
    assert predictions.shape == (32, 3)


def test_multilabel_task_has_independent_0_1_labels():
    splits = synthetic(task="multilabel", num_classes=5, num_train=3000,
                       num_validation=100, num_test=1000, batch_size=50)
    assert splits.task == "multilabel" and splits.num_classes == 5
    assert splits.class_names == [f"label_{k}" for k in range(5)]
    x, y = splits.numpy("train")
    assert y.shape == (3000, 5) and y.dtype == np.float32
    assert set(np.unique(y)) == {0.0, 1.0}
    np.testing.assert_allclose(y.mean(axis=0), 0.3, atol=0.04)
    assert splits.info["label_counts"]["train"] == y.sum(axis=0).astype(int).tolist()
    _, batch = next(iter(splits.test))
    assert tuple(batch.shape) == (50, 5)
    # Each label shifts the strong modality along its own direction: a
    # least-squares decoder recovers the labels far better from it.
    test_x, test_y = splits.numpy("test")
    scores = {}
    for name in ("strong", "weak"):
        weights, *_ = np.linalg.lstsq(
            np.c_[x[name], np.ones(len(y))], y, rcond=None
        )
        decoded = np.c_[test_x[name], np.ones(len(test_y))] @ weights > 0.5
        scores[name] = np.mean(decoded == (test_y > 0.5))
    assert scores["strong"] > 0.9 and scores["strong"] > scores["weak"] + 0.05


def test_regression_task_targets_follow_the_shared_factors():
    splits = synthetic(task="regression", num_targets=3, num_train=3000,
                       num_validation=0, num_test=1000)
    assert splits.task == "regression" and splits.num_classes == 3
    x, y = splits.numpy("train")
    assert y.shape == (3000, 3) and y.dtype == np.float32
    np.testing.assert_allclose(y.std(axis=0), 1.0, atol=0.1)
    np.testing.assert_allclose(splits.info["target_std"]["train"], y.std(axis=0),
                               rtol=1e-5)
    test_x, test_y = splits.numpy("test")
    r2 = {}
    for name in ("strong", "weak"):
        weights, *_ = np.linalg.lstsq(np.c_[x[name], np.ones(len(y))], y, rcond=None)
        residual = test_y - np.c_[test_x[name], np.ones(len(test_y))] @ weights
        r2[name] = 1 - residual.var(axis=0).mean() / test_y.var(axis=0).mean()
    assert r2["strong"] > 0.85 and r2["strong"] > r2["weak"] + 0.1
    assert r2["weak"] > 0.2


def test_tasks_keep_the_classification_data_and_are_deterministic():
    # The default task is unchanged by the task option's existence.
    plain = synthetic(num_train=50, num_validation=10, num_test=10, seed=2)
    explicit = synthetic(task="classification", num_train=50, num_validation=10,
                         num_test=10, seed=2)
    np.testing.assert_array_equal(plain.numpy("train")[1], explicit.numpy("train")[1])
    assert plain.task == "classification"
    for task in ("multilabel", "regression"):
        a = synthetic(task=task, num_train=50, num_validation=10, num_test=10, seed=3)
        b = synthetic(task=task, num_train=50, num_validation=10, num_test=10, seed=3)
        np.testing.assert_array_equal(a.numpy("test")[1], b.numpy("test")[1])
        np.testing.assert_array_equal(a.numpy("test")[0]["weak"],
                                      b.numpy("test")[0]["weak"])
