"""`import keras_dgl` is lazy: no Keras, and no TensorFlow on other backends.

Each check runs in a fresh interpreter, since this test process has long
imported Keras (conftest) and with it the package's modules.
"""

import importlib.util
import os
import subprocess
import sys

import pytest

# Refuses TensorFlow as a machine without it would (the GPU machines).
_NO_TENSORFLOW = """
import importlib.abc
import sys


class _NoTensorFlow(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ImportError(f"{name} is not installed (test)")
        return None


sys.meta_path.insert(0, _NoTensorFlow())
"""


def _python(code, backend=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.pop("KERAS_BACKEND", None)
    if backend:
        env["KERAS_BACKEND"] = backend
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.split()


def test_import_loads_no_keras_and_lists_lazy_names():
    keras_loaded, has_model, exported = _python(
        "import sys, keras_dgl\n"
        "print('keras' in sys.modules)\n"
        "print('DGLModel' in dir(keras_dgl) and 'layers' in dir(keras_dgl))\n"
        "print(','.join(keras_dgl.__all__))\n"
    )
    assert keras_loaded == "False"
    assert has_model == "True"
    assert exported == (
        "DGLModel,callbacks,diagnostics,encoders,gblend_weights,layers,"
        "load_model,preprocessing"
    )


@pytest.mark.skipif(
    importlib.util.find_spec("jax") is None, reason="jax is not installed"
)
def test_jax_backend_never_imports_tensorflow():
    output = _python(
        _NO_TENSORFLOW
        + "import keras_dgl\n"
        + "keras_dgl.DGLModel, keras_dgl.gblend_weights\n"
        + "keras_dgl.encoders.MLPEncoder, keras_dgl.layers.ConcatFusion\n"
        + "keras_dgl.callbacks.GradientMonitor\n"
        + "keras_dgl.diagnostics.modality_contribution\n"
        + "import keras\n"
        + "print(keras.backend.backend(), 'tensorflow' in sys.modules)\n",
        backend="jax",
    )
    assert output == ["jax", "False"]


def test_unknown_attribute_raises_attribute_error():
    output = _python(
        "import keras_dgl\n"
        "try:\n"
        "    keras_dgl.NoSuchThing\n"
        "except AttributeError as error:\n"
        "    print(type(error).__name__)\n"
    )
    assert output == ["AttributeError"]


def test_first_name_used_registers_every_saved_class():
    # A saved model holds encoders and fusion layers besides the DGLModel.
    output = _python(
        "import keras_dgl\n"
        "keras_dgl.DGLModel\n"
        "import keras\n"
        "names = ['DGLModel', 'ResNet18', 'ConcatFusion']\n"
        "print(all(keras.saving.get_registered_object('keras_dgl>' + n) "
        "for n in names))\n"
    )
    assert output == ["True"]


def test_cli_module_loads_no_keras():
    # `keras-dgl --backend` must set KERAS_BACKEND before Keras is imported.
    output = _python(
        "import sys\n"
        "from keras_dgl import cli\n"
        "cli.build_parser()\n"
        "print('keras' in sys.modules)\n"
    )
    assert output == ["False"]


def test_classes_are_registered_when_keras_came_first():
    # `import keras; import keras_dgl; keras.saving.load_model(...)` works.
    output = _python(
        "import keras\n"
        "import keras_dgl\n"
        "print(keras.saving.get_registered_object('keras_dgl>DGLModel') is not None)\n"
    )
    assert output == ["True"]
