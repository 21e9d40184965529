"""Tests of the `keras-dgl` command (keras_dgl.cli) and keras_dgl.experiments.

Tiny settings keep the file at about two minutes on two CPU cores, on
each backend; the backend is whatever KERAS_BACKEND selects. The fusion
refit is cut to a few epochs (`--refit-epochs`): its length is chosen on
validation data, and what is tested is where its results go, not how far
it gets.
"""

import contextlib
import csv
import io
import json
import os
import re
import subprocess
import sys

import keras
import pytest

from keras_dgl import cli
from keras_dgl import registry
from keras_dgl.experiments import factories
from keras_dgl.experiments import runner
from keras_dgl.experiments.config import ExperimentConfig
from keras_dgl.experiments.run import Run
from keras_dgl.utils import accuracy

BACKEND = keras.backend.backend()
REFIT_EPOCHS = 3
# A small synthetic task: runs take a second or two each. The deterministic
# modes (on by default) are process-wide and cannot be turned off again, so
# the in-process runs leave them off; subprocess tests run the default.
TINY_SYNTHETIC = [
    "--no-deterministic",
    "--dataset", "synthetic",
    "--refit-epochs", str(REFIT_EPOCHS),
    "--batch-size", "64",
    "--learning-rate", "0.01",
    "--data-option", "num_train=512",
    "--data-option", "num_validation=128",
    "--data-option", "num_test=256",
]


