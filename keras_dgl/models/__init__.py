from keras_dgl.models.dgl_model import DGLModel
from keras_dgl.models.gblend import gblend_weights
from keras_dgl.models.saving import load_model

__all__ = ["DGLModel", "gblend_weights", "load_model"]
