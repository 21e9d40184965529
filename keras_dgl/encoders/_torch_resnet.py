"""Eager PyTorch forward pass of `ResNet18`, for the torch backend.

On the torch backend Keras runs layers eagerly, and each layer call costs
far more Python time than its kernels on a GPU: a ResNet-18 is ~90 layer
calls, and Keras' batch normalization is a dozen small ops. Measured on
an H200, the Keras-layer forward left the GPU idle most of each step (see
`benchmarks/RESULTS.md`). This module runs the same network on the same
Keras variables with one `torch.nn.functional` call per convolution and a
fused batch normalization. The Keras layers still own every weight, so
building, saving and the other backends are unchanged.

Semantics match the Keras layers: the convolutions pad symmetrically (as
the layer path's explicit `ZeroPadding2D`), batch normalization in
training normalizes with the biased batch variance and updates the moving
statistics with Keras' momentum convention through `Variable.assign` (so
stateless scopes see the update), and it uses the moving statistics in
inference or when the layer is frozen.
"""

import torch
import torch.nn.functional as F


def _conv(x, conv, stride, padding):
    # Keras stores kernels as (kh, kw, in, out); torch wants (out, in, kh, kw).
    kernel = conv.kernel.value.permute(3, 2, 0, 1)
    return F.conv2d(x, kernel.to(x.dtype), stride=stride, padding=padding)


def _batch_norm(x, bn, training):
    # float32 statistics and affine parameters whatever the input dtype, as
    # Keras' BatchNormalization does for float16 / bfloat16 inputs.
    gamma = bn.gamma.value.float()
    beta = bn.beta.value.float()
    if training and bn.trainable:
        out, mean, invstd = torch.native_batch_norm(
            x, gamma, beta, None, None, True, 0.0, bn.epsilon
        )
        with torch.no_grad():
            variance = invstd.double().pow(-2).sub(bn.epsilon).float()
            m = bn.momentum
            bn.moving_mean.assign(bn.moving_mean.value * m + mean * (1.0 - m))
            bn.moving_variance.assign(
                bn.moving_variance.value * m + variance * (1.0 - m)
            )
        return out
    return F.batch_norm(
        x,
        bn.moving_mean.value.float(),
        bn.moving_variance.value.float(),
        gamma,
        beta,
        training=False,
        eps=bn.epsilon,
    )


def _block(x, block, training):
    out = _conv(x, block.conv1, block.strides, 1)
    out = F.relu(_batch_norm(out, block.bn1, training))
    out = _batch_norm(_conv(out, block.conv2, 1, 1), block.bn2, training)
    shortcut = x
    if block.project:
        shortcut = _conv(x, block.shortcut_conv, block.strides, 0)
        shortcut = _batch_norm(shortcut, block.shortcut_bn, training)
    return F.relu(out + shortcut)


def resnet18_forward(encoder, x, training):
    """Pooled features of `encoder` (a built `ResNet18`) for NCHW frames `x`.

    `x` may have channels-last strides (a permuted NHWC tensor): on CUDA,
    cuDNN then runs its NHWC kernels, the fastest for reduced precision.
    """
    if x.is_cuda:
        x = x.contiguous(memory_format=torch.channels_last)
    x = _conv(x, encoder.stem_conv, 2, 3)
    x = F.relu(_batch_norm(x, encoder.stem_bn, training))
    # Padding with -inf, as torch does, equals the layer path's zero
    # padding here because the inputs of the pool are non-negative.
    x = F.max_pool2d(x, 3, stride=2, padding=1)
    for block in encoder.blocks:
        x = _block(x, block, training)
    return x.mean(dim=(2, 3))