def _main(argv):
    """Runs the command in this process; returns (status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(argv)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    """One default-methods experiment on two splits, shared by several tests."""
    out = tmp_path_factory.mktemp("synthetic")
    argv = ["train", *TINY_SYNTHETIC, "--epochs", "2", "--seeds", "2",
            "--out", str(out)]
    keras.utils.clear_session(free_memory=False)
    status, stdout, stderr = _main(argv)
    assert status == 0, stderr
    return out, argv, stdout


def test_table_lists_every_method_and_the_paired_gain(synthetic_run):
    out, _, stdout = synthetic_run
    table = (out / "table.txt").read_text()
    assert table.strip() in stdout
    lines = table.splitlines()
    assert "synthetic, concat fusion, 2 epochs" in lines[0]
    assert f"backend {BACKEND}" in lines[0]
    header = lines[1].split()
    assert header == ["method", "fused", "strong", "weak", "probe", "strong",
                      "probe", "weak"]
    rows = {line.split("  ")[0].strip(): line for line in lines[2:8]}
    assert list(rows) == ["dgl", "joint", "dgl + refit", "joint + refit",
                          "unimodal strong", "unimodal weak"]
    # mean ± std over the two splits in every filled cell.
    assert rows["dgl"].count("±") == 5
    assert rows["unimodal weak"].count("±") == 2
    # A refit changes only the fused prediction that the table reports.
    assert rows["dgl + refit"].count("±") == 1
    assert rows["joint + refit"].split()[-4:] == ["-"] * 4
    assert "DGL - joint, paired by split" in table
    assert any(line.startswith("seed 0") for line in lines)
    assert any(line.startswith("seed 1") for line in lines)
    assert any(line.startswith("mean ± std") for line in lines)
    # Progress lines name each run once.
    for name in ("dgl-seed0", "joint-seed1", "unimodal_weak-seed1"):
        assert f"{name}: training 2 epochs" in stdout
    assert stdout.count(": fusion refit, epoch") == 4


def test_table_has_refit_gain_and_diagnostics(synthetic_run):
    out, _, _ = synthetic_run
    lines = (out / "table.txt").read_text().splitlines()
    start = lines.index(
        "Refit gain: <method> + refit - <method>, fused, by split (accuracy points)")
    assert lines[start + 1].split() == ["method", "seed", "0", "seed", "1",
                                        "mean", "±", "std"]
    assert [line.split()[0] for line in lines[start + 2:start + 4]] == ["dgl", "joint"]
    start = lines.index("Modality diagnostics, mean ± std over splits")
    assert lines[start + 1].split() == [
        "method", "drop", "strong", "drop", "weak", "shapley", "strong",
        "shapley", "weak", "grad", "ratio", "strong", "grad", "ratio", "weak"]
    for line, method in zip(lines[start + 2:start + 4], ("dgl", "joint")):
        assert line.split()[0] == method and line.count("±") == 6


def test_json_and_csv_hold_one_record_per_run(synthetic_run):
    out, _, _ = synthetic_run
    results = json.loads((out / "results.json").read_text())
    runs = {r["run"]: r for r in results["runs"]}
    expected = {f"{kind}-seed{seed}" for seed in (0, 1)
                for kind in ("dgl", "joint", "unimodal_strong", "unimodal_weak")}
    assert set(runs) == expected
    dgl = runs["dgl-seed1"]
    assert set(dgl["test_accuracy"]) == {"fused", "strong", "weak"}
    assert set(dgl["probe_accuracy"]) == {"strong", "weak"}
    assert 1 <= dgl["best_epoch"] <= 2
    assert dgl["best_val_accuracy"] == max(dgl["history"]["val_accuracy"])
    assert len(dgl["history"]["val_weak_accuracy"]) == 2
    assert set(runs["unimodal_weak-seed0"]["test_accuracy"]) == {"weak"}
    # The strong view is nearly separable: training worked.
    assert results["summary"]["dgl"]["fused"]["mean"] > 0.8
    gain = results["gain"]
    assert gain["seeds"] == [0, 1]
    for index, seed in enumerate((0, 1)):
        difference = (runs[f"dgl-seed{seed}"]["test_accuracy"]["fused"]
                      - runs[f"joint-seed{seed}"]["test_accuracy"]["fused"])
        assert gain["columns"]["fused"]["per_seed"][index] == pytest.approx(difference)

    with open(out / "results.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert {row["run"] for row in table} == expected
    row = next(r for r in table if r["run"] == "unimodal_strong-seed1")
    assert row["method"] == "unimodal" and row["modality"] == "strong"
    assert row["seed"] == "1" and row["fused_accuracy"] == ""
    assert float(row["strong_accuracy"]) == pytest.approx(
        runs["unimodal_strong-seed1"]["test_accuracy"]["strong"], abs=1e-4)
    assert 1 <= int(row["best_epoch"]) <= 2
    assert row["refit_fused_accuracy"] == row["drop_weak"] == row["grad_ratio_weak"] == ""
    row = next(r for r in table if r["run"] == "joint-seed0")
    joint = runs["joint-seed0"]
    assert float(row["refit_fused_accuracy"]) == pytest.approx(
        joint["refit"]["test_accuracy"]["fused"], abs=1e-4)
    assert float(row["drop_strong"]) == pytest.approx(
        joint["contribution"]["drop"]["strong"], abs=1e-4)
    assert float(row["shapley_weak"]) == pytest.approx(
        joint["contribution"]["shapley"]["weak"], abs=1e-4)
    assert float(row["grad_ratio_weak"]) == pytest.approx(
        joint["gradient_ratio"]["weak"][joint["best_epoch"] - 1], rel=1e-3)


def test_json_holds_diagnostics_of_multimodal_runs(synthetic_run):
    out, _, _ = synthetic_run
    results = json.loads((out / "results.json").read_text())
    runs = {r["run"]: r for r in results["runs"]}
    for name in ("dgl-seed0", "joint-seed1"):
        record = runs[name]
        # One gradient ratio per encoder and epoch end.
        ratios = record["gradient_ratio"]
        assert set(ratios) == {"strong", "weak"}
        assert all(len(v) == 2 and all(x > 0 for x in v) for v in ratios.values())
        assert ratios["weak"] == record["history"]["weak_grad_ratio"]
        contribution = record["contribution"]
        assert contribution["mode"] == "zero"
        assert set(contribution["ablated"]) == {"strong", "weak"}
        assert contribution["fused"] == pytest.approx(record["test_accuracy"]["fused"])
        for modality, drop in contribution["drop"].items():
            assert drop == pytest.approx(
                contribution["fused"] - contribution["ablated"][modality])
        # Shapley: efficiency, and for two modalities phi_s - phi_w =
        # v({s}) - v({w}), where v({s}) is the accuracy with w zeroed.
        shapley, ablated = contribution["shapley"], contribution["ablated"]
        assert shapley["strong"] + shapley["weak"] == pytest.approx(
            contribution["fused"] - contribution["all_zeroed"])
        assert shapley["strong"] - shapley["weak"] == pytest.approx(
            ablated["weak"] - ablated["strong"])
        refit = record["refit"]
        assert 0 <= refit["best_epoch"] <= refit["epochs_run"] <= REFIT_EPOCHS
        assert 0 <= refit["test_accuracy"]["fused"] <= 1
    for name in ("unimodal_strong-seed0", "unimodal_weak-seed1"):
        assert not {"gradient_ratio", "contribution", "refit"} & set(runs[name])
    diagnostics = results["diagnostics"]
    assert set(diagnostics) == {"dgl", "joint"}
    assert diagnostics["dgl"]["drop"]["strong"]["n"] == 2
    assert diagnostics["joint"]["grad_ratio"]["weak"]["n"] == 2


def test_refit_rows_leave_the_plain_rows_unchanged(synthetic_run):
    out, _, _ = synthetic_run
    results = json.loads((out / "results.json").read_text())
    runs = {r["run"]: r for r in results["runs"]}
    for method in ("dgl", "joint"):
        plain = [runs[f"{method}-seed{s}"]["test_accuracy"]["fused"] for s in (0, 1)]
        refit = [runs[f"{method}-seed{s}"]["refit"]["test_accuracy"]["fused"]
                 for s in (0, 1)]
        assert results["summary"][method]["fused"]["values"] == plain
        assert results["summary"][f"{method} + refit"]["fused"]["values"] == refit
        assert results["refit_gain"][method]["per_seed"] == pytest.approx(
            [b - a for a, b in zip(plain, refit)])
    # The plain row is the saved best epoch's model, scored before the refit:
    # its own predictions on the test split, computed here without the
    # experiment's cached features, give the same accuracies. (DGL's default
    # weights are chosen per modality: tests/test_dgl_recipe.py.)
    config = ExperimentConfig(**results["config"]).resolved()
    splits = factories.load_splits(config, 1)
    keras.utils.clear_session(free_memory=False)
    model, _ = factories.build_model(config, Run("joint", 1), splits)
    model.load_weights(str(out / "runs" / "joint-seed1" / "best.weights.h5"))
    labels = splits.numpy("test")[1]
    predictions = model.predict_modalities(splits.test, verbose=0)
    scored = {name: accuracy(logits, labels) for name, logits in predictions.items()}
    assert scored == pytest.approx(runs["joint-seed1"]["test_accuracy"], abs=1e-9)


def test_plots_and_tensorboard_logs_are_written(synthetic_run):
    out, _, _ = synthetic_run
    for name in ("validation_accuracy.png", "comparison.png",
                 "gradient_ratio_dgl.png", "gradient_ratio_joint.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for run in ("dgl-seed0", "unimodal_strong-seed1"):
        for split in ("train", "validation"):
            events = list((out / "tensorboard" / run / split).glob("events.out.tfevents*"))
            assert events, f"no TensorBoard events for {run}/{split}"


def test_rerun_skips_finished_runs(synthetic_run):
    out, argv, _ = synthetic_run
    before = (out / "results.json").read_text()
    status, stdout, _ = _main(argv)
    assert status == 0
    assert stdout.count("already done, skipped") == 8
    assert ": training" not in stdout
    assert json.loads((out / "results.json").read_text())["runs"] == \
        json.loads(before)["runs"]


def test_folder_from_before_new_settings_resumes(synthetic_run):
    # experiment.json written before --ogm-alpha and --refit existed.
    out, argv, _ = synthetic_run
    path = out / "experiment.json"
    saved = json.loads(path.read_text())
    old = {k: v for k, v in saved.items()
           if k not in ("ogm_alpha", "refit", "refit_epochs", "recipe")}
    path.write_text(json.dumps(old))
    # Folders of that time had the default refit length.
    status, stdout, stderr = _main([*argv, "--refit-epochs", "20"])
    assert status == 0, stderr
    assert stdout.count("already done, skipped") == 8
    assert json.loads(path.read_text()) == {**saved, "refit_epochs": 20}
    # A non-default value of a new setting is a different experiment.
    path.write_text(json.dumps(old))
    status, _, stderr = _main([*argv, "--ogm-alpha", "0.5"])
    assert status == 2 and "ogm_alpha" in stderr
    # Folders from before --unimodal-head trained DGL with the shared head:
    # the separate-head default is another experiment.
    before_heads = {k: v for k, v in saved.items()
                    if k not in ("unimodal_head", "epoch_choice")}
    path.write_text(json.dumps(before_heads))
    status, _, stderr = _main(argv)
    assert status == 2 and "epoch_choice, unimodal_head differ" in stderr
    path.write_text(json.dumps(saved))


def test_out_folder_of_other_settings_is_refused(synthetic_run):
    out, argv, _ = synthetic_run
    status, _, stderr = _main([*argv, "--fusion", "sum"])
    assert status == 2
    assert stderr.count("\n") == 1
    assert "fusion" in stderr and "another --out" in stderr


class _InterruptAfter(keras.callbacks.Callback):
    """Stands in for Ctrl-C once an epoch has been backed up."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


