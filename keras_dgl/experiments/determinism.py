"""The deterministic modes of the frameworks, for `keras-dgl train --deterministic`."""

import os

# Keras is imported inside the functions: `prepare_environment` runs before
# any framework is loaded.

# Set by `enable()`: TensorFlow has no public query of its op determinism.
_enabled = False


def prepare_environment(backend):
    """Sets what must be in the environment before a framework is imported.

    JAX on GPUs needs `--xla_gpu_deterministic_ops=true` in `XLA_FLAGS`, and
    PyTorch's cuBLAS a fixed workspace (`CUBLAS_WORKSPACE_CONFIG`); both are
    read when the framework loads. Harmless on CPUs.

    Args:
        backend: str. The Keras backend about to be loaded.
    """
    if backend == "jax":
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_gpu_deterministic_ops" not in flags:
            os.environ["XLA_FLAGS"] = f"{flags} --xla_gpu_deterministic_ops=true".strip()
    if backend == "torch":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def enable():
    """Makes every op of the loaded backend, and tf.data, deterministic.

    TensorFlow (which feeds every backend through tf.data):
    `tf.config.experimental.enable_op_determinism()`; PyTorch:
    `torch.use_deterministic_algorithms(True)`. JAX is deterministic on CPUs
    and, with `prepare_environment`, on GPUs. An op without a deterministic
    implementation then raises instead of running nondeterministically.
    """
    import keras
    import tensorflow as tf

    global _enabled
    tf.config.experimental.enable_op_determinism()
    if keras.backend.backend() == "torch":
        import torch

        torch.use_deterministic_algorithms(True)
    _enabled = True


def enabled():
    """Whether `enable()` has run in this process."""
    return _enabled
