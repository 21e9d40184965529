"""Runs every script in examples/ for a few steps, as a user would.

Each example runs in a subprocess with the current KERAS_BACKEND and its
quick mode (one epoch of two batches on small data); the CREMA-D one runs
on a tiny generated WAV / JPEG tree with a ResNet18 of width 4. The runs
start together (one per CPU core) when the first test needs one.
"""

import ast
import csv
import importlib.util
import json
import os
import subprocess
import sys
import wave
from concurrent.futures import ThreadPoolExecutor

import keras
import numpy as np
import pytest
import tensorflow as tf

BACKEND = keras.backend.backend()
EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "examples")
SCRIPTS = sorted(name for name in os.listdir(EXAMPLES) if name.endswith(".py"))
CREMA_D_CLASSES = ("NEU", "HAP", "SAD", "FEA", "DIS", "ANG")


def _run(script, *args, cwd):
    env = dict(os.environ, KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="3")
    process = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, script), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )
    assert process.returncode == 0, (
        f"{script} failed ({process.returncode}):\n{process.stdout[-2000:]}\n"
        f"{process.stderr[-4000:]}"
    )
    return process.stdout


def _load_example(name):
    spec = importlib.util.spec_from_file_location(
        f"example_{name}", os.path.join(EXAMPLES, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The quick runs ---------------------------------------------------------------


def _write_wav(path, rate=16000, seconds=0.5, frequency=220.0):
    t = np.arange(int(rate * seconds)) / rate
    samples = (0.25 * np.sin(2 * np.pi * frequency * t) * 32767).astype("<i2")
    with wave.open(path, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(samples.tobytes())


def _write_jpeg(path, seed):
    pixels = np.random.default_rng(seed).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    with open(path, "wb") as handle:
        handle.write(tf.io.encode_jpeg(pixels).numpy())


def _crema_d_tree(root, train_per_class=3, test_per_class=1):
    """A tiny tree in the layout `keras_dgl.datasets.crema_d` reads."""
    os.makedirs(os.path.join(root, "audio"))
    rows = {"train": [], "test": []}
    index = 0
    for label in CREMA_D_CLASSES:
        for split, count in (("train", train_per_class), ("test", test_per_class)):
            for _ in range(count):
                clip = f"{1000 + index}_XXX_{label}_XX"
                _write_wav(os.path.join(root, "audio", clip + ".wav"),
                           frequency=150.0 + 30 * index)
                os.makedirs(os.path.join(root, "visual", clip))
                _write_jpeg(os.path.join(root, "visual", clip, "0001.jpg"), index)
                rows[split].append((clip, label))
                index += 1
    for split, split_rows in rows.items():
        with open(os.path.join(root, f"{split}.csv"), "w", newline="") as handle:
            csv.writer(handle).writerows(split_rows)


class _Runs:
    """The quick runs of every example, started together in the background.

    Each run is a subprocess, mostly busy compiling; running one per CPU
    core divides the file's time by about the number of cores.
    """

    def __init__(self, folder):
        self.folder = folder
        crema_root = str(folder / "crema")
        _crema_d_tree(crema_root)
        commands = {  # Longest first.
            "crema_d_reproduction.py": [crema_root, "--quick", "--batch-size", "4",
                                        "--out", str(folder / "crema-run")],
            # One method: AttentionFusion over three modalities is the
            # costliest model to compile here.
            "three_modalities.py": ["--quick", "--methods", "dgl"],
            "three_modalities_regression.py": ["--quick"],
            "tuner_search.py": ["--quick", "--directory", str(folder / "tune")],
            "smartwatch_quickstart.py": ["--quick"],
            "switch_backends.py": ["--quick", "--backends", BACKEND],
        }
        self._pool = ThreadPoolExecutor(max_workers=min(len(commands), os.cpu_count() or 1))
        self._futures = {
            script: self._pool.submit(_run, script, *args, cwd=folder)
            for script, args in commands.items()
        }

    def __call__(self, script):
        """The stdout of `script`'s run; raises if it failed."""
        return self._futures[script].result()

    def close(self):
        for future in self._futures.values():
            future.cancel()
        self._pool.shutdown(wait=True)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    started = _Runs(tmp_path_factory.mktemp("examples"))
    yield started
    started.close()


def test_every_example_has_a_docstring_and_a_quick_mode():
    assert {"smartwatch_quickstart.py", "crema_d_reproduction.py",
            "three_modalities.py", "three_modalities_regression.py",
            "tuner_search.py", "switch_backends.py"} <= set(SCRIPTS)
    for script in SCRIPTS:
        with open(os.path.join(EXAMPLES, script)) as handle:
            source = handle.read()
        assert ast.get_docstring(ast.parse(source)), script
        assert "--quick" in source and "--max-steps" in source, script


def test_smartwatch_quickstart(runs):
    out = runs("smartwatch_quickstart.py")
    assert f"dgl on smartwatch ({BACKEND} backend)" in out
    for name in ("fused", "accelerometer", "gyroscope"):
        assert any(line.split()[:2] == [name, "accuracy"]
                   for line in out.splitlines()), out


def test_three_modalities(runs):
    lines = runs("three_modalities.py").splitlines()
    header = next(line for line in lines if line.startswith("method"))
    assert header.split() == ["method", "fused", "audio", "video", "text"]
    row = next(line for line in lines if line.split()[0] == "dgl")
    assert all(0.0 <= float(v) <= 1.0 for v in row.split()[1:])


def test_three_modalities_regression(runs):
    lines = runs("three_modalities_regression.py").splitlines()
    header = next(line for line in lines if line.startswith("method"))
    assert header.split() == ["method", "fused", "audio", "video", "text"]
    for method in ("dgl", "joint"):
        row = next(line for line in lines if line.split()[0] == method)
        values = [float(v) for v in row.split()[1:] if v != "/"]
        assert len(values) == 8 and all(np.isfinite(values))
        assert all(v >= 0 for v in values[::2])  # mean absolute errors


def test_tuner_search(runs):
    out = runs("tuner_search.py")
    assert "Best hyperparameters:" in out
    assert "Test accuracy of the best model:" in out


def test_switch_backends_runs_the_current_backend(runs):
    out = runs("switch_backends.py")
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].split()[0] == BACKEND, out
    assert "fused test accuracy" in lines[0]


def test_crema_d_reproduction_on_a_tiny_tree(runs):
    out = runs("crema_d_reproduction.py")
    assert "Test accuracy (fused):" in out
    out_dir = runs.folder / "crema-run"
    assert (out_dir / "best.weights.h5").exists()
    results = json.loads((out_dir / "results.json").read_text())
    assert results["backend"] == BACKEND
    assert results["best_epoch"] == 1
    assert 0.0 <= results["test_accuracy"] <= 1.0
    assert set(results["test_modality_accuracy"]) == {"audio", "visual"}
    # The published settings are the defaults.
    settings = results["settings"]
    assert (settings["alpha"], settings["learning_rate"], settings["clip"],
            settings["clip_norm"], settings["lr_drop_epoch"]) == (
                4.0, 2e-3, "global", 40.0, 70)


def test_coupled_sgd_applies_pytorch_weight_decay():
    """w <- w - lr * v, v <- momentum * v + (g + l2 * w), as torch.optim.SGD."""
    CoupledSGD = _load_example("crema_d_reproduction").CoupledSGD
    lr, momentum, l2 = 0.1, 0.9, 0.01
    w = keras.Variable(np.array([1.0, -2.0], "float32"))
    optimizer = CoupledSGD(l2=l2, learning_rate=lr, momentum=momentum)
    gradient = np.array([0.5, 0.25], "float32")
    expected, velocity = np.array([1.0, -2.0]), np.zeros(2)
    for _ in range(3):
        optimizer.apply_gradients([(keras.ops.convert_to_tensor(gradient), w)])
        velocity = momentum * velocity + gradient + l2 * expected
        expected = expected - lr * velocity
    np.testing.assert_allclose(keras.ops.convert_to_numpy(w), expected, rtol=1e-5)
    assert CoupledSGD.from_config(optimizer.get_config()).l2 == l2
