"""ResNet-18 image and video encoder."""

import keras
from keras import ops

from keras_dgl.encoders._initializers import HeNormalDrawnFlat
from keras_dgl.encoders._layer_chain import build_chain
from keras_dgl.encoders._layer_chain import call_chain


def _conv2d(filters, kernel_size, strides, data_format, dtype, name):
    # No bias: every conv is followed by BatchNormalization, whose beta
    # makes a conv bias redundant (as in the original ResNet).
    return keras.layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="valid",
        use_bias=False,
        kernel_initializer=HeNormalDrawnFlat(),
        data_format=data_format,
        dtype=dtype,
        name=name,
    )


def _batch_norm(data_format, dtype, name):
    axis = 1 if data_format == "channels_first" else -1
    # PyTorch-style BN constants (momentum 0.1 there is 0.9 here).
    return keras.layers.BatchNormalization(
        axis=axis, momentum=0.9, epsilon=1e-5, dtype=dtype, name=name
    )


class _BasicBlock(keras.layers.Layer):
    """Two 3x3 convs with an identity or 1x1-projection shortcut.

    Private to `ResNet18`: it is rebuilt from `ResNet18`'s config, so it
    needs no serialization of its own.
    """

    def __init__(self, filters, strides, project, data_format, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.strides = strides
        self.project = project
        self.data_format = data_format
        dtype = self.dtype_policy
        # Explicit symmetric padding of 1 reproduces the paper's (and
        # torchvision's) geometry; "same" padding with stride 2 would pad
        # only the bottom/right edge.
        self.pad1 = keras.layers.ZeroPadding2D(
            1, data_format=data_format, dtype=dtype, name="pad1"
        )
        self.conv1 = _conv2d(filters, 3, strides, data_format, dtype, "conv1")
        self.bn1 = _batch_norm(data_format, dtype, "bn1")
        self.relu1 = keras.layers.ReLU(dtype=dtype, name="relu1")
        self.pad2 = keras.layers.ZeroPadding2D(
            1, data_format=data_format, dtype=dtype, name="pad2"
        )
        self.conv2 = _conv2d(filters, 3, 1, data_format, dtype, "conv2")
        self.bn2 = _batch_norm(data_format, dtype, "bn2")
        if project:
            self.shortcut_conv = _conv2d(
                filters, 1, strides, data_format, dtype, "shortcut_conv"
            )
            self.shortcut_bn = _batch_norm(data_format, dtype, "shortcut_bn")
        self.relu_out = keras.layers.ReLU(dtype=dtype, name="relu_out")

    def _residual_layers(self):
        return [
            self.pad1,
            self.conv1,
            self.bn1,
            self.relu1,
            self.pad2,
            self.conv2,
            self.bn2,
        ]

    def _shortcut_layers(self):
        if self.project:
            return [self.shortcut_conv, self.shortcut_bn]
        return []

    def build(self, input_shape):
        build_chain(self._residual_layers(), input_shape)
        build_chain(self._shortcut_layers(), input_shape)

    def call(self, inputs, training=None):
        x = call_chain(
            self._residual_layers(),
            inputs,
            training,
            keras.layers.BatchNormalization,
        )
        shortcut = inputs
        if self.project:
            shortcut = self.shortcut_conv(shortcut)
            shortcut = self.shortcut_bn(shortcut, training=training)
        return self.relu_out(x + shortcut)

    def compute_output_shape(self, input_shape):
        shape = input_shape
        for layer in self._residual_layers():
            shape = layer.compute_output_shape(shape)
        return shape


def _swap_channels(shape, to_format):
    if to_format == "channels_last":
        return shape[:1] + shape[2:] + shape[1:2]
    return shape[:1] + shape[-1:] + shape[1:-1]


@keras.saving.register_keras_serializable(package="keras_dgl")
class ResNet18(keras.layers.Layer):
    """ResNet-18 encoder mapping images or videos to one feature vector each.

    The standard 18-layer residual network, trained from scratch: a 7x7
    stride-2 convolution, batch normalization, ReLU and a 3x3 stride-2 max
    pool, then four stages of two basic blocks with `base_filters`,
    `2 * base_filters`, `4 * base_filters` and `8 * base_filters` filters
    (stride 2 at the start of stages 2-4, with a 1x1 convolution and batch
    normalization on the shortcut wherever the shape changes), and global
    average pooling. The output has `8 * base_filters` features (512 by
    default).

    Images have shape `(batch, height, width, channels)`. Videos have shape
    `(batch, frames, height, width, channels)`: the frames are folded into
    the batch, encoded independently by the same 2D network, and the pooled
    features are averaged over frames, as in the published DGL setup. With
    `data_format="channels_first"` the channel axis comes right after the
    batch (images) or frame (videos) axis. Height and width may be any size,
    including `None`; audio spectrograms such as `(batch, 257, 188, 1)` work
    with `input_channels=1`.

    Args:
        input_channels: int. Number of input channels, checked when the
            layer is built. Defaults to `3`.
        base_filters: int. Filters in the first stage; the later stages
            double it each time. Defaults to `64`.
        data_format: string or `None`. `"channels_last"` or
            `"channels_first"`. `None` takes
            `keras.config.image_data_format()`. It sets the layout of the
            inputs; on the TensorFlow backend the network itself always
            computes channels-last (TensorFlow has no channels-first
            convolution on CPU), so channels-first inputs are transposed
            once on entry, and on the torch backend always channels-first
            (PyTorch's native layout; on a GPU the frames then move in
            channels-last memory order, which cuDNN prefers). Defaults to
            `None`.
        **kwargs: other keyword arguments of `keras.layers.Layer`, such as
            `name` and `dtype`.

    Example:

    ```python
    encoder = keras_dgl.encoders.ResNet18(input_channels=3)
    images = np.random.rand(2, 112, 112, 3).astype("float32")
    encoder(images).shape  # (2, 512)

    video_encoder = keras_dgl.encoders.ResNet18(base_filters=16)
    videos = np.random.rand(2, 3, 112, 112, 3).astype("float32")
    video_encoder(videos).shape  # (2, 128)

    audio_encoder = keras_dgl.encoders.ResNet18(input_channels=1)
    spectrograms = np.random.rand(2, 257, 188, 1).astype("float32")
    audio_encoder(spectrograms).shape  # (2, 512)
    ```

    References:
        - [He et al., 2016. Deep Residual Learning for Image Recognition](
            https://arxiv.org/abs/1512.03385)
        - [Wei et al., 2025. Boosting Multimodal Learning via Disentangled
            Gradient Learning](https://arxiv.org/abs/2507.10213)
    """

    # On the torch backend, run the forward pass as native PyTorch calls on
    # the same variables instead of ~90 eager Keras layer calls (see
    # `_torch_resnet`). False runs the Keras layers (the benchmarks compare).
    torch_native_forward = True

    def __init__(
        self, input_channels=3, base_filters=64, data_format=None, **kwargs
    ):
        super().__init__(**kwargs)
        if data_format is None:
            data_format = keras.config.image_data_format()
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(
                "`data_format` must be 'channels_last', 'channels_first' or "
                f"None. Received: data_format={data_format!r}"
            )
        self.input_channels = int(input_channels)
        self.base_filters = int(base_filters)
        # Stored resolved, so a saved model does not depend on the global
        # image data format of the process that loads it.
        self.data_format = data_format
        # Layout the layers compute in. TensorFlow's CPU kernels have no
        # NCHW convolution or pooling, so on that backend channels-first
        # inputs are transposed once at the input instead; the torch
        # backend's native forward (see `_torch_resnet`) is NCHW. Weights
        # do not depend on the layout, so saved models move between
        # backends.
        backend = keras.backend.backend()
        if backend == "tensorflow":
            self._compute_format = "channels_last"
        elif backend == "torch":
            self._compute_format = "channels_first"
        else:
            self._compute_format = data_format
        data_format = self._compute_format
        dtype = self.dtype_policy

        self.stem_pad = keras.layers.ZeroPadding2D(
            3, data_format=data_format, dtype=dtype, name="stem_pad"
        )
        self.stem_conv = _conv2d(
            base_filters, 7, 2, data_format, dtype, "stem_conv"
        )
        self.stem_bn = _batch_norm(data_format, dtype, "stem_bn")
        self.stem_relu = keras.layers.ReLU(dtype=dtype, name="stem_relu")
        # Zero padding equals the usual -inf padding here because the
        # inputs of the pool are non-negative (after ReLU).
        self.pool_pad = keras.layers.ZeroPadding2D(
            1, data_format=data_format, dtype=dtype, name="pool_pad"
        )
        self.stem_pool = keras.layers.MaxPooling2D(
            3, strides=2, data_format=data_format, dtype=dtype, name="stem_pool"
        )

        self.blocks = []
        in_filters = base_filters
        for stage, multiplier in enumerate((1, 2, 4, 8)):
            filters = base_filters * multiplier
            for index in range(2):
                strides = 2 if (stage > 0 and index == 0) else 1
                project = strides != 1 or in_filters != filters
                self.blocks.append(
                    _BasicBlock(
                        filters,
                        strides,
                        project,
                        data_format,
                        dtype=dtype,
                        name=f"stage{stage + 1}_block{index + 1}",
                    )
                )
                in_filters = filters
        self.global_pool = keras.layers.GlobalAveragePooling2D(
            data_format=data_format, dtype=dtype, name="global_pool"
        )

    @property
    def output_dim(self):
        return 8 * self.base_filters

    def _layers_in_order(self):
        return [
            self.stem_pad,
            self.stem_conv,
            self.stem_bn,
            self.stem_relu,
            self.pool_pad,
            self.stem_pool,
            *self.blocks,
            self.global_pool,
        ]

    def _check_shape(self, shape):
        shape = tuple(shape)
        channel_axis = -1 if self.data_format == "channels_last" else -3
        if len(shape) in (4, 5) and shape[channel_axis] == self.input_channels:
            return
        c = self.input_channels
        if self.data_format == "channels_last":
            expected = f"(batch, H, W, {c}) or (batch, frames, H, W, {c})"
        else:
            expected = f"(batch, {c}, H, W) or (batch, frames, {c}, H, W)"
        raise ValueError(
            f"{self.__class__.__name__} expects inputs of shape {expected} "
            f"(data_format={self.data_format!r}, "
            f"input_channels={self.input_channels}). "
            f"Received input shape: {shape}"
        )

    def build(self, input_shape):
        self._check_shape(input_shape)
        # Videos are encoded frame by frame, so the 2D net is built for
        # rank-4 inputs either way.
        frame_shape = (None,) + tuple(input_shape)[-3:]
        if self._compute_format != self.data_format:
            frame_shape = _swap_channels(frame_shape, self._compute_format)
        build_chain(self._layers_in_order(), frame_shape)

    def call(self, inputs, training=None):
        self._check_shape(inputs.shape)
        is_video = len(inputs.shape) == 5
        x = inputs
        if is_video:
            shape = ops.shape(inputs)
            num_frames = shape[1]
            x = ops.reshape(inputs, (-1,) + tuple(shape[2:]))
        if self._compute_format != self.data_format:
            if self._compute_format == "channels_last":
                x = ops.transpose(x, (0, 2, 3, 1))
            else:
                x = ops.transpose(x, (0, 3, 1, 2))
        if keras.backend.backend() == "torch" and self.torch_native_forward:
            from keras_dgl.encoders import _torch_resnet

            x = _torch_resnet.resnet18_forward(self, x, bool(training))
        else:
            x = call_chain(
                self._layers_in_order(),
                x,
                training,
                (keras.layers.BatchNormalization, _BasicBlock),
            )
        if is_video:
            x = ops.reshape(x, (-1, num_frames, self.output_dim))
            x = ops.mean(x, axis=1)
        return x

    def compute_output_shape(self, input_shape):
        # Symbolic calls on a built layer use this and skip `call`.
        self._check_shape(input_shape)
        return (input_shape[0], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "input_channels": self.input_channels,
                "base_filters": self.base_filters,
                "data_format": self.data_format,
            }
        )
        return config
