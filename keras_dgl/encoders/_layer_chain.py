"""Building and calling an encoder's sublayers in order (private helpers)."""


def build_chain(layers, input_shape):
    """Builds `layers` one after another and returns the output shape.

    Every weight then exists after `build()`: `.keras` loading restores
    weights right after `build_from_config`, before any call, so lazily
    built sublayers would be missed.
    """
    shape = tuple(input_shape)
    for layer in layers:
        layer.build(shape)
        shape = layer.compute_output_shape(shape)
    return shape


def call_chain(layers, x, training, training_types):
    """Applies `layers` in order, passing `training` to `training_types`."""
    for layer in layers:
        if isinstance(layer, training_types):
            x = layer(x, training=training)
        else:
            x = layer(x)
    return x
