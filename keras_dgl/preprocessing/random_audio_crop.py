"""A window of each waveform: random for training, centred otherwise."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_dgl")
class RandomAudioCrop(keras.layers.Layer):
    """Takes `length` consecutive samples of each waveform.

    Training (`training=True` and `random`): the window starts at a
    uniform random sample `0 ... samples - length` per example, the random
    audio crop of the Kinetics-Sounds and VGGSound recipes. Otherwise the
    centred window (start `(samples - length) // 2`), as the loaders'
    evaluation transform. Keras' `RandomCrop` works on images and draws
    one position per batch, hence this layer. The output is cast to the
    compute dtype and multiplied by `scale` (e.g. `1 / 32768` for int16
    samples).

    Args:
        length: int. Window length in samples.
        random: bool. Random windows when training. Defaults to `True`.
        scale: float. Factor applied to the samples. Defaults to 1.
        seed: int or `None`. Seed of the window positions.
        **kwargs: standard `keras.layers.Layer` arguments.

    Example:

    ```python
    crop = keras_dgl.preprocessing.RandomAudioCrop(80000, scale=1 / 32768)
    waves = np.zeros((4, 160000), "int16")  # 10 s at 16 kHz
    crop(waves, training=True).shape  # (4, 80000)
    ```
    """

    def __init__(self, length, random=True, scale=1.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if int(length) < 1:
            raise ValueError(f"length must be >= 1, got {length}.")
        self.length = int(length)
        self.random = bool(random)
        self.scale = float(scale)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=None):
        waves = ops.cast(inputs, self.compute_dtype) * self.scale
        if len(waves.shape) != 2:
            raise ValueError(
                f"RandomAudioCrop expects (batch, samples); got shape "
                f"{waves.shape}."
            )
        slack = waves.shape[1] - self.length
        if slack < 0:
            raise ValueError(
                f"Waveforms of {waves.shape[1]} samples are shorter than the "
                f"window of {self.length}."
            )
        if slack == 0:
            return waves
        batch = ops.shape(waves)[0]
        if training and self.random:
            draw = keras.random.uniform((batch,), seed=self.seed_generator)
            start = ops.minimum(
                ops.cast(ops.floor(draw * (slack + 1)), "int32"), slack
            )
        else:
            start = ops.zeros((batch,), "int32") + slack // 2
        positions = start[:, None] + ops.arange(self.length, dtype="int32")
        return ops.take_along_axis(waves, positions, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.length)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "length": self.length,
                "random": self.random,
                "scale": self.scale,
                "seed": self.seed,
            }
        )
        return config
