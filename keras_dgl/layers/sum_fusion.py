"""Sum fusion."""

import keras
from keras import ops

from keras_dgl.layers.fusion_layer import FusionLayer


@keras.saving.register_keras_serializable(package="keras_dgl")
class SumFusion(FusionLayer):
    """Adds one linear classifier per modality: `fused = sum_m (f_m @ W_m + b_m)`.

    The shared unimodal prediction of modality `m` is its own term,
    `f_m @ W_m + b_m` (as in the reference code; zeroing the other modalities
    would add their biases as a constant offset).

    Args:
        units: int. Number of outputs (classes, labels or regression
            targets); `num_classes=` is accepted as another name.
        unimodal_head: str, `"shared"` (default) or `"separate"`. See
            `keras_dgl.layers.FusionLayer`.
        kernel_initializer: initializer of the kernels. Defaults to
            `"glorot_uniform"`.
        **kwargs: standard `keras.layers.Layer` arguments.

    Example:

    ```python
    fusion = keras_dgl.layers.SumFusion(num_classes=6)
    logits = fusion({"audio": np.ones((2, 512)), "visual": np.ones((2, 64))})
    ```
    """

    def build_fusion(self, feature_shapes):
        self.classifiers = {}
        for name in self.modalities:
            self.classifiers[name] = self._add_dense(
                self.units, f"{name}_classifier", feature_shapes[name]
            )

    def fuse(self, features, training=None):
        terms = [self.classifiers[name](features[name]) for name in self.modalities]
        fused = terms[0]
        for term in terms[1:]:
            fused = ops.add(fused, term)
        return fused

    def assign_fused_from_heads(self, heads):
        for name in self.modalities:
            self.classifiers[name].kernel.assign(heads[name].kernel)
            self.classifiers[name].bias.assign(heads[name].bias)

    def shared_unimodal_logits(self, features, modality, training=None):
        return self.classifiers[modality](features[modality])
