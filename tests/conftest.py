import keras
import numpy as np
import pytest


# Tests of code that runs in TensorFlow (tf.data) or plain Python whatever
# the Keras backend is: the data loaders, `prepare`, file checks. They run
# once, on the TensorFlow backend, which they need anyway; the tests that
# feed the data to Keras (training, the device-side layers) run on every
# backend. Mark a module with `pytestmark = BACKEND_INDEPENDENT` or a test
# with `@BACKEND_INDEPENDENT`.
BACKEND_INDEPENDENT_REASON = (
    "backend-independent: exercises tf.data / file code that runs the same "
    "under every Keras backend; it runs on the tensorflow backend"
)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "backend_independent: " + BACKEND_INDEPENDENT_REASON,
    )


def pytest_collection_modifyitems(config, items):
    if keras.backend.backend() == "tensorflow":
        return
    skip = pytest.mark.skip(reason=BACKEND_INDEPENDENT_REASON)
    for item in items:
        if item.get_closest_marker("backend_independent") is not None:
            item.add_marker(skip)


def pytest_report_header(config):
    return f"keras {keras.__version__}, backend: {keras.backend.backend()}"


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    """Every test starts from float32, a cleared session and fixed seeds."""
    keras.config.set_dtype_policy("float32")
    keras.utils.clear_session()
    keras.utils.set_random_seed(1234)
    np.random.seed(1234)
    yield
    keras.config.set_dtype_policy("float32")
