"""AVE (Audio-Visual Event localisation data set), clip-level labels."""

from __future__ import annotations

from keras_dgl.datasets.audio_visual import audio_visual
from keras_dgl.datasets.presets import AVE_CLASSES, PRESETS

__all__ = ["AVE_CLASSES", "ave"]
_OPTIONS = PRESETS["ave"]["options"]


def ave(
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
    """AVE clips as `{"audio", "visual"}` pipelines, one label per clip.

    AVE: 4,143 ten-second YouTube clips of 28 audio-visual event classes
    (AudioSet names). Classes, in label order (the order of the AVE
    annotation's category list as commonly used; pass `class_names` for
    another order): Church bell; Male speech, man speaking; Bark;
    Fixed-wing aircraft, airplane; Race car, auto racing; Female speech,
    woman speaking; Helicopter; Violin, fiddle; Flute; Ukulele; Frying
    (food); Truck; Shofar; Motorcycle; Acoustic guitar; Train horn; Clock;
    Banjo; Goat; Baby cry, infant cry; Bus; Chainsaw; Cat; Horse; Toilet
    flush; Rodents, rats, mice; Accordion; Mandolin. A label outside the
    list is an error naming it and its CSV file. Several names contain
    commas: quote them in the CSV (`clip,"Violin, fiddle"`). AVE's own
    `Annotations.txt` (`&`-separated, category first) must be converted to
    this format.

    Expected tree:

    ```
    root/
      train.csv                 # "clip_id,label" rows (video id as clip id)
      test.csv
      audio/<clip_id>.wav       # 16-bit PCM, any rate
      visual/<clip_id>/*.jpg    # frames extracted as JPEG
    ```

    Preprocessing: STFT with n_fft 512 and hop 256, log magnitude, the
    spectrogram resized (bilinear) to 224 x 224 as published for DGL:
    audio `(224, 224, 1)`. The notes give no rate or length for AVE; this
    preset resamples to 16 kHz and uses the full 10 s (tiled if shorter),
    and takes 3 frames (one per third of the clip): `visual` is
    `(3, 224, 224, 3)`. Both can be overridden (`sample_rate`,
    `clip_seconds`, `frames`). Frames: RandomResizedCrop + flip for
    training, resize otherwise; ImageNet normalisation.

    Args:
        root: path. The tree above.
        validation_fraction: float. Share of the training list used for
            validation. AVE ships its own train / val / test lists: pass
            `validation_csv="val.csv"` (a keyword of `audio_visual`) to
            use its validation list instead of carving one.
        split_seed: int. Seeds the validation carve and shuffles.
        batch_size: int. Batch size.
        frames: int. Frames per clip.
        image_size: int. Frame size.
        augment: bool. Random resized crop + flip for training.
        spec_augment: `None`, `True` or a dict; see
            `keras_dgl.datasets.audio_visual`.
        cache: `False`, `True` (memory) or a folder for file caches.
        on_error: `"raise"` or `"skip"`.
        validate: `"header"`, `"decode"` or `"none"`.
        class_names: list of str or `None` (the 28 classes above).
        train_csv: str. Training list file, relative to `root`.
        test_csv: str. Test list file.
        **kwargs: other arguments of `keras_dgl.datasets.audio_visual`.

    Returns:
        A `keras_dgl.datasets.DatasetSplits` with 28 classes.

    Example:

    ```python
    splits = keras_dgl.datasets.ave("/data/AVE")
    splits.input_shapes["audio"]  # (224, 224, 1)
    ```
    """
    options = dict(_OPTIONS)
    options.update(
        known_classes=list(AVE_CLASSES),
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
