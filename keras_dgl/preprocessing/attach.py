"""Put preprocessing layers in front of encoders."""

import keras


def attach(encoders, preprocessing):
    """Returns encoders that first run their modality's preprocessing.

    Each encoder with an entry in `preprocessing` becomes
    `keras.Sequential([preprocessing[name], encoder])`, so the device-side
    augmentation runs inside the model's step (with `training=True` in
    `fit`, `False` in `evaluate` / `predict`), on every backend, and is
    saved with the model. `keras_dgl.DGLModel` takes the result unchanged.

    Args:
        encoders: dict. Modality name to encoder layer.
        preprocessing: dict. Modality name to Keras layer, e.g.
            `DatasetSplits.preprocessing` of a loader called with
            `augment="device"`. May be empty.

    Returns:
        A dict of the same keys as `encoders`.

    Raises:
        ValueError: `preprocessing` names a modality `encoders` lacks.

    Example:

    ```python
    splits = keras_dgl.datasets.crema_d("/data/CREMA-D-prepared",
                                        augment="device")
    encoders = keras_dgl.preprocessing.attach(
        {"audio": keras_dgl.encoders.ResNet18(input_channels=1),
         "visual": keras_dgl.encoders.ResNet18(input_channels=3)},
        splits.preprocessing,
    )
    model = keras_dgl.DGLModel(encoders, keras_dgl.layers.ConcatFusion(6))
    ```
    """
    extra = sorted(set(preprocessing) - set(encoders))
    if extra:
        raise ValueError(
            f"preprocessing has layers for {extra}, which have no encoder "
            f"(encoders: {sorted(encoders)})."
        )
    return {
        name: (
            keras.Sequential(
                [preprocessing[name], encoder], name=f"{name}_preprocessed"
            )
            if name in preprocessing else encoder
        )
        for name, encoder in encoders.items()
    }
