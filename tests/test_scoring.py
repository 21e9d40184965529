"""Scoring's seeded sample of a split (`ExperimentConfig.max_probe_examples`).

The sample is uniform, picks the same examples however the split is batched
and whether it is streamed or taken from features already computed, and a
streamed sample encodes only the examples that enter it.
"""

import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_dgl.datasets import DatasetSplits
from keras_dgl.experiments.scoring import EncodedSplits
from keras_dgl.experiments.scoring import _Reservoir
from keras_dgl.experiments.scoring import probe_training_features


def _chosen(count, size, seed, chunk):
    reservoir = _Reservoir(size, seed)
    for start in range(0, count, chunk):
        reservoir.offer(min(chunk, count - start))
    return reservoir.chosen()


def test_reservoir_is_uniform_and_independent_of_batching():
    chosen = _chosen(50, 10, seed=4, chunk=50)
    assert len(chosen) == 10 and len(set(chosen.tolist())) == 10
    assert np.all(np.diff(chosen) > 0)
    for chunk in (1, 7, 13):
        np.testing.assert_array_equal(_chosen(50, 10, seed=4, chunk=chunk), chosen)
    assert not np.array_equal(_chosen(50, 10, seed=5, chunk=50), chosen)
    np.testing.assert_array_equal(_chosen(6, 10, seed=4, chunk=4), np.arange(6))
    # Each position is kept with probability 10 / 50; 2,000 draws give a
    # standard error of 0.009, and 0.045 is five of them.
    counts = np.zeros(50)
    for seed in range(2000):
        counts[_chosen(50, 10, seed=seed, chunk=9)] += 1
    np.testing.assert_allclose(counts / 2000, 0.2, atol=0.045)
    with pytest.raises(ValueError, match="size of at least 1; got 0"):
        _Reservoir(0, seed=0)


class _Counting:
    """An encoder that counts the examples it encodes."""

    def __init__(self, encoder):
        self.encoder = encoder
        self.count = 0

    def __call__(self, x, training=False):
        self.count += len(x)
        return self.encoder(x, training=training)


def _encoded(count=200, batch=16):
    rng = np.random.default_rng(0)
    x = {"a": rng.normal(size=(count, 5)).astype("float32"),
         "b": rng.normal(size=(count, 3)).astype("float32")}
    y = np.arange(count) % 4
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)
    splits = DatasetSplits(train=train, validation=None, test=train, num_classes=4,
                           class_names=list("wxyz"), input_shapes={"a": (5,), "b": (3,)})
    keras.utils.set_random_seed(1)
    encoders = {name: _Counting(keras.Sequential([keras.layers.Dense(6, activation="tanh")]))
                for name in x}
    for name, encoder in encoders.items():
        encoder.encoder.build((None, x[name].shape[1]))
    return EncodedSplits(encoders, splits, batch_size=batch), y


def test_streamed_sample_is_the_sample_of_all_features_and_encodes_fewer():
    encoded, y = _encoded()
    features, labels = encoded.sample("train", 10, seed=3)
    # Expected about 10 * (1 + ln 20) = 40 encoded of 200.
    assert all(encoder.count < 100 for encoder in encoded.encoders.values())
    everything, all_labels = encoded["train"]
    chosen = _chosen(200, 10, seed=3, chunk=200)
    np.testing.assert_array_equal(labels, y[chosen])
    np.testing.assert_array_equal(all_labels[chosen], labels)
    for name in ("a", "b"):
        assert features[name].shape == (10, 6)
        np.testing.assert_allclose(features[name], everything[name][chosen], atol=1e-5)
    cached, cached_labels = encoded.sample("train", 10, seed=3)
    np.testing.assert_array_equal(cached_labels, labels)
    np.testing.assert_allclose(cached["a"], features["a"], atol=1e-5)


@pytest.mark.parametrize("refit", [False, True])
def test_probe_training_features_follow_the_setting(refit):
    encoded, y = _encoded(count=40)
    run = types.SimpleNamespace(seed=2, modality=None)
    config = types.SimpleNamespace(max_probe_examples=8, refit=refit)
    features, labels = probe_training_features(encoded, run, config)
    np.testing.assert_array_equal(labels, y[_chosen(40, 8, seed=2, chunk=40)])
    # The refit reads every training feature: then they are computed once,
    # whole; otherwise only the examples that enter the sample are encoded.
    entered = len(_encode_order(40, 8, 2, 16))
    assert entered < 40
    assert encoded.encoders["a"].count == (40 if refit else entered)
    config = types.SimpleNamespace(max_probe_examples=None, refit=refit)
    features, labels = probe_training_features(encoded, run, config)
    np.testing.assert_array_equal(labels, y)


def _encode_order(count, size, seed, chunk):
    """Every (position) that enters the sample when offered in `chunk`s."""
    reservoir, entered = _Reservoir(size, seed), []
    for start in range(0, count, chunk):
        keep, _ = reservoir.offer(min(chunk, count - start))
        entered.extend((start + keep).tolist())
    return entered
