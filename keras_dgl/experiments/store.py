"""The experiment's files: every write atomic, every read strict.

A file is written to a temporary name in its own folder, flushed and
synced to disk, then renamed over the target (`os.replace`, atomic on
POSIX and Windows) and the folder synced, so a kill at any moment leaves
either the old file or the new one, never a mix. A file that exists but
cannot be read is an error naming it, never "absent".
"""

import contextlib
import json
import os
import tempfile

import numpy as np

from keras_dgl.experiments.config import ADDED_SETTINGS
from keras_dgl.experiments.errors import ExperimentError


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; on success it replaces `path`.

    The caller writes the temporary file by name (e.g. `model.save_weights`);
    it is synced before the rename. On an error it is removed and `path` is
    left as it was.

    Example:

    ```python
    with atomic_path("out/best.weights.h5") as partial:
        model.save_weights(partial)
    ```
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    base = os.path.basename(path)
    # The temporary name keeps the target's suffix (Keras checks it).
    handle, partial = tempfile.mkstemp(prefix=".partial-", suffix=f"-{base}", dir=folder)
    os.close(handle)
    try:
        yield partial
        _fsync_file(partial)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(partial)
        raise
    fsync_dir(folder)


def write_text(path, text):
    """Writes `text` to `path` atomically."""
    with atomic_path(path) as partial:
        with open(partial, "w") as handle:
            handle.write(text)


def write_json(path, value):
    """Writes `value` as JSON to `path` atomically."""
    write_text(path, json.dumps(value, indent=1, default=json_default))


def read_json(path):
    """The JSON value in `path`, or `None` if there is no such file.

    Raises:
        ExperimentError: the file exists but is not valid JSON (naming it).
    """
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ExperimentError(
            f"{path} is corrupt ({error}); remove it (or the folder it is in) "
            "and run again"
        ) from error


def json_default(value):
    """JSON for NumPy scalars and tuples."""
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def fsync_dir(folder):
    """Syncs a folder's entries (a rename in it) to disk, where the OS allows."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows, where folders cannot be opened
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _fsync_file(path):
    with open(path, "rb+") as handle:
        handle.flush()
        os.fsync(handle.fileno())


def prepare_folder(out):
    """Creates the output folder; refuses a file or an unwritable place.

    Raises:
        ExperimentError: `out` is a file, or cannot be created or written.
    """
    if os.path.exists(out) and not os.path.isdir(out):
        raise ExperimentError(f"--out {out} is a file, not a folder; choose a folder")
    try:
        os.makedirs(out, exist_ok=True)
        handle, probe = tempfile.mkstemp(prefix=".write-test-", dir=out)
        os.close(handle)
        os.remove(probe)
    except OSError as error:
        raise ExperimentError(
            f"cannot write to the output folder {out} ({error.strerror or error}); "
            "choose another --out"
        ) from error


def remove_partials(folder):
    """Deletes the temporary files a kill left under `folder` (`.partial-*`).

    Only one experiment writes to a folder at a time, so at its start any
    such file is a leftover of a write that never finished.
    """
    for root, _, names in os.walk(folder):
        for name in names:
            if name.startswith(".partial-"):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(root, name))


def claim_folder(out, fingerprint):
    """Checks that `out` is empty or holds this same experiment; records it.

    Args:
        out: str. The output folder.
        fingerprint: dict. The settings that define the runs (see
            `ExperimentConfig.fingerprint`).

    Temporary files left by a kill are removed.

    Raises:
        ExperimentError: `out` holds another experiment, is unwritable, or
            its `experiment.json` is corrupt.
    """
    prepare_folder(out)
    remove_partials(out)
    path = os.path.join(out, "experiment.json")
    # Through JSON, so tuples compare equal to the lists read back.
    mine = json.loads(json.dumps(fingerprint, default=json_default))
    theirs = read_json(path)
    if theirs is not None and not isinstance(theirs, dict):
        raise ExperimentError(
            f"{path} is corrupt (not a JSON object); remove it and run again"
        )
    if theirs is not None:
        for key, value in ADDED_SETTINGS.items():
            if key not in theirs and mine.get(key) == value:
                theirs[key] = value
    if theirs is not None and theirs != mine:
        changed = sorted(k for k in set(mine) | set(theirs)
                         if mine.get(k) != theirs.get(k))
        raise ExperimentError(
            f"{out} holds results of different settings ({', '.join(changed)} "
            "differ); use another --out or delete it"
        )
    write_json(path, mine)
