"""Feature-wise linear modulation (FiLM) fusion."""

import keras
from keras import ops

from keras_dgl.layers.fusion_layer import FusionLayer


@keras.saving.register_keras_serializable(package="keras_dgl")
class FiLMFusion(FusionLayer):
    """One modality scales and shifts the projected features of the others.

    With `c` the conditioning modality: `h = sum_{m != c} (f_m @ P_m + p_m)`,
    `gamma = f_c @ G + 1`, `beta = f_c @ B`, and
    `fused = relu(gamma * h + beta) @ W + b`. Works for any number of
    modalities (two or more). The shared unimodal prediction zeroes the other
    modalities' features, so the conditioning modality's own prediction is
    the modulation of the projections' biases.

    Args:
        units: int. Number of outputs (classes, labels or regression
            targets); `num_classes=` is accepted as another name.
        condition: str or `None`. The conditioning modality; `None` takes the
            first modality name in sorted order. Defaults to `None`.
        hidden_dim: int. Width of the modulated features. Defaults to `256`.
        unimodal_head: str, `"shared"` (default) or `"separate"`. See
            `keras_dgl.layers.FusionLayer`.
        kernel_initializer: initializer of the kernels. Defaults to
            `"glorot_uniform"`.
        **kwargs: standard `keras.layers.Layer` arguments.

    Example:

    ```python
    fusion = keras_dgl.layers.FiLMFusion(num_classes=6, condition="visual")
    logits = fusion({"audio": np.ones((2, 512)), "visual": np.ones((2, 512))})
    ```

    References:
        - [Perez et al., 2018](https://arxiv.org/abs/1709.07871)
    """

    def __init__(self, units=None, condition=None, hidden_dim=256, **kwargs):
        super().__init__(units, **kwargs)
        self.condition = condition
        self.hidden_dim = hidden_dim

    def build_fusion(self, feature_shapes):
        if self.condition is not None and self.condition not in feature_shapes:
            raise ValueError(
                f"FiLMFusion: `condition` names modality '{self.condition}', "
                f"which is not among the inputs {self.modalities}."
            )
        self._condition = self.condition or self.modalities[0]
        cond_shape = feature_shapes[self._condition]
        self.projections = {
            name: self._add_dense(
                self.hidden_dim, f"{name}_projection", feature_shapes[name]
            )
            for name in self.modalities
            if name != self._condition
        }
        self.scale = self._add_dense(self.hidden_dim, "scale", cond_shape)
        self.shift = self._add_dense(self.hidden_dim, "shift", cond_shape)
        self.classifier = self._add_dense(
            self.units, "classifier", (None, self.hidden_dim)
        )

    def fuse(self, features, training=None):
        modulated = None
        for name, projection in self.projections.items():
            term = projection(features[name])
            modulated = term if modulated is None else ops.add(modulated, term)
        condition = features[self._condition]
        gamma = ops.add(self.scale(condition), 1.0)
        hidden = ops.relu(
            ops.add(ops.multiply(gamma, modulated), self.shift(condition))
        )
        return self.classifier(hidden)

    def get_config(self):
        config = super().get_config()
        config.update({"condition": self.condition, "hidden_dim": self.hidden_dim})
        return config
