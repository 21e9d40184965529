"""Disentangled Gradient Learning."""

from keras_dgl.models.methods import _common
from keras_dgl.models.methods.method import Method
from keras_dgl.models.methods.method import outputs


class DGL(Method):
    """Disentangled Gradient Learning (the default method).

    Each encoder is trained only by `alpha * CE(unimodal_m, y)`, its own
    unimodal loss (the fusion weights used for that prediction are frozen
    in it); the fusion layer is trained only by the multimodal loss
    `CE(fused, y)`, computed on stop-gradient features. One backward pass
    of the sum gives each parameter exactly one of the two gradients. With
    scale-invariant optimizers (Adam) `alpha` has no effect; with plain SGD
    it multiplies the encoders' step. No options.

    Example:

    ```python
    model = keras_dgl.DGLModel(
        encoders,
        keras_dgl.layers.ConcatFusion(num_classes=6),
        method="dgl",
        alpha=4.0,
    )
    ```

    References:
        - [Wei, Luo and Luo, ICCV 2025](https://arxiv.org/abs/2507.10213)
    """


    def forward(self, model, features, training, extras=False):
        fused = model.fusion(_common.detach(features), training=training)
        unimodal = _common.frozen_unimodal(model, features, training)
        return outputs(fused, unimodal), None

    def loss(self, model, y, y_pred, sample_weight, training):
        return _common.weighted_terms(model, y, y_pred, sample_weight)
