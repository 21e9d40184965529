"""SpecAugment frequency and time masks, in the model."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_dgl")
class SpecAugment(keras.layers.Layer):
    """Masks random frequency and time bands of each spectrogram.

    Training only (identity at inference). Per example and `num_masks`
    times: one frequency band of width uniform in `[0, freq_mask_param)`
    and one time band of width uniform in `[0, time_mask_param)`, each at a
    uniform position, are set to the example's mean (taken before
    masking), as the loaders' host-side `spec_augment` does. Keras has no
    SpecAugment layer, hence this one.

    Args:
        freq_mask_param: int >= 1. Largest frequency band width, exclusive.
        time_mask_param: int >= 1. Largest time band width, exclusive.
        num_masks: int. Bands per axis. Defaults to 1.
        seed: int or `None`. Seed of the bands.
        **kwargs: standard `keras.layers.Layer` arguments.

    Input: `(batch, freq, time)` or `(batch, freq, time, 1)`.

    Example:

    ```python
    masks = keras_dgl.preprocessing.SpecAugment(25, 18)
    spec = np.random.normal(size=(4, 257, 188, 1)).astype("float32")
    masks(spec, training=True).shape  # (4, 257, 188, 1)
    ```
    """

    def __init__(self, freq_mask_param, time_mask_param, num_masks=1,
                 seed=None, **kwargs):
        super().__init__(**kwargs)
        if int(freq_mask_param) < 1 or int(time_mask_param) < 1:
            raise ValueError(
                "freq_mask_param and time_mask_param must be >= 1, got "
                f"{freq_mask_param}, {time_mask_param}."
            )
        if int(num_masks) < 0:
            raise ValueError(f"num_masks must be >= 0, got {num_masks}.")
        self.freq_mask_param = int(freq_mask_param)
        self.time_mask_param = int(time_mask_param)
        self.num_masks = int(num_masks)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        spec = ops.cast(inputs, self.compute_dtype)
        if not training or self.num_masks == 0:
            return spec
        if len(spec.shape) not in (3, 4):
            raise ValueError(
                "SpecAugment expects (batch, freq, time) or (batch, freq, "
                f"time, 1); got shape {spec.shape}."
            )
        freq, time = spec.shape[1], spec.shape[2]
        batch = ops.shape(spec)[0]
        axes = tuple(range(1, len(spec.shape)))
        fill = ops.mean(spec, axis=axes, keepdims=True)
        masked = ops.zeros((batch, freq, time), "bool")
        for _ in range(self.num_masks):
            for axis, param, size in ((1, self.freq_mask_param, freq),
                                      (2, self.time_mask_param, time)):
                band = self._band(batch, param, size)
                band = band[:, :, None] if axis == 1 else band[:, None, :]
                masked = ops.logical_or(masked, band)
        if len(spec.shape) == 4:
            masked = masked[..., None]
        return ops.where(masked, fill, spec)

    def _band(self, batch, param, size):
        """`(batch, size)` booleans: one band per example."""
        draws = keras.random.uniform((batch, 2), seed=self.seed_generator)
        width = ops.minimum(
            ops.cast(ops.floor(draws[:, 0] * param), "int32"), size)
        start = ops.cast(
            ops.floor(draws[:, 1] * ops.cast(size - width + 1, "float32")),
            "int32",
        )
        start = ops.minimum(start, size - width)
        span = ops.arange(size, dtype="int32")[None, :]
        return ops.logical_and(span >= start[:, None],
                               span < (start + width)[:, None])

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "freq_mask_param": self.freq_mask_param,
                "time_mask_param": self.time_mask_param,
                "num_masks": self.num_masks,
                "seed": self.seed,
            }
        )
        return config
