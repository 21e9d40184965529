"""Cross-modal attention fusion."""

import keras
from keras import ops

from keras_dgl.layers.fusion_layer import FusionLayer


@keras.saving.register_keras_serializable(package="keras_dgl")
class AttentionFusion(FusionLayer):
    """Transformer-style fusion with one token per modality.

    Each modality's features are projected to a token (the projection's bias
    doubles as a learned modality embedding). The tokens pass through
    `num_layers` pre-norm transformer blocks (multi-head self-attention, so
    every modality attends to every other, then a feed-forward network);
    the tokens are averaged and classified. This is the dense cross-modal
    interaction case, which the DGL reference code does not cover. The shared
    unimodal prediction zeroes the other modalities' features.

    Args:
        units: int. Number of outputs (classes, labels or regression
            targets); `num_classes=` is accepted as another name.
        embed_dim: int. Token width. Defaults to `128`.
        num_heads: int. Attention heads; must divide `embed_dim`. Defaults
            to `4`.
        num_layers: int. Number of transformer blocks. Defaults to `1`.
        dropout: float. Dropout rate inside the blocks. Defaults to `0.0`.
        unimodal_head: str, `"shared"` (default) or `"separate"`. See
            `keras_dgl.layers.FusionLayer`.
        kernel_initializer: initializer of the kernels. Defaults to
            `"glorot_uniform"`.
        **kwargs: standard `keras.layers.Layer` arguments.

    Example:

    ```python
    fusion = keras_dgl.layers.AttentionFusion(num_classes=6, embed_dim=64)
    logits = fusion({"audio": np.ones((2, 512)), "visual": np.ones((2, 512)),
                     "text": np.ones((2, 300))})
    ```
    """

    def __init__(
        self,
        units=None,
        embed_dim=128,
        num_heads=4,
        num_layers=1,
        dropout=0.0,
        **kwargs,
    ):
        super().__init__(units, **kwargs)
        if embed_dim % num_heads:
            raise ValueError(
                f"AttentionFusion: `embed_dim` ({embed_dim}) must be divisible "
                f"by `num_heads` ({num_heads})."
            )
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.num_layers = num_layers
        self.dropout = dropout

    def build_fusion(self, feature_shapes):
        token_shape = (None, len(self.modalities), self.embed_dim)
        self.tokenizers = {
            name: self._add_dense(
                self.embed_dim, f"{name}_token", feature_shapes[name]
            )
            for name in self.modalities
        }
        self.blocks = []
        for index in range(self.num_layers):
            attention = keras.layers.MultiHeadAttention(
                self.num_heads,
                self.embed_dim // self.num_heads,
                dropout=self.dropout,
                kernel_initializer=self._new_kernel_initializer(),
                dtype=self.dtype_policy,
                name=f"attention_{index}",
            )
            attention.build(token_shape, token_shape)
            block = {
                "attention_norm": self._add_sublayer(
                    keras.layers.LayerNormalization,
                    token_shape,
                    name=f"attention_norm_{index}",
                ),
                "attention": attention,
                "ffn_norm": self._add_sublayer(
                    keras.layers.LayerNormalization,
                    token_shape,
                    name=f"ffn_norm_{index}",
                ),
                "ffn_in": self._add_dense(
                    2 * self.embed_dim,
                    f"ffn_in_{index}",
                    token_shape,
                    activation="gelu",
                ),
                "ffn_out": self._add_dense(
                    self.embed_dim,
                    f"ffn_out_{index}",
                    (None, len(self.modalities), 2 * self.embed_dim),
                ),
                "dropout": keras.layers.Dropout(
                    self.dropout, dtype=self.dtype_policy, name=f"dropout_{index}"
                ),
            }
            self.blocks.append(block)
        self.final_norm = self._add_sublayer(
            keras.layers.LayerNormalization, token_shape, name="final_norm"
        )
        self.classifier = self._add_dense(
            self.units, "classifier", (None, self.embed_dim)
        )

    def fuse(self, features, training=None):
        tokens = ops.stack(
            [self.tokenizers[name](features[name]) for name in self.modalities],
            axis=1,
        )
        for block in self.blocks:
            normed = block["attention_norm"](tokens)
            attended = block["attention"](normed, normed, training=training)
            tokens = ops.add(tokens, block["dropout"](attended, training=training))
            hidden = block["ffn_out"](block["ffn_in"](block["ffn_norm"](tokens)))
            tokens = ops.add(tokens, block["dropout"](hidden, training=training))
        pooled = ops.mean(self.final_norm(tokens), axis=1)
        return self.classifier(pooled)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "embed_dim": self.embed_dim,
                "num_heads": self.num_heads,
                "num_layers": self.num_layers,
                "dropout": self.dropout,
            }
        )
        return config
