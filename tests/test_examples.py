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

import keras_dgl

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
            "three_modalities.py": ["--quick", "--methods", "dgl",
                                    "--out", str(folder / "three-run")],
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
            "three_modalities.py", "tuner_search.py",
            "switch_backends.py"} <= set(SCRIPTS)
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


def _accuracies(model, dataset):
    """Fused and per-modality test accuracy, computed apart from the example."""
    labels = np.concatenate([y for _, y in dataset.as_numpy_iterator()])
    predictions = model.predict_modalities(dataset, verbose=0)
    return {name: float(np.mean(np.argmax(logits, -1) == labels))
            for name, logits in predictions.items()}


def test_three_modalities(runs):
    lines = runs("three_modalities.py").splitlines()
    header = next(line for line in lines if line.startswith("method"))
    assert header.split() == ["method", "fused", "audio", "video", "text"]
    printed = next(line for line in lines if line.split()[0] == "dgl").split()[1:]
    # What it prints is the saved model's accuracy on the example's test data.
    out = runs.folder / "three-run"
    example = _load_example("three_modalities")
    args = example.parse_args(["--quick", "--methods", "dgl"])
    _, (_, _, test) = example.load_data(args)
    model = keras.saving.load_model(str(out / "dgl.keras"))
    expected = _accuracies(model, test)
    names = ["fused", "audio", "video", "text"]
    assert [float(v) for v in printed] == pytest.approx(
        [expected[n] for n in names], abs=5e-5)
    saved = json.loads((out / "results.json").read_text())["dgl"]
    assert saved["accuracy"] == pytest.approx(expected["fused"], abs=1e-6)
    assert saved["text_accuracy"] == pytest.approx(expected["text"], abs=1e-6)


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
    results = json.loads((out_dir / "results.json").read_text())
    assert results["backend"] == BACKEND
    assert results["best_epoch"] == 1
    # The published settings are the defaults.
    settings = results["settings"]
    assert (settings["alpha"], settings["learning_rate"], settings["weight_decay"],
            settings["clip"], settings["clip_norm"], settings["lr_drop_epoch"],
            settings["batch_size"]) == (4.0, 2e-3, 1e-4, "global", 40.0, 70, 4)
    # The reported accuracies are those of the saved best weights on the
    # example's test data.
    example = _load_example("crema_d_reproduction")
    args = example.parse_args([str(runs.folder / "crema"), "--quick",
                               "--batch-size", "4", "--out", str(out_dir)])
    splits, (_, _, test) = example.load_data(args)
    model = example.build_model(args, splits)
    assert isinstance(model.optimizer, keras_dgl.optimizers.CoupledSGD)
    model.load_weights(str(out_dir / "best.weights.h5"))
    expected = _accuracies(model, test)
    assert results["test_accuracy"] == pytest.approx(expected["fused"], abs=1e-6)
    assert results["test_modality_accuracy"] == pytest.approx(
        {"audio": expected["audio"], "visual": expected["visual"]}, abs=1e-6)
    assert f"Test accuracy (fused): {expected['fused']:.4f}" in out
