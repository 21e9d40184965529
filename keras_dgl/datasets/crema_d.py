"""CREMA-D (audio-visual emotion recognition) with the published preprocessing."""

from __future__ import annotations

from keras_dgl.datasets.audio_visual import audio_visual
from keras_dgl.datasets.presets import CREMA_D_CLASSES, PRESETS

__all__ = ["CREMA_D_CLASSES", "crema_d"]
_OPTIONS = PRESETS["crema-d"]["options"]


def crema_d(
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
    """CREMA-D clips as `{"audio", "visual"}` pipelines.

    CREMA-D: 7,442 short clips of 91 actors speaking 12 sentences with one
    of six emotions. Common split lists hold 6,698 training and 744 test
    clips. Classes, in label order: `NEU` (neutral), `HAP` (happy), `SAD`,
    `FEA` (fear), `DIS` (disgust), `ANG` (anger); a label outside this
    list is an error naming it and its CSV file, unless `class_names`
    gives another list.

    Expected tree:

    ```
    root/
      train.csv            # "clip_id,label" rows, e.g. "1001_DFA_ANG_XX,ANG"
      test.csv
      audio/1001_DFA_ANG_XX.wav          # 16-bit PCM (CREMA-D ships 16 kHz)
      visual/1001_DFA_ANG_XX/0001.jpg    # frames extracted as JPEG
    ```

    Preprocessing as published for DGL: audio resampled to 22,050 Hz,
    tiled to 3 s and cut there, STFT with n_fft 512 and hop 353, log
    magnitude: audio `(257, 188, 1)`. One frame (`visual` is
    `(1, 224, 224, 3)`); RandomResizedCrop 224 + horizontal flip for
    training, resize to 224 x 224 otherwise; ImageNet normalisation.
    Unlike the reference code, a validation split is carved from the
    training list (stratified, `split_seed`) and the test split keeps its
    last partial batch.

    Args:
        root: path. The tree above.
        validation_fraction: float. Share of the training list used for
            validation.
        split_seed: int. Seeds the validation carve and shuffles.
        batch_size: int. Batch size (64 in the reference setup).
        frames: int. Frames per clip (1 as published).
        image_size: int. Frame size (224 as published).
        augment: bool. Random resized crop + flip for training.
        spec_augment: `None`, `True` or a dict; see
            `keras_dgl.datasets.audio_visual`. Off as published.
        cache: `False`, `True` (memory) or a folder for file caches.
        on_error: `"raise"` or `"skip"` (leave bad clips out, listed in
            `info["skipped"]`).
        validate: `"header"`, `"decode"` or `"none"`: the up-front check.
        class_names: list of str or `None` (the six codes above).
        train_csv: str. Training list file, relative to `root`.
        test_csv: str. Test list file.
        **kwargs: other arguments of `keras_dgl.datasets.audio_visual`
            (e.g. `num_parallel_calls`, `shuffle_buffer`, or preprocessing
            overrides such as `sample_rate`).

    Returns:
        A `keras_dgl.datasets.DatasetSplits` with 6 classes.

    Example:

    ```python
    splits = keras_dgl.datasets.crema_d("/data/CREMA-D", cache=True)
    splits.input_shapes  # {"audio": (257, 188, 1), "visual": (1, 224, 224, 3)}
    ```
    """
    options = dict(_OPTIONS)
    options.update(
        known_classes=list(CREMA_D_CLASSES),
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
    return audio_visual(root, **options)
