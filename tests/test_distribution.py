"""Data-parallel training of a DGLModel matches single-device training.

Each check runs in a fresh subprocess, because the simulated devices must be
configured before the framework initializes:

- JAX: `keras.distribution.DataParallel` over two CPU devices made with
  `XLA_FLAGS=--xla_force_host_platform_device_count=2`.
- TensorFlow: `tf.distribute.MirroredStrategy` over two logical CPU devices
  (`tf.config.set_logical_device_configuration`), model created and
  compiled inside `strategy.scope()`.
- PyTorch: Keras has no data-parallel API for the torch backend
  (`keras.distribution` is implemented for JAX, partly for TensorFlow, and
  is `None` on torch; `tf.distribute` needs TF tensors). What works is
  PyTorch's own `DistributedDataParallel` around the Keras model with a
  torch training loop (Keras' guide "Multi-GPU distributed training with
  PyTorch"); this is checked with two `gloo` CPU processes.

In every case the same initial weights are trained for a few SGD steps on
the same global batches, once on one device and once split over two, and
the final weights and losses must agree within `ATOL` / `RTOL` (only the
order of floating-point reductions differs). The encoders have no batch
normalization: per-replica batch statistics (TF) would legitimately differ.
Each test runs only under its own `KERAS_BACKEND`, so the file passes or
skips with a reason under every backend.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import keras
import pytest

BACKEND = keras.backend.backend()
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ATOL = 1e-5
RTOL = 1e-5
TIMEOUT_S = 240

_COMMON = textwrap.dedent(
    """
    import json
    import numpy as np

    DIMS = {"audio": 5, "visual": 4}
    NUM_EXAMPLES, BATCH, EPOCHS = 64, 16, 2  # 8 optimizer steps


    def data():
        rng = np.random.default_rng(0)
        x = {k: rng.normal(size=(NUM_EXAMPLES, d)).astype("float32")
             for k, d in DIMS.items()}
        y = rng.integers(0, 3, size=NUM_EXAMPLES).astype("int32")
        return x, y


    def build(keras, keras_dgl, compile=True):
        keras.utils.set_random_seed(0)
        encoders = {
            k: keras.Sequential(
                [keras.layers.Dense(6, activation="tanh")], name=f"{k}_encoder")
            for k in DIMS
        }
        model = keras_dgl.DGLModel(
            encoders, keras_dgl.layers.ConcatFusion(num_classes=3), alpha=2.0)
        if compile:
            model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
        model.build({k: (None, d) for k, d in DIMS.items()})
        return model


    def fit(model, init):
        model.set_weights(init)
        x, y = data()
        history = model.fit(x, y, batch_size=BATCH, epochs=EPOCHS,
                            shuffle=False, verbose=0)
        return ({k: [float(v) for v in vals]
                 for k, vals in history.history.items()},
                [np.asarray(w).tolist() for w in model.get_weights()])
    """
)

_JAX_WORKER = _COMMON + textwrap.dedent(
    """
    import jax
    import keras
    import keras_dgl

    devices = jax.devices("cpu")
    assert len(devices) == 2, devices
    single = build(keras, keras_dgl)
    init = single.get_weights()
    single_history, single_weights = fit(single, init)

    keras.distribution.set_distribution(keras.distribution.DataParallel(
        devices=keras.distribution.list_devices("cpu")))
    parallel = build(keras, keras_dgl)
    parallel_history, parallel_weights = fit(parallel, init)
    sharding = parallel.trainable_variables[0].value.sharding
    print("RESULT " + json.dumps({
        "replicas": len(sharding.device_set),
        "single": [single_history, single_weights],
        "parallel": [parallel_history, parallel_weights],
    }))
    """
)

_TF_WORKER = _COMMON + textwrap.dedent(
    """
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import keras_dgl

    single = build(keras, keras_dgl)
    init = single.get_weights()
    single_history, single_weights = fit(single, init)

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        parallel = build(keras, keras_dgl)
    parallel_history, parallel_weights = fit(parallel, init)
    print("RESULT " + json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "single": [single_history, single_weights],
        "parallel": [parallel_history, parallel_weights],
    }))
    """
)

# One process per rank; each trains its half of every global batch under
# DistributedDataParallel. Rank 0 then trains the same initial weights on
# the full batches without DDP, as the single-device reference.
_TORCH_WORKER = _COMMON + textwrap.dedent(
    """
    import os
    import torch
    import torch.distributed as dist
    import keras
    import keras_dgl

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])


    def train(model, rank, world):
        # The objective is DGLModel.compute_loss, so DGL's stop-gradients and
        # frozen fusion weights apply exactly as in fit().
        module = model
        if world > 1:
            module = torch.nn.parallel.DistributedDataParallel(model)
        params = [p for p in module.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=0.1, momentum=0.9)
        x, y = data()
        losses = []
        for _ in range(EPOCHS):
            for start in range(0, NUM_EXAMPLES, BATCH):
                rows = slice(start + rank * BATCH // world,
                             start + (rank + 1) * BATCH // world)
                xb = {k: torch.as_tensor(v[rows]) for k, v in x.items()}
                yb = torch.as_tensor(y[rows])
                opt.zero_grad()
                y_pred = module(xb, training=True)
                loss = model.compute_loss(xb, yb, y_pred)
                loss.backward()  # DDP averages the gradients over ranks
                opt.step()
                losses.append(float(loss))
        return losses, [np.asarray(w).tolist() for w in model.get_weights()]


    dist.init_process_group("gloo", rank=rank, world_size=world)
    parallel = build(keras, keras_dgl)
    init = parallel.get_weights()
    parallel_losses, parallel_weights = train(parallel, rank, world)
    dist.destroy_process_group()
    if rank == 0:
        single = build(keras, keras_dgl)
        single.set_weights(init)
        single_losses, single_weights = train(single, 0, 1)
        print("RESULT " + json.dumps({
            "replicas": world,
            "single": [{"loss": single_losses}, single_weights],
            "parallel": [{"loss": parallel_losses}, parallel_weights],
        }))
    """
)


def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **extra)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (REPO, os.environ.get("PYTHONPATH")) if p
    )
    return env


def _result(stdout, stderr):
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise AssertionError(f"worker printed no result:\n{stderr[-4000:]}")


def _run_worker(tmp_path, code, **env):
    script = tmp_path / "worker.py"
    script.write_text(code)
    proc = subprocess.run(
        [sys.executable, str(script)],
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return _result(proc.stdout, proc.stderr)


def _assert_same_training(result, loss_keys=("loss",)):
    import numpy as np

    assert result["replicas"] == 2
    single_history, single_weights = result["single"]
    parallel_history, parallel_weights = result["parallel"]
    for key in loss_keys:
        np.testing.assert_allclose(
            parallel_history[key], single_history[key], rtol=RTOL, atol=ATOL,
            err_msg=f"log {key!r} differs between one and two devices",
        )
    assert len(parallel_weights) == len(single_weights)
    for p, s in zip(parallel_weights, single_weights):
        np.testing.assert_allclose(p, s, rtol=RTOL, atol=ATOL)
    # The weights did move: the comparison is not trivially true.
    assert single_history["loss"][-1] < single_history["loss"][0]


@pytest.mark.skipif(BACKEND != "jax", reason="JAX check; runs under KERAS_BACKEND=jax")
def test_jax_data_parallel_matches_single_device(tmp_path):
    result = _run_worker(
        tmp_path,
        _JAX_WORKER,
        KERAS_BACKEND="jax",
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=(
            os.environ.get("XLA_FLAGS", "")
            + " --xla_force_host_platform_device_count=2"
        ).strip(),
    )
    _assert_same_training(result, loss_keys=("loss", "multimodal_loss"))


@pytest.mark.skipif(
    BACKEND != "tensorflow", reason="TF check; runs under KERAS_BACKEND=tensorflow"
)
def test_tf_mirrored_strategy_matches_single_device(tmp_path):
    result = _run_worker(tmp_path, _TF_WORKER, KERAS_BACKEND="tensorflow")
    _assert_same_training(result)


@pytest.mark.skipif(BACKEND != "torch", reason="torch check; runs under KERAS_BACKEND=torch")
def test_torch_distributed_data_parallel_matches_single_process(tmp_path):
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with the gloo backend is not available")
    script = tmp_path / "worker.py"
    script.write_text(_TORCH_WORKER)
    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(2):
        env = _env(
            KERAS_BACKEND="torch",
            MASTER_ADDR="127.0.0.1",
            MASTER_PORT=str(port),
            RANK=str(rank),
            WORLD_SIZE="2",
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, str(script)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=TIMEOUT_S))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, (_, stderr) in zip(procs, outputs):
        assert proc.returncode == 0, stderr[-4000:]
    result = _result(*outputs[0])
    # Per-rank losses are computed on half batches, so only weights compare.
    import numpy as np

    assert result["replicas"] == 2
    for p, s in zip(result["parallel"][1], result["single"][1]):
        np.testing.assert_allclose(p, s, rtol=RTOL, atol=ATOL)
    assert result["single"][0]["loss"][-1] < result["single"][0]["loss"][0]


@pytest.mark.skipif(
    BACKEND != "torch",
    reason="checks the torch backend's lack of keras.distribution; the JAX "
    "and TF tests above cover the backends that have a data-parallel fit",
)
def test_keras_distribution_api_is_absent_on_torch():
    # What the README documents: on the torch backend Keras (3.15) has no
    # distribution library, so keras.distribution.DataParallel cannot be
    # built and data parallelism goes through torch's DistributedDataParallel
    # (checked above). If a later Keras adds one, this fails and the README's
    # "Training on several devices" section must be updated.
    from keras.src.backend import distribution_lib

    assert distribution_lib is None
    with pytest.raises(AttributeError):
        keras.distribution.DataParallel()
