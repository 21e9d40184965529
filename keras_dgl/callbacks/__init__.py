"""Keras callbacks for multimodal training diagnostics."""

from keras_dgl.callbacks.best_weights_per_modality import BestWeightsPerModality
from keras_dgl.callbacks.fusion_refit import FusionRefit
from keras_dgl.callbacks.gradient_monitor import GradientMonitor

__all__ = ["BestWeightsPerModality", "FusionRefit", "GradientMonitor"]
