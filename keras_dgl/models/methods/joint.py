"""Joint training, the ordinary baseline."""

from keras_dgl.models.methods import _common
from keras_dgl.models.methods.method import Method
from keras_dgl.models.methods.method import outputs


class Joint(Method):
    """Joint training: the multimodal loss trains everything.

    The unimodal predictions are computed on stop-gradient features for
    monitoring only (separate unimodal heads, if any, are then trained as
    linear probes on those detached features). No options.

    Example:

    ```python
    model = keras_dgl.DGLModel(
        encoders,
        keras_dgl.layers.ConcatFusion(num_classes=6),
        method="joint",
    )
    ```
    """


    def forward(self, model, features, training, extras=False):
        fused = model.fusion(features, training=training)
        unimodal = _common.frozen_unimodal(
            model, _common.detach(features), training
        )
        return outputs(fused, unimodal), None

    def loss(self, model, y, y_pred, sample_weight, training):
        # Under joint training only separate heads (as probes) learn from
        # the unimodal terms.
        separate = model.fusion.unimodal_head == "separate"
        return _common.weighted_terms(
            model, y, y_pred, sample_weight, unimodal=separate
        )
