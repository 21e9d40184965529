"""Small models and data shared by the core tests."""

import keras
import numpy as np

import keras_dgl
from keras_dgl import registry

FUSION_CLASSES = {name: registry.fusion_class(name) for name in registry.FUSIONS}
# Small widths keep the suite fast on two CPU cores.
FUSION_KWARGS = {
    "gated": {"hidden_dim": 8},
    "film": {"hidden_dim": 8},
    "attention": {"embed_dim": 8, "num_heads": 2},
}
METHODS = ("dgl", "joint", "joint_aux")


def make_fusion(kind, num_classes=3, **kwargs):
    return FUSION_CLASSES[kind](
        num_classes=num_classes, **{**FUSION_KWARGS.get(kind, {}), **kwargs}
    )


def make_encoder(units=6, name=None):
    """A deterministic encoder (no dropout) so gradients can be compared."""
    return keras.Sequential(
        [keras.layers.Dense(units, activation="tanh")], name=name
    )


def make_model(fusion="concat", method="dgl", alpha=1.0, dims=None, **fusion_kwargs):
    dims = dims or {"audio": 5, "visual": 4}
    encoders = {name: make_encoder(name=f"{name}_encoder") for name in dims}
    model = keras_dgl.DGLModel(
        encoders, make_fusion(fusion, **fusion_kwargs), alpha=alpha, method=method
    )
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    model.build({name: (None, dim) for name, dim in dims.items()})
    return model


def random_batch(dims=None, batch=8, num_classes=3, seed=0):
    dims = dims or {"audio": 5, "visual": 4}
    rng = np.random.default_rng(seed)
    x = {name: rng.normal(size=(batch, dim)).astype("float32") for name, dim in dims.items()}
    y = rng.integers(0, num_classes, size=(batch,)).astype("int32")
    return x, y


def imbalanced_task(num_examples=512, num_classes=3, seed=0):
    """Two modalities: 'strong' separates the classes well, 'weak' barely."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_classes, size=num_examples).astype("int32")
    centers = {name: rng.normal(size=(num_classes, 8)) for name in ("strong", "weak")}
    x = {
        "strong": centers["strong"][y] * 2.0 + rng.normal(size=(num_examples, 8)),
        "weak": centers["weak"][y] * 0.5 + rng.normal(size=(num_examples, 8)),
    }
    return {k: v.astype("float32") for k, v in x.items()}, y
