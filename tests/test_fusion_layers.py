"""Fusion layers on their own: shapes, unimodal predictions, configs, errors."""

import keras
import numpy as np
import pytest
from dgl_test_utils import FUSION_CLASSES, FUSION_KWARGS, make_fusion
from keras_dgl_test_case import run_layer_test

import keras_dgl


def _features(dims=None, batch=4, seed=0):
    dims = dims or {"audio": 5, "visual": 3}
    rng = np.random.default_rng(seed)
    return {n: rng.normal(size=(batch, d)).astype("float32") for n, d in dims.items()}


@pytest.mark.parametrize("unimodal_head", ["shared", "separate"])
@pytest.mark.parametrize("fusion", sorted(FUSION_CLASSES))
def test_shapes_for_two_and_three_modalities(fusion, unimodal_head):
    for dims in ({"audio": 5, "visual": 3}, {"a": 2, "b": 3, "c": 4}):
        layer = make_fusion(fusion, num_classes=4, unimodal_head=unimodal_head)
        features = _features(dims)
        assert tuple(layer(features).shape) == (4, 4)
        unimodal = layer(features, unimodal=True)
        assert set(unimodal) == set(dims)
        for logits in unimodal.values():
            assert tuple(logits.shape) == (4, 4)


@pytest.mark.parametrize("fusion", sorted(FUSION_CLASSES))
def test_shared_unimodal_prediction_ignores_the_other_modalities(fusion):
    layer = make_fusion(fusion)
    features = _features()
    base = layer(features, unimodal=True)["audio"]
    changed = dict(features, visual=features["visual"] + 10.0)
    again = layer(changed, unimodal=True)["audio"]
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(base), keras.ops.convert_to_numpy(again), rtol=1e-6
    )


@pytest.mark.parametrize("fusion", ["gated", "film", "attention", "concat"])
def test_default_unimodal_equals_fusion_with_others_zeroed(fusion):
    layer = make_fusion(fusion)
    features = _features()
    zeroed = dict(features, visual=np.zeros_like(features["visual"]))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(features, unimodal=True)["audio"]),
        keras.ops.convert_to_numpy(layer(zeroed)),
        rtol=1e-5,
        atol=1e-6,
    )


def test_sum_unimodal_is_the_modality_term():
    layer = make_fusion("sum")
    features = _features()
    fused = keras.ops.convert_to_numpy(layer(features))
    unimodal = layer(features, unimodal=True)
    total = sum(keras.ops.convert_to_numpy(v) for v in unimodal.values())
    np.testing.assert_allclose(fused, total, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("unimodal_head", ["shared", "separate"])
@pytest.mark.parametrize("fusion", sorted(FUSION_CLASSES))
def test_layer_harness_config_round_trip_reproduces_outputs(fusion, unimodal_head):
    run_layer_test(
        FUSION_CLASSES[fusion],
        {"num_classes": 3, "unimodal_head": unimodal_head, **FUSION_KWARGS.get(fusion, {})},
        _features(),
        expected_output_shape=(4, 3),
    )


def test_modality_order_does_not_matter():
    layer = make_fusion("concat")
    features = _features()
    reordered = {"visual": features["visual"], "audio": features["audio"]}
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(features)),
        keras.ops.convert_to_numpy(layer(reordered)),
    )


def test_errors_name_the_problem():
    with pytest.raises(ValueError, match="at least two modalities"):
        make_fusion("concat")({"audio": np.zeros((2, 3), "float32")})
    with pytest.raises(ValueError, match=r"'visual'.*\(2, 3, 4\)"):
        make_fusion("sum")(
            {"audio": np.zeros((2, 3), "float32"), "visual": np.zeros((2, 3, 4), "float32")}
        )
    with pytest.raises(ValueError, match="unimodal_head"):
        keras_dgl.layers.ConcatFusion(num_classes=3, unimodal_head="own")
    with pytest.raises(ValueError, match=r"`units` must be at least 1"):
        keras_dgl.layers.ConcatFusion(units=0)
    with pytest.raises(ValueError, match=r"`num_classes` must be at least 1"):
        keras_dgl.layers.SumFusion(num_classes=0)
    with pytest.raises(TypeError, match=r"`units` must be an int"):
        keras_dgl.layers.GatedFusion(units=2.5)
    with pytest.raises(ValueError, match="name the same number"):
        keras_dgl.layers.FiLMFusion(units=3, num_classes=4)
    with pytest.raises(TypeError, match="needs the number of outputs"):
        keras_dgl.layers.AttentionFusion()
    with pytest.raises(ValueError, match="divisible"):
        keras_dgl.layers.AttentionFusion(num_classes=3, embed_dim=10, num_heads=3)
    with pytest.raises(ValueError, match="'depth'"):
        keras_dgl.layers.FiLMFusion(num_classes=3, condition="depth")(_features())
    layer = make_fusion("concat")
    layer(_features())
    with pytest.raises(ValueError, match="built for modalities"):
        layer({"audio": np.zeros((2, 5), "float32"), "text": np.zeros((2, 3), "float32")})


