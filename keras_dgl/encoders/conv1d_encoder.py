"""1D convolutional encoder for sensor time series."""

import keras

from keras_dgl.encoders._initializers import HeNormalDrawnFlat
from keras_dgl.encoders._layer_chain import build_chain
from keras_dgl.encoders._layer_chain import call_chain


@keras.saving.register_keras_serializable(package="keras_dgl")
class Conv1DEncoder(keras.layers.Layer):
    """Convolutional encoder mapping a time series to one feature vector.

    Each entry of `filters` adds a block of `Conv1D` ("same" padding, no
    bias), batch normalization and ReLU, followed by `Dropout` when
    `dropout > 0`. Between consecutive blocks a `MaxPooling1D(2)` halves the
    time axis: it widens the receptive field of the later blocks and cuts
    their cost, and its "same" padding keeps even a single time step valid.
    Global average pooling over time then gives `(batch, filters[-1])`, so
    any sequence length (including `None`) works.

    Args:
        filters: tuple of ints. Filters of each convolutional block.
            Defaults to `(32, 64, 128)`.
        kernel_size: int. Width of every convolution kernel. Defaults to `5`.
        dropout: float. Dropout rate after each block, in `[0, 1)`.
            Defaults to `0.0`.
        **kwargs: other keyword arguments of `keras.layers.Layer`, such as
            `name` and `dtype`.

    Example:

    ```python
    encoder = keras_dgl.encoders.Conv1DEncoder(filters=(32, 64), dropout=0.1)
    accelerometer = np.random.rand(8, 100, 6).astype("float32")
    encoder(accelerometer).shape  # (8, 64)
    ```
    """

    def __init__(self, filters=(32, 64, 128), kernel_size=5, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(filters, int):
            filters = (filters,)
        if len(filters) == 0:
            raise ValueError("`filters` must name at least one block.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        self.filters = tuple(int(f) for f in filters)
        self.kernel_size = int(kernel_size)
        self.dropout = float(dropout)
        dtype = self.dtype_policy

        # One list of layers per block, each run in order by `call`.
        self.blocks = []
        for i, units in enumerate(self.filters):
            block = []
            if i > 0:
                block.append(
                    keras.layers.MaxPooling1D(2, padding="same", dtype=dtype, name=f"pool{i}")
                )
            block += [
                keras.layers.Conv1D(
                    units,
                    self.kernel_size,
                    padding="same",
                    # BatchNormalization's beta replaces the bias.
                    use_bias=False,
                    kernel_initializer=HeNormalDrawnFlat(),
                    dtype=dtype,
                    name=f"conv{i + 1}",
                ),
                keras.layers.BatchNormalization(dtype=dtype, name=f"bn{i + 1}"),
                keras.layers.ReLU(dtype=dtype, name=f"relu{i + 1}"),
            ]
            if self.dropout > 0:
                block.append(
                    keras.layers.Dropout(self.dropout, dtype=dtype, name=f"dropout{i + 1}")
                )
            self.blocks.append(block)
        self.global_pool = keras.layers.GlobalAveragePooling1D(dtype=dtype, name="global_pool")

    def _layers_in_order(self):
        return [layer for block in self.blocks for layer in block] + [self.global_pool]

    def _check_shape(self, shape):
        shape = tuple(shape)
        if len(shape) == 3 and shape[-1] is not None:
            return
        raise ValueError(
            f"{self.__class__.__name__} expects inputs of shape "
            "(batch, time, channels) with a known number of channels. "
            f"Received input shape: {shape}"
        )

    def build(self, input_shape):
        self._check_shape(input_shape)
        build_chain(self._layers_in_order(), input_shape)

    def call(self, inputs, training=None):
        self._check_shape(inputs.shape)
        return call_chain(
            self._layers_in_order(),
            inputs,
            training,
            (keras.layers.BatchNormalization, keras.layers.Dropout),
        )

    def compute_output_shape(self, input_shape):
        # Symbolic calls on a built layer use this and skip `call`.
        self._check_shape(input_shape)
        return (input_shape[0], self.filters[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "dropout": self.dropout,
            }
        )
        return config
