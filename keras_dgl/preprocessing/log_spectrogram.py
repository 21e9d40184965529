"""Centred STFT log-magnitude spectrogram (built on keras.layers.STFTSpectrogram)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_dgl")
class LogSpectrogram(keras.layers.Layer):
    """`log(|STFT| + log_floor)` of each waveform, as `(freq, time, 1)`.

    The loaders' audio transform on the accelerator: the waveform is
    reflect-padded by `n_fft // 2` on both sides (librosa's `center`), a
    periodic Hann window of `n_fft` is applied every `hop_length` samples
    and the magnitude of the `n_fft`-point FFT is taken, so
    `freq = n_fft // 2 + 1` and `time = 1 + samples // hop_length`; then
    optionally resized (bilinear) to `output_size`. The transform itself is
    Keras' `STFTSpectrogram` (mode `"stft"`, no window scaling, as
    non-trainable convolution kernels); this layer adds the padding, the
    magnitude with the recipe's `+ 1e-7` floor (`STFTSpectrogram`'s own
    `"log"` mode floors the magnitude at `sqrt(epsilon)`, which changes
    quiet bins) and the `(freq, time, 1)` layout of the encoders. Keep it
    in float32 (`dtype="float32"`) under a mixed policy.

    Args:
        n_fft: int. Frame and FFT length. Defaults to 512.
        hop_length: int. Hop between frames. Defaults to `n_fft // 4`.
        output_size: `(freq, time)` or `None`. Bilinear resize target
            (`keras.layers.Resizing`). Defaults to `None`.
        log_floor: float. Added to the magnitude before the log. Defaults
            to 1e-7.
        **kwargs: standard `keras.layers.Layer` arguments.

    Example:

    ```python
    spec = keras_dgl.preprocessing.LogSpectrogram(n_fft=512, hop_length=353)
    spec(np.zeros((2, 66150), "float32")).shape  # (2, 257, 188, 1)
    ```
    """

    def __init__(self, n_fft=512, hop_length=None, output_size=None,
                 log_floor=1e-7, **kwargs):
        super().__init__(**kwargs)
        if int(n_fft) < 2:
            raise ValueError(f"n_fft must be >= 2, got {n_fft}.")
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length or self.n_fft // 4)
        self.output_size = (
            None if output_size is None else tuple(int(s) for s in output_size)
        )
        self.log_floor = float(log_floor)
        self.stft = keras.layers.STFTSpectrogram(
            mode="stft",
            frame_length=self.n_fft,
            frame_step=self.hop_length,
            fft_length=self.n_fft,
            window="hann",
            periodic=True,
            scaling=None,
            padding="valid",
            trainable=False,
            dtype=self.dtype_policy,
            name="stft",
        )
        self.resizing = None
        if self.output_size is not None:
            self.resizing = keras.layers.Resizing(
                *self.output_size, interpolation="bilinear",
                dtype=self.dtype_policy, name="resizing",
            )

    def build(self, input_shape):
        samples = input_shape[1]
        padded = None if samples is None else samples + 2 * (self.n_fft // 2)
        self.stft.build((input_shape[0], padded, 1))
        if self.resizing is not None:
            bins = self.n_fft // 2 + 1
            frames = None if samples is None else 1 + samples // self.hop_length
            self.resizing.build((input_shape[0], bins, frames, 1))

    def call(self, inputs):
        half = self.n_fft // 2
        waves = ops.pad(ops.cast(inputs, self.compute_dtype),
                        [[0, 0], [half, half]], mode="reflect")
        both = self.stft(waves[:, :, None])  # (batch, time, 2 * freq)
        bins = self.n_fft // 2 + 1
        real, imag = both[..., :bins], both[..., bins:]
        magnitude = ops.sqrt(ops.square(real) + ops.square(imag))
        spec = ops.log(magnitude + self.log_floor)
        spec = ops.transpose(spec, (0, 2, 1))[..., None]  # (batch, freq, time, 1)
        if self.resizing is not None:
            spec = self.resizing(spec)
        return spec

    def compute_output_shape(self, input_shape):
        if self.output_size is not None:
            return (input_shape[0],) + self.output_size + (1,)
        samples = input_shape[1]
        frames = None if samples is None else 1 + samples // self.hop_length
        return (input_shape[0], self.n_fft // 2 + 1, frames, 1)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "n_fft": self.n_fft,
                "hop_length": self.hop_length,
                "output_size": (
                    None if self.output_size is None else list(self.output_size)
                ),
                "log_floor": self.log_floor,
            }
        )
        return config
