"""keras_dgl: Disentangled Gradient Learning for multimodal Keras 3 models."""

from keras_dgl import callbacks
from keras_dgl import diagnostics
from keras_dgl import encoders
from keras_dgl import layers
from keras_dgl.models.dgl_model import DGLModel
from keras_dgl.models.gblend import gblend_weights

__version__ = "0.1.0"

__all__ = [
    "DGLModel",
    "callbacks",
    "diagnostics",
    "encoders",
    "gblend_weights",
    "layers",
]
