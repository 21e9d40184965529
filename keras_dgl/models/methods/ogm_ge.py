"""On-the-fly Gradient Modulation with Generalization Enhancement."""

import keras

from keras_dgl.models.methods.ogm import OGM


class OGMGE(OGM):
    """OGM plus the generalization enhancement (Peng et al., 2022).

    As `"ogm"`, and Gaussian noise with, per variable, the standard
    deviation of that variable's unmodulated gradient, is added on every
    encoder's gradient (it needs the gradient itself, hence the custom
    step). The noise is drawn from a `keras.random.SeedGenerator` owned by
    the model.

    Example:

    ```python
    model = keras_dgl.DGLModel(
        encoders,
        keras_dgl.layers.ConcatFusion(num_classes=6),
        method="ogm_ge",
        ogm_alpha=0.8,
    )
    ```

    References:
        - [Peng et al., CVPR 2022](https://arxiv.org/abs/2203.15332)
    """


    def __init__(self, model, options=None):
        super().__init__(model, options)
        # Tracked by the model, so its state is saved and mapped on JAX.
        model._noise_seed = keras.random.SeedGenerator()

    def noise_seed(self, model):
        return model._noise_seed
