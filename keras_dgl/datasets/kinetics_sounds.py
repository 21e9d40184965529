"""Kinetics-Sounds (the Kinetics subset with audible actions)."""

from __future__ import annotations

from keras_dgl.datasets.audio_visual import audio_visual
from keras_dgl.datasets.presets import PRESETS, warn_class_count

_PRESET = PRESETS["kinetics-sounds"]
_OPTIONS = _PRESET["options"]


def kinetics_sounds(
    root,
    *,
    validation_fraction=0.1,
    split_seed=0,
    batch_size=64,
    frames=_OPTIONS["frames"],
    image_size=224,
    augment=True,
    spec_augment=None,
    cache=False,
    on_error="raise",
    validate="header",
    class_names=None,
    train_csv=_OPTIONS["train_csv"],
    test_csv=_OPTIONS["test_csv"],
    **kwargs,
):
    """Kinetics-Sounds clips as `{"audio", "visual"}` pipelines.

    Kinetics-Sounds: Kinetics-400 clips (10 s) of actions that can be
    heard. Split lists in circulation hold 31 classes (lists of 32-34 also
    exist), so the class list is read from the CSV files (sorted labels of
    both files) unless `class_names` is given, in which case labels are
    checked against it; a class count other than 31 is logged as a
    warning. `class_names` also fixes the label order.

    Expected tree:

    ```
    root/
      train.csv                 # "clip_id,label", e.g. "abc_000010,playing drums"
      test.csv
      audio/<clip_id>.wav       # 16-bit PCM, any rate
      visual/<clip_id>/*.jpg    # frames extracted as JPEG (e.g. 1 fps)
    ```

    Preprocessing as published for DGL: audio resampled to 16 kHz, tiled
    until it lasts 10 s, a 5 s window (random for training, centred
    otherwise), STFT with n_fft 256 and hop 128, log magnitude: audio
    `(129, 626, 1)`. Three frames, one per third of the clip (random in
    the third for training, middle otherwise): `visual` is
    `(3, 224, 224, 3)`; RandomResizedCrop + flip for training, resize
    otherwise; ImageNet normalisation.

    Args:
        root: path. The tree above.
        validation_fraction: float. Share of the training list used for
            validation.
        split_seed: int. Seeds the validation carve and shuffles.
        batch_size: int. Batch size.
        frames: int. Frames per clip (3 as published).
        image_size: int. Frame size.
        augment: bool. Random resized crop + flip for training.
        spec_augment: `None`, `True` or a dict; see
            `keras_dgl.datasets.audio_visual`.
        cache: `False`, `True` (memory) or a folder for file caches.
        on_error: `"raise"` or `"skip"`.
        validate: `"header"`, `"decode"` or `"none"`.
        class_names: list of str or `None` (classes from the CSV files).
        train_csv: str. Training list file, relative to `root`.
        test_csv: str. Test list file.
        **kwargs: other arguments of `keras_dgl.datasets.audio_visual`.

    Returns:
        A `keras_dgl.datasets.DatasetSplits`.

    Example:

    ```python
    splits = keras_dgl.datasets.kinetics_sounds("/data/kinetics-sounds")
    splits.num_classes  # 31 with the common lists
    ```
    """
    options = dict(_OPTIONS)
    options.update(
        class_names=class_names,
        train_csv=train_csv,
        test_csv=test_csv,
        validation_fraction=validation_fraction,
        split_seed=split_seed,
        batch_size=batch_size,
        frames=frames,
        image_size=image_size,
        augment=augment,
        spec_augment=spec_augment,
        cache=cache,
        on_error=on_error,
        validate=validate,
    )
    options.update(kwargs)
    splits = audio_visual(root, **options)
    warn_class_count(splits, _PRESET["num_classes"])
    return splits

