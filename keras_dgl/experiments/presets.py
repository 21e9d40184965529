"""Per-dataset defaults of `keras-dgl train`, as plain data.

Each preset is what the experiment trains when given no option: the
training budget and optimizer, `alpha`, the encoder (a class of
`keras_dgl.encoders` and its config), the widths of the fusion layers that
have a hidden size, and default loader options. Keys:

- `epochs`, `batch_size`, `learning_rate`, `alpha`: numbers.
- `optimizer`: a key of `keras_dgl.registry.OPTIMIZERS`.
- `weight_decay`, `global_clipnorm`: `None` or a float (see
  `keras_dgl.optimizers.make_optimizer`).
- `lr_drop_fraction`, `lr_drop_factor`: with SGD, the learning rate is
  multiplied by `lr_drop_factor` from epoch `round(lr_drop_fraction *
  epochs)` on (`None`: a constant rate).
- `encoder`: `{"class_name": ..., "config": {...}}`; encoders that take
  `input_channels` get the modality's last axis.
- `fusion_config`: fusion name -> extra keyword arguments of its layer.
- `data_options`: default keyword arguments of the dataset loader.

Importing this module imports no Keras.
"""

# The DGL authors' recipe (their reference code): SGD with momentum 0.9
# ("sgd"), weight decay 1e-4 coupled as in torch.optim.SGD, learning rate
# 2e-3 x0.1 at epoch 70 of 100, the norm of all gradients clipped at 40,
# batch 64. Used by the audio-visual presets,
# examples/crema_d_reproduction.py and benchmarks/gpu_step.py.
PUBLISHED_RECIPE = {
    "epochs": 100,
    "batch_size": 64,
    "optimizer": "sgd",
    "learning_rate": 2e-3,
    "weight_decay": 1e-4,
    "global_clipnorm": 40.0,
    "lr_drop_fraction": 0.7,
    "lr_drop_factor": 0.1,
}

# Widths of the hidden-size fusion layers for the small built-in data (the
# library defaults, made for 512-d ResNet features, cost several times more
# there for no gain).
SMALL_FUSION_CONFIG = {
    "gated": {"hidden_dim": 64},
    "film": {"hidden_dim": 64},
    "attention": {"embed_dim": 64, "num_heads": 4},
}

_CONSTANT_RATE = {
    "weight_decay": None,
    "global_clipnorm": None,
    "lr_drop_fraction": None,
    "lr_drop_factor": 0.1,
}
_RESNET18 = {"class_name": "ResNet18", "config": {}}

PRESETS = {
    # Sized so that the default comparison (4 runs x 3 splits) takes minutes
    # on two CPU cores: validation accuracy levels off after 6-10 epochs.
    # Training windows overlap 50% (a 2 s step) instead of the loader's 75%,
    # which halves an epoch's cost. Adam converges in few epochs here; with
    # Adam alpha does not change DGL (see DGLModel), so it stays at 1. The
    # encoder is a third of the library default's width: the same accuracy
    # on this small data, several times cheaper.
    "smartwatch": {
        "epochs": 12,
        "batch_size": 32,
        "optimizer": "adam",
        "learning_rate": 1e-3,
        "alpha": 1.0,
        **_CONSTANT_RATE,
        "encoder": {
            "class_name": "Conv1DEncoder",
            "config": {"filters": (16, 32, 64), "kernel_size": 5},
        },
        "fusion_config": SMALL_FUSION_CONFIG,
        "data_options": {"overlap": 0.5},
    },
    "synthetic": {
        "epochs": 10,
        "batch_size": 64,
        "optimizer": "adam",
        "learning_rate": 1e-3,
        "alpha": 1.0,
        **_CONSTANT_RATE,
        "encoder": {"class_name": "MLPEncoder", "config": {"hidden_units": (64, 32)}},
        "fusion_config": SMALL_FUSION_CONFIG,
        "data_options": {},
    },
    # The published recipe, with the alpha of the authors' logs.
    "crema-d": {
        **PUBLISHED_RECIPE, "alpha": 4.0, "encoder": _RESNET18,
        "fusion_config": {}, "data_options": {},
    },
    "kinetics-sounds": {
        **PUBLISHED_RECIPE, "alpha": 3.0, "encoder": _RESNET18,
        "fusion_config": {}, "data_options": {},
    },
    "ave": {
        **PUBLISHED_RECIPE, "alpha": 2.0, "encoder": _RESNET18,
        "fusion_config": {}, "data_options": {},
    },
    "vggsound": {
        **PUBLISHED_RECIPE, "alpha": 2.0, "encoder": _RESNET18,
        "fusion_config": {}, "data_options": {},
    },
}


def lr_drop_epoch(preset, epochs):
    """The 0-based epoch from which SGD's learning rate is dropped, or `None`.

    Args:
        preset: dict. A preset (or `PUBLISHED_RECIPE`).
        epochs: int. The run's number of epochs.

    Returns:
        `round(lr_drop_fraction * epochs)`, or `None` without a drop.

    Example:

    ```python
    lr_drop_epoch(PUBLISHED_RECIPE, 100)  # 70
    ```
    """
    fraction = preset.get("lr_drop_fraction")
    return None if fraction is None else int(round(fraction * epochs))
