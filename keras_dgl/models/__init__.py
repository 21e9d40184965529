from keras_dgl.models.dgl_model import DGLModel
from keras_dgl.models.gblend import gblend_weights

__all__ = ["DGLModel", "gblend_weights"]
