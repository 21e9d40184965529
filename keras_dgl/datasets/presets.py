"""The audio-visual presets as plain data.

`PRESETS[name]` holds, for each audio-visual dataset name of
`keras_dgl.registry.DATASETS` (which also names the loader that reads it,
`crema_d`, ...), the keyword arguments of `keras_dgl.datasets.audio_visual`
that make the published preprocessing, the class count of the common split
lists (warned about when the lists hold another count) and the aspect ratio
`prepare` stores frames at. The loaders and `prepare` read this one table;
`tests/test_registry.py` keeps its names equal to the registry's.
"""

import logging

logger = logging.getLogger("keras_dgl.datasets")

CREMA_D_CLASSES = ("NEU", "HAP", "SAD", "FEA", "DIS", "ANG")

AVE_CLASSES = (
    "Church bell",
    "Male speech, man speaking",
    "Bark",
    "Fixed-wing aircraft, airplane",
    "Race car, auto racing",
    "Female speech, woman speaking",
    "Helicopter",
    "Violin, fiddle",
    "Flute",
    "Ukulele",
    "Frying (food)",
    "Truck",
    "Shofar",
    "Motorcycle",
    "Acoustic guitar",
    "Train horn",
    "Clock",
    "Banjo",
    "Goat",
    "Baby cry, infant cry",
    "Bus",
    "Chainsaw",
    "Cat",
    "Horse",
    "Toilet flush",
    "Rodents, rats, mice",
    "Accordion",
    "Mandolin",
)

PRESETS = {
    "crema-d": {
        "num_classes": len(CREMA_D_CLASSES),
        # CREMA-D's videos are 480 x 360.
        "frame_aspect": 4.0 / 3.0,
        "options": {
            "name": "CREMA-D",
            "known_classes": CREMA_D_CLASSES,
            "train_csv": "train.csv",
            "test_csv": "test.csv",
            "sample_rate": 22050,
            "clip_seconds": 3.0,
            "n_fft": 512,
            "hop_length": 353,
            "frames": 1,
        },
    },
    "kinetics-sounds": {
        # Lists of 32-34 classes also circulate.
        "num_classes": 31,
        # Most Kinetics (YouTube) videos are 16:9.
        "frame_aspect": 16.0 / 9.0,
        "options": {
            "name": "Kinetics-Sounds",
            "known_classes": None,
            "train_csv": "train.csv",
            "test_csv": "test.csv",
            "sample_rate": 16000,
            "clip_seconds": 5.0,
            "tile_seconds": 10.0,
            "random_audio_crop": True,
            "n_fft": 256,
            "hop_length": 128,
            "frames": 3,
        },
    },
    "ave": {
        "num_classes": len(AVE_CLASSES),
        "frame_aspect": 16.0 / 9.0,
        "options": {
            "name": "AVE",
            "known_classes": AVE_CLASSES,
            "train_csv": "train.csv",
            "test_csv": "test.csv",
            "sample_rate": 16000,
            "clip_seconds": 10.0,
            "n_fft": 512,
            "hop_length": 256,
            "spectrogram_size": (224, 224),
            "frames": 3,
        },
    },
    "vggsound": {
        "num_classes": 309,
        "frame_aspect": 16.0 / 9.0,
        # As in the DGL reference code: 16 kHz, tiled to 10 s, a random
        # 5 s window, STFT n_fft 256 / hop 128, three frames.
        "options": {
            "name": "VGGSound",
            "known_classes": None,
            "split_csv": "vggsound.csv",
            "sample_rate": 16000,
            "clip_seconds": 5.0,
            "tile_seconds": 10.0,
            "random_audio_crop": True,
            "n_fft": 256,
            "hop_length": 128,
            "frames": 3,
        },
    },
}


def preset(name):
    """The `PRESETS` entry of `name`, or a clear error listing the names.

    Args:
        name: str. A key of `PRESETS`, e.g. `"crema-d"`.

    Returns:
        The preset's dict (`num_classes`, `frame_aspect`, `options`).

    Example:

    ```python
    keras_dgl.datasets.presets.preset("vggsound")["num_classes"]  # 309
    ```
    """
    if name not in PRESETS:
        raise ValueError(
            f"Unknown audio-visual dataset {name!r}; choose from "
            f"{sorted(PRESETS)}."
        )
    return PRESETS[name]


def warn_class_count(splits, expected):
    """Logs a warning when the lists hold another class count than the
    data set's common split lists.

    Args:
        splits: a `keras_dgl.datasets.DatasetSplits`.
        expected: int. The class count of the common lists.

    Example:

    ```python
    warn_class_count(splits, PRESETS["vggsound"]["num_classes"])
    ```
    """
    if splits.num_classes != expected:
        logger.warning(
            "%s: %d classes found in the lists (the common split has %d).",
            splits.info["name"],
            splits.num_classes,
            expected,
        )