class _EpochLog(keras.callbacks.Callback):
    def __init__(self, seen):
        super().__init__()
        self.seen = seen

    def on_epoch_begin(self, epoch, logs=None):
        self.seen.append(epoch)


def test_interrupted_experiment_resumes_from_last_epoch(tmp_path):
    config = ExperimentConfig(
        dataset="synthetic",
        data_options={"num_train": 256, "num_validation": 128, "num_test": 128},
        methods=("joint",),
        epochs=3,
        batch_size=64,
        seeds=1,
        probe=False,
        out=str(tmp_path),
        refit_epochs=REFIT_EPOCHS,
    )
    # The run is "killed" after its first epoch.
    interrupt = {"joint-seed0": [_InterruptAfter(0)]}
    with pytest.raises(KeyboardInterrupt):
        runner.run_experiment(
            config, verbose=0, callbacks=lambda run: interrupt.get(run, []),
            log=lambda line: None,
        )
    runs = tmp_path / "runs"
    assert not (runs / "joint-seed0" / "result.json").exists()
    checkpoint = runs / "joint-seed0" / "checkpoints" / "epoch-0001"
    assert json.loads((checkpoint / "state.json").read_text())["epochs_done"] == 1

    seen = {}
    messages = []
    results = runner.run_experiment(
        config, verbose=0,
        callbacks=lambda run: [_EpochLog(seen.setdefault(run, []))],
        log=messages.append,
    )
    # Training goes on at the second epoch.
    assert seen == {"joint-seed0": [1, 2]}
    assert any("joint-seed0: resuming after epoch 1 of 3" in m for m in messages)
    joint = next(r for r in results["runs"] if r["run"] == "joint-seed0")
    # The history spans the interruption, and the best epoch may lie before it.
    assert len(joint["history"]["val_accuracy"]) == 3
    assert joint["best_val_accuracy"] == max(joint["history"]["val_accuracy"])
    assert joint["best_epoch"] == 1 + joint["history"]["val_accuracy"].index(
        joint["best_val_accuracy"])
    assert not (runs / "joint-seed0" / "checkpoints").exists()
    assert (runs / "joint-seed0" / "result.json").exists()
    assert [r["run"] for r in results["runs"]] == ["joint-seed0"]
    # Diagnostics span the interruption too: one ratio per epoch end.
    assert len(joint["gradient_ratio"]["weak"]) == 3
    assert "joint + refit" in results["summary"]