def test_film_condition_modality_is_configurable():
    features = _features()
    by_audio = keras_dgl.layers.FiLMFusion(num_classes=3, condition="audio", hidden_dim=8)
    by_visual = keras_dgl.layers.FiLMFusion(num_classes=3, condition="visual", hidden_dim=8)
    by_audio(features), by_visual(features)
    assert "scale" in {w.path.split("/")[-2] for w in by_audio.weights}
    # The scale/shift maps read the conditioning modality's width.
    scale_kernel = [w for w in by_visual.weights if "scale" in w.path and "kernel" in w.path]
    assert tuple(scale_kernel[0].shape) == (3, 8)


@pytest.mark.parametrize("fusion", ["concat", "sum"])
def test_fused_from_unimodal_heads_is_the_sum_of_the_heads(fusion):
    layer = make_fusion(fusion, num_classes=4, unimodal_head="separate")
    features = _features({"audio": 5, "visual": 3, "text": 2})
    before = keras.ops.convert_to_numpy(layer(features))
    heads = layer(features, unimodal=True)
    expected = sum(keras.ops.convert_to_numpy(v) for v in heads.values())
    assert not np.allclose(before, expected)
    layer.set_fused_from_unimodal_heads()
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(features)), expected, rtol=1e-5, atol=1e-6
    )
    # The heads themselves are unchanged.
    again = layer(features, unimodal=True)
    for name, logits in heads.items():
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(again[name]),
            keras.ops.convert_to_numpy(logits),
        )


def test_fused_from_unimodal_heads_errors_name_the_problem():
    with pytest.raises(ValueError, match="unimodal_head='separate'"):
        shared = make_fusion("concat")
        shared(_features())
        shared.set_fused_from_unimodal_heads()
    with pytest.raises(ValueError, match="Build ConcatFusion"):
        make_fusion("concat", unimodal_head="separate").set_fused_from_unimodal_heads()
    gated = make_fusion("gated", unimodal_head="separate")
    gated(_features())
    with pytest.raises(ValueError, match="GatedFusion cannot.*ConcatFusion and SumFusion"):
        gated.set_fused_from_unimodal_heads()


@pytest.mark.parametrize("units", [1, 5])
@pytest.mark.parametrize("fusion", sorted(FUSION_CLASSES))
def test_any_number_of_outputs(fusion, units):
    # One output (a regression target) up to many (labels of a tagger).
    features = _features()
    layer = run_layer_test(
        FUSION_CLASSES[fusion],
        {"num_classes": None, "units": units, **FUSION_KWARGS.get(fusion, {})},
        features,
        expected_output_shape=(4, units),
    )
    for logits in layer(features, unimodal=True).values():
        assert tuple(logits.shape) == (4, units)
    assert layer.units == layer.num_classes == units
    config = keras.layers.serialize(layer)["config"]
    assert config["units"] == units and "num_classes" not in config


def test_num_classes_names_units_also_positionally_and_in_old_configs():
    assert keras_dgl.layers.ConcatFusion(6).units == 6
    assert keras_dgl.layers.ConcatFusion(num_classes=6).units == 6
    assert keras_dgl.layers.GatedFusion(np.int64(4), hidden_dim=8).units == 4
    # A layer saved before `units` existed stored `num_classes`.
    config = keras_dgl.layers.SumFusion(num_classes=3).get_config()
    config["num_classes"] = config.pop("units")
    assert keras_dgl.layers.SumFusion.from_config(config).units == 3
