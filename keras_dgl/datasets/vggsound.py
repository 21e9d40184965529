"""VGGSound (10-second YouTube clips of 309 sound classes)."""

from __future__ import annotations

from keras_dgl.datasets.audio_visual import audio_visual
from keras_dgl.datasets.presets import PRESETS, warn_class_count

_PRESET = PRESETS["vggsound"]
_OPTIONS = _PRESET["options"]


def vggsound(
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
    split_csv=_OPTIONS["split_csv"],
    train_csv="train.csv",
    test_csv="test.csv",
    **kwargs,
):
    """VGGSound clips as `{"audio", "visual"}` pipelines.

    VGGSound: about 200,000 ten-second YouTube clips of 309 sound classes
    (some of the published 310 are no longer listed). Its list
    `vggsound.csv` has no header and one row per clip:
    `youtube_id,start_seconds,label,split` (split `train` or `test`), e.g.
    `---g-f_I2yQ,1,people marching,test`. The clip id is the YouTube id and
    the start second in six digits, `---g-f_I2yQ_000001`, the naming of the
    usual extracted audio and frames. The class list is read from the list
    (sorted labels) unless `class_names` is given; a count other than 309
    is logged as a warning.

    Expected tree:

    ```
    root/
      vggsound.csv                       # or train.csv + test.csv, split_csv=None
      audio/---g-f_I2yQ_000001.wav       # 16-bit PCM, any rate
      visual/---g-f_I2yQ_000001/*.jpg    # frames extracted as JPEG
    ```

    Preprocessing as in the DGL reference code: audio resampled to 16 kHz,
    tiled until it lasts 10 s, a 5 s window (random for training, centred
    otherwise), STFT with n_fft 256 and hop 128, log magnitude: audio
    `(129, 626, 1)`. Three frames, one per third of the clip: `visual` is
    `(3, 224, 224, 3)`; RandomResizedCrop + flip for training, resize
    otherwise; ImageNet normalisation. A validation split is carved from
    the training list (stratified, `split_seed`).

    Args:
        root: path. The tree above, or a folder written by
            `keras_dgl.datasets.prepare("vggsound", ...)`.
        validation_fraction: float. Share of the training list used for
            validation.
        split_seed: int. Seeds the validation carve and shuffles.
        batch_size: int. Batch size.
        frames: int. Frames per clip (3 as published).
        image_size: int. Frame size.
        augment: `True` / `"host"`, `"device"` (prepared data) or `False`;
            see `keras_dgl.datasets.audio_visual`.
        spec_augment: `None`, `True` or a dict; see
            `keras_dgl.datasets.audio_visual`.
        cache: `False`, `True` (memory) or a folder for file caches.
        on_error: `"raise"` or `"skip"`.
        validate: `"header"`, `"decode"` or `"none"`.
        class_names: list of str or `None` (classes from the list).
        split_csv: str or `None`. The one list with a split column,
            relative to `root`. `None` reads `train_csv` and `test_csv`
            (rows `clip_id,label`) instead.
        train_csv: str. Training list when `split_csv` is `None`.
        test_csv: str. Test list when `split_csv` is `None`.
        **kwargs: other arguments of `keras_dgl.datasets.audio_visual`.

    Returns:
        A `keras_dgl.datasets.DatasetSplits`.

    Example:

    ```python
    splits = keras_dgl.datasets.vggsound("/data/vggsound-prepared",
                                         augment="device")
    splits.num_classes  # 309 with the current list
    ```
    """
    options = dict(_OPTIONS)
    options.update(
        class_names=class_names,
        split_csv=split_csv,
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
