"""The smartwatch loader reads a user's file without running code or guessing names."""

import os
import pickle

import numpy as np
import pytest

from keras_dgl.datasets import smartwatch

# The smartwatch loader is NumPy and tf.data whatever the Keras backend (see conftest).
pytestmark = pytest.mark.backend_independent


def _watch_file(path, **overrides):
    rng = np.random.default_rng(0)
    data = {
        "X": [rng.standard_normal((400, 6)) for _ in range(12)],
        "y": np.arange(12) % 3,
        "subject": np.repeat(np.arange(1, 5), 3),
        "X_labels": ["ax", "ay", "az", "wx", "wy", "wz"],
        "y_labels": ["A", "B", "C"],
    }
    data.update(overrides)
    np.save(path, np.array(data, dtype=object), allow_pickle=True)
    return path


class _RunsCode:
    """A pickle that would call os.getcwd when loaded."""

    def __reduce__(self):
        return (os.getcwd, ())


def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    path = tmp_path / "evil_watch.npy"
    with open(path, "wb") as handle:
        np.lib.format.write_array_header_1_0(
            handle, {"descr": "|O", "fortran_order": False, "shape": ()})
        pickle.dump(_RunsCode(), handle, protocol=2)
    # Plain np.load with pickles allowed would run it:
    assert np.load(path, allow_pickle=True) == os.getcwd()
    with pytest.raises(ValueError, match=r"evil_watch\.npy.*posix\.getcwd|"
                                         r"evil_watch\.npy.*os\.getcwd"):
        smartwatch(data_path=path)


def test_an_ordinary_watch_file_still_loads(tmp_path):
    splits = smartwatch(data_path=_watch_file(tmp_path / "w.npy"),
                        validation_subjects=1, test_subjects=1, batch_size=4)
    assert splits.class_names == ["A", "B", "C"]


@pytest.mark.parametrize("labels", [["A", "B"], None])
def test_missing_class_names_are_an_error(tmp_path, labels):
    path = tmp_path / "short_names.npy"
    if labels is None:
        _watch_file(path)
        data = np.load(path, allow_pickle=True).item()
        del data["y_labels"]
        np.save(path, np.array(data, dtype=object), allow_pickle=True)
    else:
        _watch_file(path, y_labels=labels)
    with pytest.raises(ValueError, match=r"short_names\.npy names \d classes"):
        smartwatch(data_path=path)
