"""Random resized crop (and flip) of images or video clips, in the model."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_dgl")
class RandomResizedCrop(keras.layers.Layer):
    """Crops a random box of each image (or clip) and resizes it.

    Training (`training=True`): per example, a box of area
    `uniform(scale) * H * W` and aspect ratio (width / height)
    `exp(uniform(log(ratio)))`, placed uniformly inside the image, is
    resampled to `height` x `width`; up to 10 draws are made and the first
    that fits is used, else a centred box of the whole height or width
    with the ratio clamped into `ratio` (torchvision's `RandomResizedCrop`
    rule, with fractional box sides instead of whole pixels). With
    `horizontal_flip`, each example is also mirrored with probability 1/2.
    Inference: the whole image is resized to `height` x `width` (the aspect
    ratio is not kept), as the published evaluation transform does.

    A video input `(batch, frames, H, W, C)` gets one box and one flip per
    clip, shared by its frames. Resampling is bilinear with half-pixel
    centres and, where the box is larger than the output, antialiased with
    a triangle filter widened by the scale factor: the filter of
    `tf.image.resize(..., antialias=True)` and of PIL's bilinear resize.
    It is two matrix products per example (`keras.ops.einsum`), the same on
    every backend. Keras' `RandomCrop` crops one fixed-size box per batch
    and `RandomZoom` fills outside the image, and `RandomFlip` takes no
    video tensors, hence this layer. Inputs of any dtype (e.g. uint8) are
    cast to the layer's compute dtype.

    Args:
        height: int. Output height.
        width: int. Output width.
        scale: `(min, max)` floats in `(0, 1]`. Range of the box area as a
            fraction of the image. Defaults to `(0.08, 1.0)`.
        ratio: `(min, max)` positive floats, or `None` for the image's own
            aspect ratio. Range of the box aspect ratio. Defaults to
            `(3/4, 4/3)`.
        horizontal_flip: bool. Mirror half the examples when training.
            Defaults to `False`.
        antialias: bool. Widen the filter when downscaling. Defaults to
            `True`.
        seed: int or `None`. Seed of the random draws.
        **kwargs: standard `keras.layers.Layer` arguments (e.g.
            `dtype="float32"` to resample in float32 under a mixed policy).

    Example:

    ```python
    crop = keras_dgl.preprocessing.RandomResizedCrop(224, 224,
                                                     horizontal_flip=True)
    frames = np.zeros((8, 3, 256, 341, 3), "uint8")  # 8 clips of 3 frames
    crop(frames, training=True).shape  # (8, 3, 224, 224, 3)
    ```
    """

    def __init__(self, height, width, scale=(0.08, 1.0),
                 ratio=(3.0 / 4.0, 4.0 / 3.0), horizontal_flip=False,
                 antialias=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        scale = tuple(float(s) for s in scale)
        if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
            raise ValueError(
                f"scale must be (min, max) with 0 < min <= max <= 1, got "
                f"{scale}."
            )
        if ratio is not None:
            ratio = tuple(float(r) for r in ratio)
            if len(ratio) != 2 or not 0 < ratio[0] <= ratio[1]:
                raise ValueError(
                    f"ratio must be (min, max) with 0 < min <= max, or None; "
                    f"got {ratio}."
                )
        if int(height) < 1 or int(width) < 1:
            raise ValueError(
                f"height and width must be >= 1, got {height}, {width}."
            )
        self.height = int(height)
        self.width = int(width)
        self.scale = scale
        self.ratio = ratio
        self.horizontal_flip = bool(horizontal_flip)
        self.antialias = bool(antialias)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def sample_boxes(self, batch_size, image_height, image_width):
        """Draws training boxes: `(top, left, box_height, box_width)`, each
        a float tensor of shape `(batch_size,)`, in pixels."""
        attempts = 10
        area = float(image_height * image_width)
        image_ratio = image_width / image_height
        low, high = self.ratio or (image_ratio, image_ratio)
        seed = self.seed_generator
        target = area * keras.random.uniform(
            (batch_size, attempts), self.scale[0], self.scale[1], seed=seed
        )
        log_ratio = keras.random.uniform(
            (batch_size, attempts), math.log(low), math.log(high), seed=seed
        )
        aspect = ops.exp(log_ratio)
        box_w = ops.sqrt(target * aspect)
        box_h = ops.sqrt(target / aspect)
        fits = ops.logical_and(box_w <= image_width, box_h <= image_height)
        first = ops.expand_dims(ops.argmax(ops.cast(fits, "int32"), axis=1), 1)
        found = ops.any(fits, axis=1)
        box_w = ops.squeeze(ops.take_along_axis(box_w, first, axis=1), 1)
        box_h = ops.squeeze(ops.take_along_axis(box_h, first, axis=1), 1)
        # Fallback: the largest centred box whose ratio lies in the range.
        if image_ratio < low:
            fallback_w, fallback_h = image_width, image_width / low
        elif image_ratio > high:
            fallback_w, fallback_h = image_height * high, image_height
        else:
            fallback_w, fallback_h = image_width, image_height
        box_w = ops.where(found, box_w, fallback_w)
        box_h = ops.where(found, box_h, fallback_h)
        place = keras.random.uniform((batch_size, 2), seed=seed)
        top = ops.where(found, place[:, 0] * (image_height - box_h),
                        (image_height - box_h) / 2.0)
        left = ops.where(found, place[:, 1] * (image_width - box_w),
                         (image_width - box_w) / 2.0)
        return top, left, box_h, box_w

    def call(self, inputs, training=None):
        images = ops.cast(inputs, self.compute_dtype)
        video = len(images.shape) == 5
        if video:
            _, frames, height, width, channels = images.shape
            images = ops.reshape(
                ops.transpose(images, (0, 2, 3, 1, 4)),
                (-1, height, width, frames * channels),
            )
        elif len(images.shape) != 4:
            raise ValueError(
                "RandomResizedCrop expects (batch, H, W, C) images or "
                f"(batch, frames, H, W, C) clips; got shape {images.shape}."
            )
        _, height, width, _ = images.shape
        batch = ops.shape(images)[0]
        if training:
            top, left, box_h, box_w = self.sample_boxes(batch, height, width)
        else:
            zeros = ops.zeros((batch,), self.compute_dtype)
            top, left = zeros, zeros
            box_h, box_w = zeros + height, zeros + width
        rows = self._weights(top, box_h, height, self.height)
        cols = self._weights(left, box_w, width, self.width)
        if training and self.horizontal_flip:
            flip = keras.random.uniform((batch,), seed=self.seed_generator) < 0.5
            cols = ops.where(flip[:, None, None], ops.flip(cols, axis=1), cols)
        out = ops.einsum("bhwc,bjw->bhjc", images, cols)
        out = ops.einsum("bih,bhjc->bijc", rows, out)
        if video:
            out = ops.transpose(
                ops.reshape(out, (-1, self.height, self.width, frames,
                                  channels)),
                (0, 3, 1, 2, 4),
            )
        return out

    def _weights(self, start, length, size, out):
        """`(batch, out, size)` resampling weights of one axis: output pixel
        `i` is centred at `start + (i + 0.5) * length / out` in input pixels
        (pixel `k` spans `[k, k + 1]`)."""
        dtype = self.compute_dtype
        step = length / out
        centres = start[:, None] + (
            ops.arange(out, dtype=dtype)[None, :] + 0.5) * step[:, None]
        support = ops.maximum(step, 1.0) if self.antialias else ops.ones_like(
            step)
        pixels = ops.arange(size, dtype=dtype) + 0.5
        distance = ops.abs(centres[:, :, None] - pixels[None, None, :])
        weights = ops.relu(1.0 - distance / support[:, None, None])
        return weights / ops.sum(weights, axis=-1, keepdims=True)

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        return shape[:-3] + (self.height, self.width, shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "height": self.height,
                "width": self.width,
                "scale": list(self.scale),
                "ratio": None if self.ratio is None else list(self.ratio),
                "horizontal_flip": self.horizontal_flip,
                "antialias": self.antialias,
                "seed": self.seed,
            }
        )
        return config
