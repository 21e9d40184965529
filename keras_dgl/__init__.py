"""keras_dgl: Disentangled Gradient Learning for multimodal Keras 3 models.

Submodules and the top-level names are imported on first use (PEP 562), so
`import keras_dgl` loads neither Keras nor a backend: the `keras-dgl`
command must read `--backend` before Keras is first imported, and on a
JAX-only machine nothing may pull in TensorFlow by accident.

Keras finds saved `keras_dgl` classes (`keras.saving.load_model`) only once
their modules have run. They are imported with the first name used (any
but `cli` and `registry`, which must not load Keras), or right away if Keras
is already imported when `keras_dgl` is: then it costs no framework
start-up.
"""

import importlib
import sys
import typing

__version__ = "0.1.0"

# Top-level names defined in a submodule, by the module that defines them.
_ATTRIBUTES = {
    "DGLModel": "keras_dgl.models.dgl_model",
    "gblend_weights": "keras_dgl.models.gblend",
    "load_model": "keras_dgl.models.saving",
}
_SUBMODULES = (
    "backend",
    "callbacks",
    "cli",
    "datasets",
    "diagnostics",
    "encoders",
    "experiments",
    "layers",
    "models",
    "optimizers",
    "preprocessing",
    "refit",
    "registry",
    "tuner",
    "utils",
)
# Submodules that import no Keras: using them must not load it.
_KERAS_FREE = ("cli", "registry")
# The modules whose classes are registered for Keras serialization.
_SERIALIZABLE = (
    "keras_dgl.encoders",
    "keras_dgl.layers",
    "keras_dgl.models",
    "keras_dgl.optimizers",
    "keras_dgl.preprocessing",
)

__all__ = [
    "DGLModel",
    "callbacks",
    "diagnostics",
    "encoders",
    "gblend_weights",
    "layers",
    "load_model",
    "preprocessing",
]

if typing.TYPE_CHECKING:  # For static analysis only; never run.
    from keras_dgl import callbacks  # noqa: F401
    from keras_dgl import diagnostics  # noqa: F401
    from keras_dgl import encoders  # noqa: F401
    from keras_dgl import layers  # noqa: F401
    from keras_dgl import preprocessing  # noqa: F401
    from keras_dgl.models.dgl_model import DGLModel  # noqa: F401
    from keras_dgl.models.gblend import gblend_weights  # noqa: F401
    from keras_dgl.models.saving import load_model  # noqa: F401


def __getattr__(name):
    if name in _ATTRIBUTES:
        value = getattr(importlib.import_module(_ATTRIBUTES[name]), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    # Cached as a plain attribute: later lookups skip this function.
    globals()[name] = value
    if name not in _KERAS_FREE:
        # Keras is loaded by now; register what a saved model may hold.
        _import_serializable()
    return value


def _import_serializable():
    for module in _SERIALIZABLE:
        importlib.import_module(module)


def __dir__():
    return sorted(set(globals()) | set(_ATTRIBUTES) | set(_SUBMODULES))


if "keras" in sys.modules:
    _import_serializable()
