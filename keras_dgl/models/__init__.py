from keras_dgl.models.dgl_model import DGLModel

__all__ = ["DGLModel"]
