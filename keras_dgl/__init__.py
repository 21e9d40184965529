"""keras_dgl: Disentangled Gradient Learning for multimodal Keras 3 models."""

from keras_dgl import encoders
from keras_dgl import layers
from keras_dgl.models.dgl_model import DGLModel

__version__ = "0.1.0"

__all__ = ["DGLModel", "encoders", "layers"]