def test_ctrl_c_exits_130_with_a_resume_hint(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "run_experiment", interrupted)
    status, _, stderr = _main(["train", *TINY_SYNTHETIC, "--out", str(tmp_path)])
    assert status == 130
    assert "run the same command again to resume" in stderr
    assert stderr.count("\n") == 1


@pytest.mark.parametrize(
    "argv, complaint",
    [
        (["train", "--fusion", "nope"], "--fusion: invalid choice"),
        (["train", "--dataset", "mnist"], "--dataset: invalid choice"),
        (["train", "--backend", "theano"], "--backend: invalid choice"),
        (["train", "--epochs", "0"], "--epochs"),
        (["train", "--seeds", "two"], "--seeds"),
        (["train", "--methods", "dgl,bogus"], "bogus"),
        (["train", "--alpha", "-1"], "--alpha"),
        (["train", "--data-option", "window"], "KEY=VALUE"),
        (["train", "--no-such-option"], "unrecognized arguments"),
        (["train", "--methods", "dgl,ogm_gee"], "ogm_gee"),
        (["train", "--ogm-alpha", "-0.1"], "--ogm-alpha"),
        (["train", "--alpha", "inf"], "argument --alpha: expected a finite number >= 0"),
        (["train", "--alpha", "nan"], "argument --alpha: expected a finite number >= 0"),
        (["train", "--learning-rate", "inf"],
         "argument --learning-rate: expected a finite number > 0"),
        (["train", "--learning-rate", "0"], "--learning-rate"),
        (["train", "--ogm-alpha", "nan"], "--ogm-alpha"),
        (["train", "--refit-epochs", "0"], "--refit-epochs"),
        (["train", "--unimodal-head", "both"], "--unimodal-head: invalid choice"),
        (["train", "--epoch-choice", "last"], "--epoch-choice: invalid choice"),
        (["train", "--unimodal-head", "shared", "--epoch-choice", "per-modality"],
         "--unimodal-head separate or --epoch-choice fused"),
        (["tune", "--tuner", "grid"], "--tuner: invalid choice"),
        (["tune", "--dataset", "crema-d"], "--dataset: invalid choice"),
        (["tune", "--max-trials", "0"], "--max-trials"),
        (["tune", "--epochs", "many"], "--epochs"),
        (["tune", "--seeds", "2"], "unrecognized arguments"),
        (["fly"], "invalid choice"),
        ([], "required"),
    ],
)
def test_bad_options_exit_2_with_one_line(argv, complaint):
    status, stdout, stderr = _main(argv)
    assert status == 2
    assert stderr.count("\n") == 1, stderr
    assert complaint in stderr and "error" in stderr
    assert "Traceback" not in stderr and stdout == ""


