"""On-the-fly Gradient Modulation."""

from keras_dgl.models import gradient_modulation
from keras_dgl.models.methods import _common
from keras_dgl.models.methods.joint import Joint


class OGM(Joint):
    """On-the-fly Gradient Modulation (Peng et al., 2022), a baseline.

    The objective is that of `"joint"`, but in each training step the
    encoder gradients are edited before the optimizer applies them: with
    `s_m` the batch sum of modality `m`'s softmax probability of the true
    class (from its unimodal prediction) and `rho_m = s_m / mean(s_n, n !=
    m)`, the gradients of encoder `m` are multiplied by `k_m = 1 -
    tanh(ogm_alpha * rho_m)` when `rho_m > 1` (Eq. 10 of the paper; `k_m =
    1` otherwise), slowing the leading modality. Unlike the reference code,
    every encoder variable is modulated (not only convolution kernels), the
    unimodal logits keep the full fusion bias (not half of it), and
    modulation is applied at every step (the reference stops after epoch 50
    of 100). With Adam-type optimizers a constant `k_m` barely matters
    (they are invariant to a gradient's scale); the paper uses SGD. The
    strength is `DGLModel`'s `ogm_alpha` (default 0.1, the reference
    code's; its authors recommend 0.1 for VGGSound and 0.8 for CREMA-D).

    Example:

    ```python
    model = keras_dgl.DGLModel(
        encoders,
        keras_dgl.layers.ConcatFusion(num_classes=6),
        method="ogm",
        ogm_alpha=0.8,
    )
    ```

    References:
        - [Peng et al., CVPR 2022](https://arxiv.org/abs/2203.15332)
    """

    own_step = True

    def noise_seed(self, model):
        return None

    def transform_gradients(self, model, gradients, y, y_pred, extras, substep):
        coefficients, _ = gradient_modulation.ogm_coefficients(
            y_pred["unimodal"], y, model.ogm_alpha
        )
        return gradient_modulation.modulate_gradients(
            gradients,
            _common.encoder_owners(model),
            coefficients,
            noise_seed=self.noise_seed(model),
        )
