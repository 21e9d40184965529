import os
import shutil
import tempfile

# XLA (JAX, and TensorFlow's jit_compile) without LLVM's optimisation passes:
# the suite compiles many tiny executables whose run time is negligible, and
# the passes were about a third of their compile time. The passes
# change machine code, not the operations or their float semantics (no fast
# math). Set before Keras loads a backend; fresh processes the tests start
# inherit it. Flags already in XLA_FLAGS are kept, after it.
os.environ["XLA_FLAGS"] = " ".join(
    ["--xla_backend_optimization_level=0", os.environ.get("XLA_FLAGS", "")]
).strip()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# JAX: one compilation cache for the whole run, this process and the fresh
# processes the tests start (they inherit the environment). The fresh
# processes of the crash-safety, optimizer-update and example tests build the
# same models again, and a cached XLA executable is the one a fresh compile
# would produce, so this changes no result, only time (benchmarks/RESULTS.md,
# "Test suite"). The folder is new each run and
# removed at its end, so every run starts cold.
_JAX_CACHE = None
if keras.backend.backend() == "jax" and "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import jax

    _JAX_CACHE = tempfile.mkdtemp(prefix="keras_dgl_jax_cache_")
    _CACHE_SETTINGS = {
        "jax_compilation_cache_dir": _JAX_CACHE,
        # Cache every executable: the suite's are small and quick to compile
        # one by one, but there are thousands of them.
        "jax_persistent_cache_min_compile_time_secs": 0,
        "jax_persistent_cache_min_entry_size_bytes": 0,
    }
    for _name, _value in _CACHE_SETTINGS.items():
        jax.config.update(_name, _value)
        os.environ[_name.upper()] = str(_value)


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


def pytest_unconfigure(config):
    if _JAX_CACHE is not None:
        shutil.rmtree(_JAX_CACHE, ignore_errors=True)


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
    # No full garbage collection: with three frameworks loaded it takes about
    # 0.35 s, every test; Python's own collector still runs.
    keras.utils.clear_session(free_memory=False)
    keras.utils.set_random_seed(1234)
    np.random.seed(1234)
    yield
    keras.config.set_dtype_policy("float32")