@pytest.mark.parametrize(
    "argv, complaint",
    [
        (["--dataset", "crema-d", "--data-dir", "{missing}"], "data folder not found"),
        (["--data-dir", "{missing}"], "data folder not found"),
        (["--dataset", "ave"], "needs --data-dir"),
        (["--dataset", "crema-d", "--data-dir", "{empty}"], "cannot load crema-d"),
        (["--dataset", "synthetic", "--data-option", "colour=1"],
         "bad data option for synthetic: unknown option 'colour'"),
        (["--dataset", "synthetic", "--data-option", "num_train=many"],
         "bad data option for synthetic: num_train must be an integer; got 'many'"),
        (["--data-option", "overlap=half"],
         "bad data option for smartwatch: overlap must be a finite number; got 'half'"),
        (["--data-option", "cache=1"],
         "bad data option for smartwatch: cache must be True or False; got 1"),
        (["--dataset", "synthetic", "--data-option", "seed=3"],
         "bad data option for synthetic: seed is set by --seeds"),
        (["--dataset", "synthetic", "--data-option", "num_validation=0"],
         "the synthetic data has no validation split"),
        (["--dataset", "synthetic", "--out", "{file}"], "is a file, not a folder"),
        (["--dataset", "synthetic", "--out", "{file}/sub"],
         "cannot write to the output folder"),
        (["--dataset", "synthetic", "--out", "{corrupt}"],
         "experiment.json is corrupt"),
    ],
)
def test_data_errors_exit_2_with_one_line(tmp_path, argv, complaint):
    (tmp_path / "empty").mkdir()
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "experiment.json").write_text('{"dataset": "synth')
    names = {"missing": tmp_path / "missing", "empty": tmp_path / "empty",
             "file": tmp_path / "file", "corrupt": tmp_path / "corrupt"}
    argv = [a.format(**names) for a in argv]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    status, _, stderr = _main(["train", "--no-deterministic", *argv, "-q"])
    assert status == 2
    assert stderr.count("\n") == 1, stderr
    assert complaint in stderr
    assert "Traceback" not in stderr


