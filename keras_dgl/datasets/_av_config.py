"""The audio-visual loaders' preprocessing configuration and argument checks."""

from __future__ import annotations

import dataclasses


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class _Config:
    name: str
    sample_rate: int
    clip_seconds: float
    tile_seconds: float
    random_audio_crop: bool
    n_fft: int
    hop_length: int
    spectrogram_size: tuple | None
    frames: int
    image_size: int
    augment: bool
    spec_augment: dict | None


def _spec_augment_config(spec_augment):
    if spec_augment is None or spec_augment is False:
        return None
    options = {} if spec_augment is True else dict(spec_augment)
    unknown = set(options) - {
        "freq_mask_param",
        "time_mask_param",
        "num_masks",
        "implementation",
    }
    if unknown:
        raise ValueError(f"Unknown spec_augment options: {sorted(unknown)}")
    options.setdefault("num_masks", 1)
    options.setdefault("implementation", "auto")
    if options["implementation"] not in ("auto", "tfio", "tf"):
        raise ValueError(
            "spec_augment implementation must be 'auto', 'tfio' or 'tf', "
            f"got {options['implementation']!r}."
        )
    return options


def _make_config(*, name, sample_rate, clip_seconds, tile_seconds,
                 random_audio_crop, n_fft, hop_length, spectrogram_size,
                 frames, image_size, augment, spec_augment):
    """The `_Config` of one set of preprocessing arguments."""
    return _Config(
        name=name,
        sample_rate=int(sample_rate),
        clip_seconds=float(clip_seconds),
        tile_seconds=float(tile_seconds or clip_seconds),
        random_audio_crop=bool(random_audio_crop),
        n_fft=int(n_fft),
        hop_length=int(hop_length),
        spectrogram_size=(
            tuple(int(s) for s in spectrogram_size) if spectrogram_size else None
        ),
        frames=int(frames),
        image_size=int(image_size),
        augment=_augment_mode(augment) != "none",
        spec_augment=_spec_augment_config(spec_augment),
    )


def _augment_mode(augment):
    """`"host"`, `"device"` or `"none"` from the loaders' `augment` argument."""
    if augment is True or augment == "host":
        return "host"
    if augment is False or augment == "none":
        return "none"
    if augment == "device":
        return "device"
    raise ValueError(
        f"augment must be True / 'host', 'device', or False / 'none'; got "
        f"{augment!r}."
    )


def _check_arguments(config, on_error, validate, validation_fraction,
                     batch_size):
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}.")
    if validate not in ("none", "header", "decode"):
        raise ValueError(
            f"validate must be 'none', 'header' or 'decode', got {validate!r}."
        )
    if not 0.0 <= validation_fraction < 1.0:
        raise ValueError(
            f"validation_fraction must lie in [0, 1), got {validation_fraction}."
        )
    if int(batch_size) < 1 or config.frames < 1 or config.image_size < 1:
        raise ValueError("batch_size, frames and image_size must be >= 1.")
    if config.tile_seconds < config.clip_seconds:
        raise ValueError("tile_seconds must be >= clip_seconds.")
    clip_samples = int(round(config.clip_seconds * config.sample_rate))
    if config.n_fft < 2 or config.hop_length < 1 or clip_samples <= config.n_fft:
        raise ValueError(
            f"Need n_fft >= 2, hop_length >= 1 and a clip longer than n_fft; "
            f"got n_fft={config.n_fft}, hop_length={config.hop_length}, "
            f"{clip_samples} samples."
        )
