"""Concatenation fusion."""

import keras
from keras import ops

from keras_dgl.layers.fusion_layer import FusionLayer


@keras.saving.register_keras_serializable(package="keras_dgl")
class ConcatFusion(FusionLayer):
    """Concatenates the modality features and applies one linear classifier.

    `fused = concat(f_1, ..., f_M) @ W + b`. The shared unimodal prediction of
    modality `m` is the same classifier with the other modalities zeroed,
    `f_m @ W_m + b`, where `W_m` is modality `m`'s slice of the kernel.

    Args:
        units: int. Number of outputs (classes, labels or regression
            targets); `num_classes=` is accepted as another name.
        unimodal_head: str, `"shared"` (default) or `"separate"`. See
            `keras_dgl.layers.FusionLayer`.
        kernel_initializer: initializer of the kernel. Defaults to
            `"glorot_uniform"`.
        **kwargs: standard `keras.layers.Layer` arguments.

    Example:

    ```python
    fusion = keras_dgl.layers.ConcatFusion(num_classes=6)
    features = {"audio": np.ones((2, 512)), "visual": np.ones((2, 512))}
    logits = fusion(features)                   # (2, 6)
    per_modality = fusion(features, unimodal=True)  # {"audio": (2, 6), ...}
    ```
    """

    def build_fusion(self, feature_shapes):
        self._slices = {}
        offset = 0
        for name in self.modalities:
            dim = feature_shapes[name][-1]
            self._slices[name] = (offset, offset + dim)
            offset += dim
        self.kernel = self.add_weight(
            shape=(offset, self.units),
            initializer=self._new_kernel_initializer(),
            name="kernel",
        )
        self.bias = self.add_weight(
            shape=(self.units,), initializer="zeros", name="bias"
        )

    def fuse(self, features, training=None):
        stacked = ops.concatenate(
            [features[name] for name in self.modalities], axis=-1
        )
        return ops.add(ops.matmul(stacked, self.kernel), self.bias)

    def assign_fused_from_heads(self, heads):
        # Rows of the kernel follow the sorted modalities, as in `fuse`.
        self.kernel.assign(
            ops.concatenate([heads[name].kernel for name in self.modalities], axis=0)
        )
        bias = heads[self.modalities[0]].bias
        for name in self.modalities[1:]:
            bias = ops.add(bias, heads[name].bias)
        self.bias.assign(bias)

    def shared_unimodal_logits(self, features, modality, training=None):
        start, stop = self._slices[modality]
        kernel = self.kernel[start:stop]
        return ops.add(ops.matmul(features[modality], kernel), self.bias)