def _command(*args):
    env = dict(os.environ)
    # The backend travels by --backend alone.
    env.pop("KERAS_BACKEND", None)
    return subprocess.run(
        [sys.executable, "-m", "keras_dgl.cli", *args],
        capture_output=True, text=True, env=env, timeout=300,
    )


def test_tiny_smartwatch_command_in_a_subprocess(tmp_path):
    # The real command line: --backend alone selects the backend.
    done = _command(
        "train", "--backend", BACKEND, "--methods", "dgl", "--epochs", "1",
        "--seeds", "1", "--batch-size", "128", "--no-probe", "--no-refit",
        "--data-option", "window_seconds=1.0", "--data-option", "overlap=0.0",
        "--out", str(tmp_path),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    table = (tmp_path / "table.txt").read_text()
    assert table.strip() in done.stdout
    lines = table.splitlines()
    assert "smartwatch, concat fusion, 1 epochs" in lines[0]
    assert f"backend {BACKEND}" in lines[0]
    assert lines[1].split() == ["method", "fused", "accelerometer", "gyroscope"]
    # One split: no std; no joint run: no paired gain; no refit rows.
    assert lines[2].split()[0] == "dgl" and "±" not in lines[2]
    assert "paired by split" not in table
    assert "refit" not in table
    # One line per epoch when piped, not a progress bar.
    assert re.search(r"^\d+/\d+ - .*val_accuracy", done.stdout, re.MULTILINE)
    saved = json.loads((tmp_path / "experiment.json").read_text())
    assert saved["backend"] == BACKEND
    assert saved["data_options"] == {"overlap": 0.0, "window_seconds": 1.0}
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["deterministic"] is True  # the default
    assert results["runs"][0]["test_accuracy"].keys() == {
        "fused", "accelerometer", "gyroscope"}
    assert (tmp_path / "gradient_ratio_dgl.png").exists()


def test_baseline_methods_run_and_are_tabulated(tmp_path):
    status, stdout, stderr = _main([
        "train", *TINY_SYNTHETIC, "--data-option", "num_train=256",
        "--data-option", "num_test=128", "--methods", "gblend,ogm_ge,ogm",
        "--epochs", "1", "--seeds", "1", "--ogm-alpha", "0.5", "--no-probe",
        "--no-refit", "-q", "--out", str(tmp_path),
    ])
    assert status == 0, stderr
    table = (tmp_path / "table.txt").read_text()
    rows = [line.split()[0] for line in table.splitlines()[2:5]]
    assert rows == ["ogm", "ogm_ge", "gblend"]
    assert "refit" not in table
    assert "gblend-seed0: estimating Gradient-Blending weights" in stdout
    assert json.loads((tmp_path / "experiment.json").read_text())["ogm_alpha"] == 0.5
    results = json.loads((tmp_path / "results.json").read_text())
    runs = {r["run"]: r for r in results["runs"]}
    assert set(runs) == {"ogm-seed0", "ogm_ge-seed0", "gblend-seed0"}
    weights = runs["gblend-seed0"]["gblend"]["weights"]
    assert set(weights) == {"fused", "strong", "weak"}
    assert sum(weights.values()) == pytest.approx(1.0)
    saved = json.loads((tmp_path / "runs" / "gblend-seed0" / "gblend.json").read_text())
    assert saved["weights"] == weights
    for record in runs.values():
        assert "refit" not in record
        assert set(record["contribution"]["drop"]) == {"strong", "weak"}
        assert 0 <= record["test_accuracy"]["fused"] <= 1
    for method in ("ogm", "ogm_ge", "gblend"):
        assert (tmp_path / f"gradient_ratio_{method}.png").exists()


def test_every_other_method_runs_through_the_experiment(tmp_path):
    # The methods of issue 14, scored from cached features with their own
    # forward pass (mla and reconboost fuse without the fusion layer, so
    # they get no fusion refit).
    new = ("mmpareto", "agm", "inforeg", "pmr", "mla", "reconboost")
    status, stdout, stderr = _main([
        "train", *TINY_SYNTHETIC, "--data-option", "num_train=128",
        "--data-option", "num_test=64", "--methods", ",".join(new),
        "--epochs", "1", "--seeds", "1", "--no-probe", "-q", "--out", str(tmp_path),
    ])
    assert status == 0, stderr
    results = json.loads((tmp_path / "results.json").read_text())
    runs = {r["method"]: r for r in results["runs"]}
    assert set(runs) == set(new)
    for method, record in runs.items():
        assert 0 <= record["test_accuracy"]["fused"] <= 1
        assert ("refit" in record) == (method not in ("mla", "reconboost")), method
        assert set(record["contribution"]["shapley"]) == {"strong", "weak"}
    assert "mla-seed0: no fusion refit" in stdout


def test_methods_all_names_every_method():
    assert cli._methods("all") == tuple(registry.METHODS)


def test_a_diverging_run_exits_1_naming_it(tmp_path):
    # A finite but absurd learning rate: the weights overflow in the first epoch.
    status, stdout, stderr = _main([
        "train", *TINY_SYNTHETIC, "--methods", "dgl,joint", "--optimizer", "sgd",
        "--learning-rate", "1e30", "--epochs", "2", "--seeds", "1", "--no-probe",
        "--no-refit", "-q", "--out", str(tmp_path),
    ])
    assert status == 1
    assert stderr.count("\n") == 1, stderr
    assert "keras-dgl train: error: dgl-seed0: training diverged" in stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "runs" / "dgl-seed0" / "result.json").exists()
    assert not (tmp_path / "table.txt").exists()


