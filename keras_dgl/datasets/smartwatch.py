"""Smartwatch shoulder-exercise recordings (shipped with seglearn), by subject."""

from __future__ import annotations

import importlib.util
import os
import pickle

import numpy as np
import tensorflow as tf

from keras_dgl.datasets.splits import DatasetSplits

SAMPLING_RATE_HZ = 50
_ACCELEROMETER = slice(0, 3)
_GYROSCOPE = slice(3, 6)
_EXPECTED_COLUMNS = ["ax", "ay", "az", "wx", "wy", "wz"]


def smartwatch(
    batch_size=32,
    window_seconds=4.0,
    overlap=0.75,
    eval_overlap=0.5,
    split_seed=0,
    validation_subjects=2,
    test_subjects=2,
    shuffle_buffer=None,
    cache=True,
    data_path=None,
):
    """Windows of the seglearn smartwatch data, split by subject.

    The data: 140 recordings of 6-axis inertial signals sampled at 50 Hz by
    a smartwatch while 10 subjects performed sets of shoulder
    physiotherapy exercises (Burns et al. 2018, arXiv 1802.01489; 14
    recordings per subject, both arms). Seven classes, named by the file's
    own codes, in label order: `PEN` (pendulum), `ABD` (abduction), `FEL`
    (forward elevation), `IR` (internal rotation), `ER` (external
    rotation), `TRAP` (trapezius) and `ROW` (row); 20 recordings each.
    The file is `seglearn/data/watch_dataset.npy` inside the installed
    seglearn package; it is read directly, without importing seglearn.

    Two modalities, from the file's column labels
    `["ax", "ay", "az", "wx", "wy", "wz"]`:

    - `"accelerometer"`: columns 0-2 (`ax, ay, az`; linear acceleration,
      in g: the mean magnitude over the data is about 1.15, gravity
      included),
    - `"gyroscope"`: columns 3-5 (`wx, wy, wz`; angular velocity).

    Each recording is cut into fixed-length windows, each labelled with
    the recording's exercise. Training windows overlap more (default 75%,
    a 1 s step for 4 s windows) than validation and test windows (50%).
    Recordings are 19-52 s long, so with the defaults each subject gives
    roughly 450 training or 230 evaluation windows. A recording shorter
    than one window is dropped (none is, at the default length).

    Subjects, never windows, are split: `test_subjects` subjects for test
    and `validation_subjects` for validation, drawn by a permutation seeded
    with `split_seed`; the rest train. No subject appears in two splits,
    and different seeds give different splits, so results can be averaged
    over several seeds. Each of the 6 channels is standardised with the
    mean and standard deviation of the training windows only.

    Args:
        batch_size: int. Batch size of the three pipelines.
        window_seconds: float. Window length in seconds (200 samples at
            the default 4.0).
        overlap: float in `[0, 1)`. Overlap of consecutive training
            windows.
        eval_overlap: float in `[0, 1)`. Overlap of consecutive validation
            and test windows.
        split_seed: int. Seeds the subject split and the training shuffle.
        validation_subjects: int >= 0. Subjects held out for validation
            (0 gives `validation=None`).
        test_subjects: int >= 1. Subjects held out for test.
        shuffle_buffer: int or `None`. Shuffle buffer of the training
            pipeline; `None` shuffles all training windows.
        cache: bool. Cache the windows in memory inside the pipelines
            (they are built from in-memory arrays, so this mainly skips
            re-slicing them every epoch).
        data_path: str or `None`. Path of a `watch_dataset.npy`-format
            file; `None` uses the copy inside the seglearn package.

    Returns:
        A `keras_dgl.datasets.DatasetSplits`. Features are
        `{"accelerometer": (batch, window, 3), "gyroscope": (batch, window,
        3)}` float32, labels int32. `info` holds `subjects` (per split),
        `windows` and `recordings` (counts per split), `class_counts`,
        `window_samples`, `step_samples`, `sampling_rate_hz`, the training
        `channel_mean` / `channel_std`, and `columns`.

    Raises:
        FileNotFoundError: the data file (named in the message) is missing.
        ValueError: the data file cannot be read or has an unexpected
            layout, or the split arguments leave no training subject.

    Example:

    ```python
    splits = keras_dgl.datasets.smartwatch(split_seed=1)
    splits.info["subjects"]  # {"train": [...], "validation": [...], "test": [...]}
    x, y = splits.numpy("test")
    x["gyroscope"].shape  # (windows, 200, 3)
    ```
    """
    path = _data_file(data_path)
    data = _read(path)
    recordings, labels, subjects, class_names, columns = _validate(data, path)

    window = int(round(window_seconds * SAMPLING_RATE_HZ))
    if window < 2:
        raise ValueError(
            f"window_seconds={window_seconds} gives fewer than 2 samples."
        )
    for name, value in (("overlap", overlap), ("eval_overlap", eval_overlap)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} must lie in [0, 1), got {value}.")
    train_step = max(1, int(round(window * (1.0 - overlap))))
    eval_step = max(1, int(round(window * (1.0 - eval_overlap))))

    split_subjects = _split_subjects(
        subjects, split_seed, int(validation_subjects), int(test_subjects)
    )
    windows = {}
    dropped = {}
    for split, members in split_subjects.items():
        chosen = np.flatnonzero(np.isin(subjects, members))
        step = train_step if split == "train" else eval_step
        x, y, short = _windows(
            [recordings[i] for i in chosen], labels[chosen], window, step
        )
        windows[split] = (x, y)
        dropped[split] = short
        if len(y) == 0 and members:
            raise ValueError(
                f"The {split} subjects {members} give no window of "
                f"{window} samples; use a shorter window_seconds."
            )

    train_x = windows["train"][0]
    mean = train_x.mean(axis=(0, 1))
    std = train_x.std(axis=(0, 1))
    std = np.where(std > 0, std, 1.0)

    arrays = {}
    for split, (x, y) in windows.items():
        x = ((x - mean) / std).astype(np.float32)
        arrays[split] = (
            {
                "accelerometer": np.ascontiguousarray(x[..., _ACCELEROMETER]),
                "gyroscope": np.ascontiguousarray(x[..., _GYROSCOPE]),
            },
            y.astype(np.int32),
        )

    def make(split, shuffle):
        features, y = arrays[split]
        dataset = tf.data.Dataset.from_tensor_slices((features, y))
        if cache:
            dataset = dataset.cache()
        if shuffle:
            buffer = len(y) if shuffle_buffer is None else int(shuffle_buffer)
            dataset = dataset.shuffle(
                max(1, buffer), seed=split_seed, reshuffle_each_iteration=True
            )
        return dataset.batch(int(batch_size)).prefetch(tf.data.AUTOTUNE)

    sources = dict(arrays)
    if not validation_subjects:
        del sources["validation"]
    num_classes = len(class_names)
    info = {
        "data_path": path,
        "split_seed": split_seed,
        "subjects": split_subjects,
        "windows": {split: len(y) for split, (_, y) in arrays.items()},
        "recordings": {
            split: int(sum(np.isin(subjects, members)))
            for split, members in split_subjects.items()
        },
        "dropped_short_recordings": dropped,
        "class_counts": {
            split: np.bincount(y, minlength=num_classes).tolist()
            for split, (_, y) in arrays.items()
        },
        "sampling_rate_hz": SAMPLING_RATE_HZ,
        "window_samples": window,
        "step_samples": {"train": train_step, "evaluation": eval_step},
        "channel_mean": mean.tolist(),
        "channel_std": std.tolist(),
        "columns": {"accelerometer": columns[0:3], "gyroscope": columns[3:6]},
    }
    return DatasetSplits(
        train=make("train", shuffle=True),
        validation=make("validation", False) if validation_subjects else None,
        test=make("test", shuffle=False),
        num_classes=num_classes,
        class_names=class_names,
        input_shapes={"accelerometer": (window, 3), "gyroscope": (window, 3)},
        info=info,
        sources=sources,
    )


