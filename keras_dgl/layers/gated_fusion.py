"""Gated fusion."""

import keras
from keras import ops

from keras_dgl.layers.fusion_layer import FusionLayer


@keras.saving.register_keras_serializable(package="keras_dgl")
class GatedFusion(FusionLayer):
    """Sums projected modality features under learned, cross-modal sigmoid gates.

    Each modality is projected, `h_m = f_m @ P_m + c_m`, and gated by
    `g_m = sigmoid(concat(f_1, ..., f_M) @ G_m + e_m)`, a gate that sees every
    modality. `fused = (sum_m g_m * h_m) @ W + b`. This generalises the
    two-modality gate of the reference code to any number of modalities, and
    unlike it every weight here lies on the fused path, so the multimodal
    loss trains all of them (the reference leaves its projections frozen at
    their initial values under DGL). The shared unimodal prediction zeroes the
    other modalities' features.

    Args:
        units: int. Number of outputs (classes, labels or regression
            targets); `num_classes=` is accepted as another name.
        hidden_dim: int. Width of the projected, gated features. Defaults to
            `256`.
        unimodal_head: str, `"shared"` (default) or `"separate"`. See
            `keras_dgl.layers.FusionLayer`.
        kernel_initializer: initializer of the kernels. Defaults to
            `"glorot_uniform"`.
        **kwargs: standard `keras.layers.Layer` arguments.

    Example:

    ```python
    fusion = keras_dgl.layers.GatedFusion(num_classes=6, hidden_dim=128)
    logits = fusion({"audio": np.ones((2, 512)), "visual": np.ones((2, 512))})
    ```
    """

    def __init__(self, units=None, hidden_dim=256, **kwargs):
        super().__init__(units, **kwargs)
        self.hidden_dim = hidden_dim

    def build_fusion(self, feature_shapes):
        total_dim = sum(feature_shapes[name][-1] for name in self.modalities)
        self.projections = {}
        self.gates = {}
        for name in self.modalities:
            self.projections[name] = self._add_dense(
                self.hidden_dim, f"{name}_projection", feature_shapes[name]
            )
            self.gates[name] = self._add_dense(
                self.hidden_dim, f"{name}_gate", (None, total_dim)
            )
        self.classifier = self._add_dense(
            self.units, "classifier", (None, self.hidden_dim)
        )

    def fuse(self, features, training=None):
        everything = ops.concatenate(
            [features[name] for name in self.modalities], axis=-1
        )
        gated = None
        for name in self.modalities:
            gate = ops.sigmoid(self.gates[name](everything))
            term = ops.multiply(gate, self.projections[name](features[name]))
            gated = term if gated is None else ops.add(gated, term)
        return self.classifier(gated)

    def get_config(self):
        config = super().get_config()
        config.update({"hidden_dim": self.hidden_dim})
        return config
