"""Optimizers: the published recipe's SGD and one factory for the named ones."""

from keras_dgl.optimizers.coupled_sgd import CoupledSGD
from keras_dgl.optimizers.make_optimizer import SGD_MOMENTUM
from keras_dgl.optimizers.make_optimizer import make_optimizer

__all__ = ["CoupledSGD", "SGD_MOMENTUM", "make_optimizer"]