def test_backend_other_than_the_loaded_one_is_refused(tmp_path):
    other = next(b for b in registry.BACKENDS if b != BACKEND)
    status, _, stderr = _main(["train", "--backend", other, "--out", str(tmp_path)])
    assert status == 2
    assert stderr.count("\n") == 1
    assert f"Keras is already loaded with backend {BACKEND}" in stderr


TINY_TUNE = [
    "tune", "--dataset", "synthetic", "--max-trials", "1", "--epochs", "1",
    "--data-option", "num_train=256", "--data-option", "num_validation=128",
    "--data-option", "num_test=128",
]


def test_tune_prints_the_best_hyperparameters(tmp_path):
    status, stdout, stderr = _main(
        [*TINY_TUNE, "--backend", BACKEND, "-q", "--out", str(tmp_path)])
    assert status == 0, stderr
    assert "Searching random on synthetic" in stdout
    assert "Best hyperparameters (1 trials, chosen on validation):" in stdout
    assert re.search(r"^  method: (dgl|joint|joint_aux)$", stdout, re.MULTILINE)
    assert re.search(r"^  learning_rate: [0-9.e-]+$", stdout, re.MULTILINE)
    assert re.search(r"^Best validation accuracy: [01]\.\d{4}$", stdout, re.MULTILINE)
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["tuner"] == "random" and best["trials"] == 1
    assert best["backend"] == BACKEND
    assert set(best["best_hyperparameters"]) >= {"method", "fusion", "learning_rate"}
    assert 0 <= best["val_accuracy"] <= 1


def test_tune_bad_data_option_exits_2_with_one_line(tmp_path):
    status, stdout, stderr = _main(
        [*TINY_TUNE, "--data-option", "colour=1", "--out", str(tmp_path)])
    assert status == 2
    assert stderr.count("\n") == 1, stderr
    assert "bad data option for synthetic" in stderr
    assert "Traceback" not in stderr and stdout == ""
