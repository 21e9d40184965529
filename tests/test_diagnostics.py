"""Diagnostics: linear probe, modality contribution, imbalance summary, plots."""

import keras
import numpy as np
import pytest
from dgl_test_utils import make_encoder, make_fusion

import keras_dgl
from keras_dgl import diagnostics
from keras_dgl.datasets import synthetic


def _splits():
    return synthetic(
        num_classes=3,
        modalities={"strong": 0.9, "weak": 0.3},
        num_train=384,
        num_validation=64,
        num_test=256,
        batch_size=64,
    )


def _model(splits, method="joint", epochs=0):
    model = keras_dgl.DGLModel(
        {"strong": make_encoder(16), "weak": make_encoder(16)},
        make_fusion("concat"),
        method=method,
    )
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    model.build({name: (None,) + shape for name, shape in splits.input_shapes.items()})
    if epochs:
        model.fit(splits.train, epochs=epochs, shuffle=False, verbose=0)
    return model


def _weights(model):
    return [keras.ops.convert_to_numpy(v).copy() for v in model.weights]


def test_linear_probe_on_frozen_features_beside_the_model_heads():
    splits = _splits()
    model = _model(splits)
    before = _weights(model)
    test_x, test_y = splits.numpy("test")
    # tf.data and NumPy inputs are both accepted.
    result = diagnostics.linear_probe(model, splits.train, (test_x, test_y))
    assert set(result) == {"linear_probe", "unimodal_head", "fused"}
    probe = result["linear_probe"]
    # Even random tanh features keep what the inputs hold.
    assert probe["strong"] > 0.85 and probe["weak"] < probe["strong"]
    predictions = model.predict_modalities(test_x, verbose=0)
    for name in ("strong", "weak"):
        expected = np.mean(np.argmax(predictions[name], -1) == test_y)
        assert result["unimodal_head"][name] == pytest.approx(expected)
    assert result["fused"] == pytest.approx(
        np.mean(np.argmax(predictions["fused"], -1) == test_y)
    )
    for old, new in zip(before, _weights(model)):
        np.testing.assert_array_equal(old, new)


def test_modality_contribution_zero_and_noise():
    splits = _splits()
    model = _model(splits, epochs=2)
    test = splits.numpy("test")
    results = {
        mode: diagnostics.modality_contribution(model, test, mode=mode)
        for mode in ("zero", "noise")
    }
    fused = np.mean(np.argmax(model.predict(test[0], verbose=0), -1) == test[1])
    for mode, result in results.items():
        assert result["mode"] == mode
        assert result["fused"] == pytest.approx(fused)
        for name in ("strong", "weak"):
            assert result["drop"][name] == pytest.approx(
                result["fused"] - result["ablated"][name]
            )
        # The fused prediction leans on the strong modality.
        assert result["drop"]["strong"] > 0.2
        assert result["drop"]["strong"] > result["drop"]["weak"]
    again = diagnostics.modality_contribution(model, splits.test, mode="noise")
    assert again == results["noise"]  # seeded, and tf.data gives the same data
    with pytest.raises(ValueError, match="mode"):
        diagnostics.modality_contribution(model, test, mode="shuffle")
    # Streamed batch by batch: the same result from small batches of a
    # one-shot iterator (zero mode reads the data once)...
    x, y = test
    one_shot = iter([({n: v[i:i + 50] for n, v in x.items()}, y[i:i + 50])
                     for i in range(0, len(y), 50)])
    assert diagnostics.modality_contribution(model, one_shot) == results["zero"]
    # ...while noise mode, which reads it twice, names the problem.
    one_shot = iter([(x, y)])
    with pytest.raises(ValueError, match="reads `data` twice"):
        diagnostics.modality_contribution(model, one_shot, mode="noise")


def test_imbalance_summary_against_unimodal_references():
    splits = _splits()
    model = _model(splits)
    train, test = splits.numpy("train"), splits.numpy("test")
    probe = diagnostics.linear_probe(model, train, test)
    reference = {"strong": 0.99, "weak": 0.4}
    summary = diagnostics.imbalance_summary(
        model, train, test, reference, probe=probe
    )
    for name, ref in reference.items():
        row = summary[name]
        assert row["reference"] == ref
        assert row["probe_gap"] == pytest.approx(probe["linear_probe"][name] - ref)
        assert row["head_gap"] == pytest.approx(probe["unimodal_head"][name] - ref)
    assert summary["fused"] == probe["fused"]
    gaps = {name: summary[name]["probe_gap"] for name in reference}
    assert summary["most_under_optimized"] == min(gaps, key=gaps.get)
    # Computed from scratch it agrees; modalities without a reference get None.
    partial = diagnostics.imbalance_summary(model, train, test, {"weak": 0.4})
    assert partial["weak"]["probe_gap"] == pytest.approx(summary["weak"]["probe_gap"])
    assert partial["strong"]["probe_gap"] is None
    assert partial["most_under_optimized"] == "weak"
    with pytest.raises(ValueError, match="unknown modalities"):
        diagnostics.imbalance_summary(model, train, test, {"audio": 0.5}, probe=probe)


def test_plot_gradient_ratios_writes_a_png(tmp_path):
    per_step = {
        "step": [0, 10, 20],
        "epoch": [0, 0, 1],
        "strong_grad_ratio": [1.0, 0.6, 0.5],
        "weak_grad_ratio": [0.9, 0.1, 0.02],
    }
    monitor = keras_dgl.callbacks.GradientMonitor(
        ({"strong": np.zeros((2, 3)), "weak": np.zeros((2, 3))}, np.zeros(2))
    )
    monitor.history = per_step
    history = keras.callbacks.History()
    history.history = {"loss": [1.0, 0.5], "strong_grad_ratio": [0.8, 0.7]}
    path = diagnostics.plot_gradient_ratios(
        {"joint": monitor, "dgl": dict(per_step), "joint_aux": history},
        str(tmp_path / "ratios.png"),
        title="Gradient ratios",
    )
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="No gradient ratios"):
        diagnostics.plot_gradient_ratios(
            {"joint": {"loss": [1.0]}}, str(tmp_path / "x.png")
        )


@pytest.mark.parametrize("method", ["dgl", "mla"])
def test_predictions_from_features_match_predict_modalities(method):
    # Encoded once, then predicted in chunks through the method's own forward
    # pass (mla fuses without the fusion layer).
    splits = _splits()
    model = _model(splits, method=method)
    x, _ = splits.numpy("test")
    features, _ = keras_dgl.utils.encoder_features(model.encoders, splits.test)
    got = keras_dgl.utils.predictions_from_features(
        model.outputs_from_features, features, batch_size=37
    )
    expected = model.predict_modalities(x, verbose=0)
    assert set(got) == set(expected)
    for key, value in expected.items():
        np.testing.assert_allclose(got[key], value, rtol=1e-5, atol=1e-5)
