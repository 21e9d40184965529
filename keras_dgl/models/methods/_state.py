"""The layer that holds a method's state as Keras variables."""

import keras


class MethodState(keras.layers.Layer):
    """Non-trainable state (and any sublayers) of one training method.

    Attached to the model as `model.method_state`, so its variables are
    saved with the model, restored by `load_model`, and threaded through
    JAX's stateless training step like batch-normalization statistics.
    It is never called; methods read and assign its variables.
    """

    def add_state(self, name, shape=(), dtype="float32", initializer="zeros"):
        variable = self.add_weight(
            shape=shape,
            dtype=dtype,
            initializer=initializer,
            trainable=False,
            name=name,
        )
        setattr(self, name, variable)
        return variable


def attach_state(model, method_name):
    """Creates and attaches the state layer of `method_name` to `model`."""
    model.method_state = MethodState(name=f"{method_name}_state")
    return model.method_state
