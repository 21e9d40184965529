"""Gradient-Blending's weighted objective."""

from keras_dgl.models.methods.joint_aux import JointAux


class GBlend(JointAux):
    """Gradient-Blending (Wang et al., 2020), a baseline.

    The objective of `"joint_aux"` with one weight per term:
    `fused_weight * CE(fused, y) + sum_m alpha[m] * CE(unimodal_m, y)`,
    where the weights come from `keras_dgl.gblend_weights`, which estimates
    them from each term's overfitting-to-generalization ratio on a
    validation split. No options (the weights are `fused_weight` and
    `alpha`).

    Example:

    ```python
    model = keras_dgl.DGLModel(
        encoders,
        keras_dgl.layers.ConcatFusion(num_classes=6),
        method="gblend",
        fused_weight=0.4,
        alpha={"audio": 0.3, "visual": 0.3},
    )
    ```

    References:
        - [Wang, Tran and Feiszli, CVPR 2020](https://arxiv.org/abs/1905.12681)
    """

