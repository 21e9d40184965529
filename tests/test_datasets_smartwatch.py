"""Tests of keras_dgl.datasets.smartwatch (the seglearn watch recordings)."""

import importlib.util
import os
import pickle

import numpy as np
import pytest

from keras_dgl.datasets import smartwatch

# The smartwatch loader is NumPy and tf.data whatever the Keras backend (see conftest).
pytestmark = pytest.mark.backend_independent


def _data_file():
    spec = importlib.util.find_spec("seglearn")
    if spec is None:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "data",
                        "watch_dataset.npy")
    return path if os.path.isfile(path) else None


DATA_FILE = _data_file()
needs_data = pytest.mark.skipif(DATA_FILE is None,
                                reason="seglearn's watch data not installed")


@pytest.fixture(scope="module")
def default_splits():
    return smartwatch()


@needs_data
def test_shapes_dtypes_and_classes(default_splits):
    splits = default_splits
    assert splits.num_classes == 7
    assert splits.class_names == ["PEN", "ABD", "FEL", "IR", "ER", "TRAP", "ROW"]
    assert splits.input_shapes == {"accelerometer": (200, 3),
                                   "gyroscope": (200, 3)}
    assert splits.info["columns"] == {"accelerometer": ["ax", "ay", "az"],
                                      "gyroscope": ["wx", "wy", "wz"]}
    features, labels = next(iter(splits.train))
    assert features["accelerometer"].shape == (32, 200, 3)
    assert features["gyroscope"].dtype.name == "float32"
    assert labels.dtype.name == "int32"
    for split in ("train", "validation", "test"):
        x, y = splits.numpy(split)
        assert len(y) == splits.info["windows"][split] > 0
        assert x["gyroscope"].shape == (len(y), 200, 3)
        assert set(np.unique(y)) == set(range(7))  # each subject does all 7
    # Streaming the test split gives the numpy() rows in order.
    streamed = np.concatenate([l.numpy() for _, l in splits.test])
    np.testing.assert_array_equal(streamed, splits.numpy("test")[1])


@needs_data
def test_subject_split_is_disjoint_and_complete(default_splits):
    subjects = default_splits.info["subjects"]
    assert len(subjects["test"]) == 2 and len(subjects["validation"]) == 2
    assert len(subjects["train"]) == 6
    train, validation, test = (set(subjects[s]) for s in
                               ("train", "validation", "test"))
    assert not (train & validation or train & test or validation & test)
    assert train | validation | test == set(range(1, 11))
    assert default_splits.info["recordings"] == {"train": 84, "validation": 28,
                                                 "test": 28}


@needs_data
def test_split_seed_changes_the_subject_split(default_splits):
    again = smartwatch(split_seed=0)
    assert again.info["subjects"] == default_splits.info["subjects"]
    others = [smartwatch(split_seed=seed).info["subjects"]["test"]
              for seed in (1, 2)]
    assert any(o != default_splits.info["subjects"]["test"] for o in others)


@needs_data
def test_standardisation_uses_training_statistics_only(default_splits):
    splits = default_splits
    train_x, _ = splits.numpy("train")
    for name in ("accelerometer", "gyroscope"):
        np.testing.assert_allclose(train_x[name].mean(axis=(0, 1)), 0.0,
                                   atol=1e-4)
        np.testing.assert_allclose(train_x[name].std(axis=(0, 1)), 1.0,
                                   atol=1e-3)
    # Recompute the statistics from the raw file: training subjects only.
    data = np.load(DATA_FILE, allow_pickle=True).item()
    window, step = 200, splits.info["step_samples"]["train"]
    pieces = []
    for recording, subject in zip(data["X"], data["subject"]):
        if subject in splits.info["subjects"]["train"]:
            for start in range(0, len(recording) - window + 1, step):
                pieces.append(recording[start:start + window])
    raw = np.stack(pieces)
    np.testing.assert_allclose(splits.info["channel_mean"],
                               raw.mean(axis=(0, 1)), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(splits.info["channel_std"],
                               raw.std(axis=(0, 1)), rtol=1e-6)
    # Held-out subjects are standardised with those, not their own, stats.
    test_x, _ = splits.numpy("test")
    assert np.abs(test_x["gyroscope"].mean(axis=(0, 1))).max() > 1e-3


@needs_data
def test_window_options():
    splits = smartwatch(window_seconds=2.0, overlap=0.5, eval_overlap=0.0,
                        validation_subjects=0, batch_size=8)
    assert splits.input_shapes["gyroscope"] == (100, 3)
    assert splits.info["step_samples"] == {"train": 50, "evaluation": 100}
    assert splits.validation is None
    assert len(splits.info["subjects"]["train"]) == 8
    assert next(iter(splits.test))[0]["accelerometer"].shape == (8, 100, 3)


@needs_data
@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(test_subjects=5, validation_subjects=5), "no training subject"),
        (dict(test_subjects=0), "test_subjects"),
        (dict(overlap=1.0), "overlap"),
        (dict(window_seconds=0.01), "fewer than 2 samples"),
        (dict(window_seconds=100.0), "no window"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        smartwatch(**kwargs)


def test_missing_data_file_is_named(tmp_path):
    missing = tmp_path / "nowhere" / "watch_dataset.npy"
    with pytest.raises(FileNotFoundError, match="nowhere"):
        smartwatch(data_path=missing)


def test_corrupt_data_file_is_named(tmp_path):
    corrupt = tmp_path / "broken_watch.npy"
    corrupt.write_bytes(b"\x93NUMPY garbage that is not a real array")
    with pytest.raises(ValueError, match="broken_watch.npy"):
        smartwatch(data_path=corrupt)
    truncated = tmp_path / "cut_watch.npy"
    if DATA_FILE is not None:
        truncated.write_bytes(open(DATA_FILE, "rb").read()[:5000])
        with pytest.raises(ValueError, match="cut_watch.npy"):
            smartwatch(data_path=truncated)


def test_wrong_layout_is_named(tmp_path):
    path = tmp_path / "odd.npy"
    np.save(path, np.array({"X": [np.zeros((300, 5))], "y": [0],
                            "subject": [1]}, dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"odd\.npy.*shape"):
        smartwatch(data_path=path)
    path = tmp_path / "nodict.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(ValueError, match="nodict.npy"):
        smartwatch(data_path=path)


def test_small_synthetic_file_in_watch_format(tmp_path):
    rng = np.random.default_rng(0)
    data = {
        "X": [rng.standard_normal((400, 6)) for _ in range(12)],
        "y": np.arange(12) % 3,
        "subject": np.repeat(np.arange(1, 5), 3),
        "X_labels": ["ax", "ay", "az", "wx", "wy", "wz"],
        "y_labels": ["A", "B", "C"],
    }
    path = tmp_path / "tiny.npy"
    with open(path, "wb") as handle:
        np.save(handle, np.array(data, dtype=object), allow_pickle=True)
    splits = smartwatch(data_path=path, validation_subjects=1, test_subjects=1,
                        batch_size=4)
    assert splits.class_names == ["A", "B", "C"]
    assert splits.info["recordings"] == {"train": 6, "validation": 3, "test": 3}
    assert pickle.dumps(splits.info)  # info is plain data
