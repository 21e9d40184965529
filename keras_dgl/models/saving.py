"""Loading saved models with a clear error for damaged files."""

import os
import zipfile

# Members every `.keras` archive written by `model.save` holds.
_REQUIRED_MEMBERS = ("config.json", "model.weights.h5")


def load_model(filepath, **kwargs):
    """Loads a `.keras` model file, first checking that it is complete.

    `keras.saving.load_model` reports an empty or truncated `.keras` file
    (e.g. from a save that was killed) as "File not found". This checks the
    archive first and names the file and what is wrong with it; then it
    loads it with `keras.saving.load_model`. Calling it also registers every
    `keras_dgl` class, so no other import is needed. Paths that are not
    `.keras` files (directories, `.h5`) are passed on unchecked.

    Args:
        filepath: str or `os.PathLike`. The saved model.
        **kwargs: `custom_objects`, `compile`, `safe_mode` of
            `keras.saving.load_model`.

    Returns:
        The loaded model.

    Raises:
        FileNotFoundError: nothing exists at `filepath`.
        ValueError: the file is not a complete `.keras` archive.

    Example:

    ```python
    model.save("model.keras")
    model = keras_dgl.load_model("model.keras")
    ```
    """
    import keras

    path = os.fspath(filepath)
    if str(path).endswith(".keras") and not os.path.isdir(path):
        check_keras_file(path)
    return keras.saving.load_model(path, **kwargs)


def check_keras_file(path):
    """Raises unless `path` is a complete, readable `.keras` archive.

    Args:
        path: str. The file to check.

    Raises:
        FileNotFoundError: nothing exists at `path`.
        ValueError: the file is empty, truncated or damaged.

    Example:

    ```python
    keras_dgl.models.saving.check_keras_file("model.keras")
    ```
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"No model file at {path!r}.")
    size = os.path.getsize(path)
    advice = (
        "It was probably written by a save that did not finish. Save the "
        "model again, or restore the file from a backup."
    )
    if size == 0:
        raise ValueError(f"The model file {path!r} is empty (0 bytes). {advice}")
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"The model file {path!r} is corrupt: it is not a complete "
            f".keras (zip) archive ({size} bytes; truncated?). {advice}"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            damaged = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise ValueError(
            f"The model file {path!r} is corrupt ({error}). {advice}"
        ) from error
    if damaged is not None:
        raise ValueError(
            f"The model file {path!r} is corrupt: its member {damaged!r} "
            f"fails its checksum. {advice}"
        )
    missing = [name for name in _REQUIRED_MEMBERS if name not in names]
    if missing:
        raise ValueError(
            f"The model file {path!r} is incomplete: it lacks {missing}. "
            f"{advice}"
        )
