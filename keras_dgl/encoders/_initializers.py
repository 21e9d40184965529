"""Weight initializers shared by the encoders (private)."""

import math

import keras
from keras import ops


class HeNormalDrawnFlat(keras.initializers.HeNormal):
    """He-normal kernel drawn as a `(fan_in, filters)` matrix, then reshaped.

    Same distribution as `HeNormal` (its fan-in is the product of all but
    the last axis either way). The 2D draw exists for JAX on CPU (jax 0.10,
    partitionable threefry): there, compiling the random draw of a rank-4
    kernel took about 10 s per distinct shape on 2 shared cores, against
    about 1 s for the same draw in 2D, and every kernel shape of the
    network is compiled once when it is built.
    """

    def __call__(self, shape, dtype=None):
        flat_shape = (math.prod(shape[:-1]), shape[-1])
        return ops.reshape(super().__call__(flat_shape, dtype=dtype), shape)
