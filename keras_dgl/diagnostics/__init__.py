"""Diagnostics of modality imbalance in a trained multimodal model.

Each function returns plain dicts (or writes a file) so results can be
logged, saved as JSON or compared across methods.
"""

from keras_dgl.diagnostics.imbalance_summary import imbalance_summary
from keras_dgl.diagnostics.linear_probe import linear_probe
from keras_dgl.diagnostics.linear_probe import probe_accuracy
from keras_dgl.diagnostics.modality_contribution import modality_contribution
from keras_dgl.diagnostics.plot_gradient_ratios import plot_gradient_ratios
from keras_dgl.diagnostics.shapley_contribution import shapley_contribution
from keras_dgl.diagnostics.shapley_contribution import shapley_values

__all__ = [
    "imbalance_summary",
    "linear_probe",
    "modality_contribution",
    "plot_gradient_ratios",
    "probe_accuracy",
    "shapley_contribution",
    "shapley_values",
]
