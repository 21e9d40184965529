"""Multilayer perceptron encoder for feature vectors."""

import keras

from keras_dgl.encoders._layer_chain import build_chain
from keras_dgl.encoders._layer_chain import call_chain


@keras.saving.register_keras_serializable(package="keras_dgl")
class MLPEncoder(keras.layers.Layer):
    """Multilayer perceptron mapping a feature vector to a feature vector.

    Each entry of `hidden_units` adds a `Dense` layer (Glorot-uniform
    kernel), then batch normalization when `use_batch_norm=True`, then the
    activation, then `Dropout` when `dropout > 0`. The activation is applied
    after the last layer too, so the output is a feature vector like those
    of the other encoders, not logits.

    Inputs must have rank 2, `(batch, features)`: other ranks raise a
    `ValueError` instead of being flattened, since silently merging axes
    would hide a wrong input pipeline.

    Args:
        hidden_units: tuple of ints. Units of each `Dense` layer. The last
            one is the output size. Defaults to `(128, 64)`.
        activation: string or callable. Activation after each layer.
            Defaults to `"relu"`.
        dropout: float. Dropout rate after each activation, in `[0, 1)`.
            Defaults to `0.0`.
        use_batch_norm: bool. Whether to add batch normalization between
            each `Dense` layer and its activation. Defaults to `False`.
        **kwargs: other keyword arguments of `keras.layers.Layer`, such as
            `name` and `dtype`.

    Example:

    ```python
    encoder = keras_dgl.encoders.MLPEncoder(hidden_units=(256, 128))
    features = np.random.rand(8, 40).astype("float32")
    encoder(features).shape  # (8, 128)
    ```
    """

    def __init__(
        self,
        hidden_units=(128, 64),
        activation="relu",
        dropout=0.0,
        use_batch_norm=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(hidden_units, int):
            hidden_units = (hidden_units,)
        if len(hidden_units) == 0:
            raise ValueError("`hidden_units` must name at least one layer.")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1). Received: dropout={dropout}")
        self.hidden_units = tuple(int(u) for u in hidden_units)
        self.activation = keras.activations.get(activation)
        self.dropout = float(dropout)
        self.use_batch_norm = bool(use_batch_norm)
        dtype = self.dtype_policy

        self.blocks = []
        for i, units in enumerate(self.hidden_units):
            block = [
                keras.layers.Dense(
                    units,
                    kernel_initializer="glorot_uniform",
                    # With batch norm its beta replaces the bias.
                    use_bias=not self.use_batch_norm,
                    dtype=dtype,
                    name=f"dense{i + 1}",
                )
            ]
            if self.use_batch_norm:
                block.append(keras.layers.BatchNormalization(dtype=dtype, name=f"bn{i + 1}"))
            block.append(
                keras.layers.Activation(self.activation, dtype=dtype, name=f"activation{i + 1}")
            )
            if self.dropout > 0:
                block.append(
                    keras.layers.Dropout(self.dropout, dtype=dtype, name=f"dropout{i + 1}")
                )
            self.blocks.append(block)

    def _layers_in_order(self):
        return [layer for block in self.blocks for layer in block]

    def _check_shape(self, shape):
        shape = tuple(shape)
        if len(shape) == 2 and shape[-1] is not None:
            return
        raise ValueError(
            f"{self.__class__.__name__} expects inputs of shape "
            "(batch, features) with a known number of features; flatten or "
            f"pool other inputs first. Received input shape: {shape}"
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
        return (input_shape[0], self.hidden_units[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "hidden_units": self.hidden_units,
                "activation": keras.activations.serialize(self.activation),
                "dropout": self.dropout,
                "use_batch_norm": self.use_batch_norm,
            }
        )
        return config
