"""Joint training with auxiliary unimodal losses."""

from keras_dgl.models.methods import _common
from keras_dgl.models.methods.method import Method
from keras_dgl.models.methods.method import outputs


class JointAux(Method):
    """Multimodal loss plus `alpha` times the unimodal losses, nothing detached.

    The ablation of DGL showing that the disentangling, not the extra loss,
    is what matters: every term reaches every parameter. No options.

    Example:

    ```python
    model = keras_dgl.DGLModel(
        encoders,
        keras_dgl.layers.ConcatFusion(num_classes=6),
        method="joint_aux",
        alpha=0.5,
    )
    ```
    """


    def forward(self, model, features, training, extras=False):
        fused = model.fusion(features, training=training)
        unimodal = model.fusion(features, unimodal=True, training=training)
        return outputs(fused, unimodal), None

    def loss(self, model, y, y_pred, sample_weight, training):
        return _common.weighted_terms(model, y, y_pred, sample_weight)