def _data_file(data_path):
    """Returns the data file's path; checks only that it exists."""
    if data_path is None:
        spec = importlib.util.find_spec("seglearn")
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(
                "The smartwatch data ships inside the seglearn package "
                "(seglearn/data/watch_dataset.npy), which is not installed; "
                "`pip install seglearn` or pass data_path."
            )
        package_dir = list(spec.submodule_search_locations)[0]
        data_path = os.path.join(package_dir, "data", "watch_dataset.npy")
    data_path = os.fspath(data_path)
    if not os.path.isfile(data_path):
        raise FileNotFoundError(
            f"Smartwatch data file not found: {data_path}"
        )
    return data_path


# The only globals a pickled dict of NumPy arrays refers to; a file naming
# any other is refused, so reading a user's file cannot run code.
_ARRAY_GLOBALS = {
    ("numpy", "dtype"),
    ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles NumPy arrays, lists, dicts, strings and numbers only."""

    def find_class(self, module, name):
        if (module, name) in _ARRAY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"it refers to {module}.{name}, which no NumPy data needs; it was "
            "not loaded (unpickling it could run code)"
        )


def _read(path):
    readers = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
    }
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version not in readers:
                raise ValueError(f"unsupported .npy format version {version}")
            _, _, dtype = readers[version](handle)
            if dtype.hasobject:
                loaded = _ArrayUnpickler(handle).load()
            else:
                handle.seek(0)
                loaded = np.load(handle, allow_pickle=False)
        is_scalar = isinstance(loaded, np.ndarray) and loaded.size == 1
        data = loaded.item() if is_scalar else None
    except Exception as error:  # np.load raises many kinds on bad input.
        raise ValueError(
            f"Could not read the smartwatch data file {path} (corrupt or not "
            f"a NumPy pickle of a dict): {type(error).__name__}: {error}"
        ) from error
    if not isinstance(data, dict):
        raise ValueError(
            f"The smartwatch data file {path} does not hold a dict "
            "(expected keys 'X', 'y', 'subject')."
        )
    return data


def _validate(data, path):
    missing = [key for key in ("X", "y", "subject") if key not in data]
    if missing:
        raise ValueError(
            f"The smartwatch data file {path} lacks the keys {missing}."
        )
    recordings = list(data["X"])
    labels = np.asarray(data["y"]).astype(np.int64)
    subjects = np.asarray(data["subject"]).astype(np.int64)
    if not (len(recordings) == len(labels) == len(subjects)) or not len(labels):
        raise ValueError(
            f"The smartwatch data file {path} has inconsistent lengths: "
            f"{len(recordings)} recordings, {len(labels)} labels, "
            f"{len(subjects)} subject ids."
        )
    for index, recording in enumerate(recordings):
        recording = np.asarray(recording)
        if recording.ndim != 2 or recording.shape[1] != 6:
            raise ValueError(
                f"The smartwatch data file {path}: recording {index} has "
                f"shape {recording.shape}, expected (time, 6)."
            )
        if not np.all(np.isfinite(recording)):
            raise ValueError(
                f"The smartwatch data file {path}: recording {index} holds "
                "non-finite values."
            )
    columns = [str(c) for c in data.get("X_labels", _EXPECTED_COLUMNS)]
    if columns != _EXPECTED_COLUMNS:
        raise ValueError(
            f"The smartwatch data file {path} has columns {columns}; "
            f"expected {_EXPECTED_COLUMNS} (accelerometer, then gyroscope)."
        )
    num_classes = int(labels.max()) + 1
    if labels.min() < 0:
        raise ValueError(f"The smartwatch data file {path} has negative labels.")
    class_names = [str(c) for c in data.get("y_labels", [])]
    if len(class_names) < num_classes:
        raise ValueError(
            f"The smartwatch data file {path} names {len(class_names)} classes "
            f"in 'y_labels' but its labels 'y' go up to {num_classes - 1}; give "
            "every class a name."
        )
    return recordings, labels, subjects, class_names, columns


def _split_subjects(subjects, split_seed, validation_subjects, test_subjects):
    unique = np.unique(subjects)
    if test_subjects < 1 or validation_subjects < 0:
        raise ValueError(
            "Need test_subjects >= 1 and validation_subjects >= 0, got "
            f"{test_subjects} and {validation_subjects}."
        )
    if validation_subjects + test_subjects >= len(unique):
        raise ValueError(
            f"validation_subjects={validation_subjects} + test_subjects="
            f"{test_subjects} leave no training subject out of {len(unique)}."
        )
    order = np.random.default_rng(split_seed).permutation(unique)
    test = order[:test_subjects]
    validation = order[test_subjects:test_subjects + validation_subjects]
    train = order[test_subjects + validation_subjects:]
    return {
        "train": sorted(int(s) for s in train),
        "validation": sorted(int(s) for s in validation),
        "test": sorted(int(s) for s in test),
    }


def _windows(recordings, labels, window, step):
    """Cuts recordings into windows; returns (x, y, number dropped)."""
    pieces, targets, dropped = [], [], 0
    for recording, label in zip(recordings, labels):
        recording = np.asarray(recording, dtype=np.float64)
        if len(recording) < window:
            dropped += 1
            continue
        starts = np.arange(0, len(recording) - window + 1, step)
        index = starts[:, None] + np.arange(window)[None, :]
        pieces.append(recording[index])
        targets.append(np.full(len(starts), label))
    if not pieces:
        return np.zeros((0, window, 6)), np.zeros((0,), np.int64), dropped
    return np.concatenate(pieces), np.concatenate(targets), dropped
