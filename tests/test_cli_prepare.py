"""`keras-dgl prepare`: the command around `keras_dgl.datasets.prepare`."""

import contextlib
import io
import json
import os

import pytest

from av_test_utils import make_tree

from keras_dgl import cli
from keras_dgl.datasets.presets import CREMA_D_CLASSES

# `keras-dgl prepare` writes TFRecord shards with TensorFlow whatever the Keras backend (see conftest).
pytestmark = pytest.mark.backend_independent


def _main(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(argv)
    return status, out.getvalue(), err.getvalue()


def test_prepare_writes_a_folder_the_loader_reads_and_resumes(tmp_path):
    import keras_dgl

    raw, prepared = tmp_path / "raw", tmp_path / "prepared"
    make_tree(str(raw), CREMA_D_CLASSES, clips_per_class=1, test_every=3, frames=2)
    argv = ["prepare", "--dataset", "crema-d", "--data-dir", str(raw),
            "--out", str(prepared), "--frame-size", "32", "--workers", "1", "-q"]
    status, stdout, stderr = _main(argv)
    assert status == 0, stderr
    with open(prepared / "manifest.json") as handle:
        manifest = json.load(handle)
    counts = {split: info["count"] for split, info in manifest["splits"].items()}
    assert sum(counts.values()) == len(CREMA_D_CLASSES)
    assert "6 decoded" in stdout, stdout
    splits = keras_dgl.datasets.crema_d(str(prepared), validation_fraction=0.25,
                                        batch_size=2)
    assert splits.num_classes == len(CREMA_D_CLASSES)
    # Run again: every shard is reused, nothing is decoded.
    status, stdout, stderr = _main(argv)
    assert status == 0, stderr
    assert "0 decoded" in stdout, stdout


def test_prepare_bad_input_is_one_line_with_status_2(tmp_path):
    status, _, stderr = _main(["prepare", "--dataset", "crema-d", "--data-dir",
                               str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert status == 2
    assert stderr.startswith("keras-dgl prepare: error:"), stderr
    assert "missing" in stderr and len(stderr.strip().splitlines()) == 1
    # A built-in data set has nothing to prepare.
    status, _, stderr = _main(["prepare", "--dataset", "smartwatch", "--data-dir",
                               str(tmp_path), "--out", str(tmp_path / "o")])
    assert status == 2 and "invalid choice" in stderr
    assert not os.path.exists(tmp_path / "o" / "manifest.json")
