"""Every score of a trained run, from encoder features computed once per split.

The encoders are frozen once training ends, so each split is pushed through
them once (in inference mode) and every score is computed from those
features: the fused and per-modality test accuracy (the fusion layer on the
features), the linear probes (train and test features), the modality
contribution, drop-one and Shapley (a zeroed modality is its encoder's
output on zeros, computed once and repeated), the fusion refit (train and
validation features) and the refit model's test accuracy. With
`max_probe_examples`, each probe is fitted on a seeded sample of the training
split, and only the sampled examples are encoded unless the refit needs every
training feature anyway.
"""

import time

import keras
import numpy as np

from keras_dgl import backend as dgl_backend
from keras_dgl.diagnostics.linear_probe import probe_accuracy
from keras_dgl.diagnostics.shapley_contribution import shapley_values
from keras_dgl.utils.accuracy import accuracy
from keras_dgl.utils.data_adapter import batches
from keras_dgl.utils.encoder_features import encoder_features
from keras_dgl.utils.encoder_features import predictions_from_features

# Inference batches: larger than training ones, since they cost less per
# example.
INFERENCE_BATCH = 256
# The refit stops after this many epochs without a lower validation loss.
REFIT_PATIENCE = 5
# Largest relative difference allowed between the model's own predictions
# and the fusion layer applied to the cached features (float32 noise).
_CONSISTENCY_TOLERANCE = 1e-4


class EncodedSplits:
    """The frozen encoders' features of each split, computed on first use.

    Args:
        encoders: dict mapping a modality to its (trained) encoder.
        splits: the run's `keras_dgl.datasets.DatasetSplits`.
        batch_size: int. Batch size for splits held as arrays.

    Example:

    ```python
    encoded = EncodedSplits(model.encoders, splits)
    features, labels = encoded["test"]
    ```
    """

    def __init__(self, encoders, splits, batch_size=INFERENCE_BATCH):
        self.encoders = encoders
        self.splits = splits
        self.batch_size = batch_size
        self._cache = {}
        self._zeros = None

    def __getitem__(self, split):
        if split not in self._cache:
            self._cache[split] = encoder_features(
                self.encoders, self.splits.unaugmented(split), self.batch_size
            )
        return self._cache[split]

    def sample(self, split, size, seed, encode_all=False):
        """Features and labels of a seeded uniform sample of one split.

        A split whose features are already computed is sampled from them;
        otherwise the split is streamed and only the examples that enter
        the sample are encoded (expected about
        `size * (1 + ln(n / size))` of `n`). Both ways pick the same
        examples for the same seed, in split order.

        Args:
            split: str. `"train"`, `"validation"` or `"test"`.
            size: int. Most examples (all of a smaller split).
            seed: int. Seed of the choice.
            encode_all: bool. Encode the whole split first (and keep it),
                for a caller that needs every feature anyway.

        Returns:
            `(features, labels)`, as `encoded[split]` gives them.

        Example:

        ```python
        features, labels = encoded.sample("train", 10_000, seed=0)
        ```
        """
        reservoir = _Reservoir(size, seed)
        if encode_all or split in self._cache:
            features, labels = self[split]
            reservoir.offer(len(labels))
            chosen = reservoir.chosen()
            return {n: f[chosen] for n, f in features.items()}, labels[chosen]
        features, labels = {}, None
        with dgl_backend.no_grad():
            for x, y in batches(self.splits.unaugmented(split), self.batch_size):
                keep, slots = reservoir.offer(len(y))
                if not len(keep):
                    continue
                for name, encoder in self.encoders.items():
                    value = _numpy(encoder(x[name][keep], training=False))
                    if name not in features:
                        features[name] = np.zeros((reservoir.size,) + value.shape[1:],
                                                  "float32")
                    features[name][slots] = value
                if labels is None:
                    labels = np.zeros((reservoir.size,) + y.shape[1:], y.dtype)
                labels[slots] = y[keep]
        if labels is None:
            raise ValueError(f"The {split!r} split holds no batch.")
        order = reservoir.slot_order()
        return {n: f[order] for n, f in features.items()}, labels[order]

    def zeros(self):
        """Each encoder's features of an all-zero input, shape `(1, dim)`."""
        if self._zeros is None:
            with dgl_backend.no_grad():
                self._zeros = {
                    name: np.asarray(keras.ops.convert_to_numpy(encoder(
                        np.zeros((1,) + tuple(self.splits.input_shapes[name]), "float32"),
                        training=False,
                    )), "float32")
                    for name, encoder in self.encoders.items()
                }
        return self._zeros


class _Reservoir:
    """A seeded uniform sample of at most `size` positions of a stream.

    Algorithm R: the first `size` positions fill the sample; position
    `i >= size` then takes slot `floor(u * (i + 1))` when that is below
    `size`, with one `u ~ U[0, 1)` drawn per position. Whether an example
    enters therefore depends on its position and the seed only, so it is
    decided before the example is encoded, and the same seed picks the same
    positions however the stream is batched.

    Args:
        size: int. Most positions kept (at least 1).
        seed: int. Seed of the draws.

    Example:

    ```python
    reservoir = _Reservoir(100, seed=0)
    for x, y in batches(data):
        keep, slots = reservoir.offer(len(y))  # store x[keep] in slots
    reservoir.chosen()  # the sampled positions, sorted
    ```
    """

    def __init__(self, size, seed):
        if int(size) < 1:
            raise ValueError(f"A sample needs a size of at least 1; got {size!r}.")
        self.size = int(size)
        self.seen = 0
        self._rng = np.random.default_rng(seed)
        self._positions = np.full(self.size, -1, np.int64)

    def offer(self, count):
        """Offers the next `count` positions.

        Returns:
            `(keep, slots)`: the indices (within these `count`) that enter
            the sample, and the slot each takes. A slot taken twice within
            one offer keeps the later position, as one at a time would.
        """
        positions = self.seen + np.arange(int(count), dtype=np.int64)
        slots = positions.copy()
        late = positions >= self.size
        slots[late] = np.floor(
            self._rng.random(int(late.sum())) * (positions[late] + 1)
        ).astype(np.int64)
        entering = np.flatnonzero(slots < self.size)
        # The last offer of each slot wins: unique on the reversed order.
        _, last = np.unique(slots[entering][::-1], return_index=True)
        keep = np.sort(entering[::-1][last])
        self._positions[slots[keep]] = positions[keep]
        self.seen += int(count)
        return keep, slots[keep]

    def slot_order(self):
        """The filled slots, ordered by the position each holds."""
        filled = min(self.seen, self.size)
        return np.argsort(self._positions[:filled], kind="stable")

    def chosen(self):
        """The sampled positions, sorted."""
        return self._positions[self.slot_order()]


def feature_predictor(model):
    """A callable from a batch of encoder features to the model's outputs.

    A `DGLModel` maps features with its method's forward pass
    (`outputs_from_features`); another multimodal model class with the same
    constructor is assumed to fuse with its fusion layer, which
    `check_consistent` verifies.
    """
    hook = getattr(model, "outputs_from_features", None)
    if hook is not None:
        return hook
    fusion = model.fusion
    return lambda chunk: {
        "fused": fusion(chunk, training=False),
        "unimodal": fusion(chunk, unimodal=True, training=False),
    }


def _numpy(tensor):
    return np.asarray(keras.ops.convert_to_numpy(tensor), "float32")


def check_consistent(model, run, splits, encoded):
    """Checks that the model predicts what scoring computes from features.

    Scores are computed from the cached features with the fusion layer (or,
    for a unimodal baseline, its `"head"` layer); a model class whose
    predictions are something else must not be scored that way. One test
    batch is run through the whole model eagerly and compared.

    Raises:
        RuntimeError: the two disagree.
    """
    features, _ = encoded["test"]
    test = splits.unaugmented("test")
    x = test[0] if isinstance(test, tuple) else next(test.as_numpy_iterator())[0]
    count = min(8, len(next(iter(features.values()))))
    with dgl_backend.no_grad():
        if run.modality is None:
            batch = {name: np.asarray(x[name][:count]) for name in model.modality_names}
            expected = _numpy(model(batch, training=False)["fused"])
            got = predictions_from_features(
                feature_predictor(model), {n: f[:count] for n, f in features.items()}
            )["fused"]
        else:
            expected = _numpy(model(np.asarray(x[run.modality][:count]), training=False))
            got = _numpy(model.get_layer("head")(features[run.modality][:count]))
    scale = max(1.0, float(np.max(np.abs(expected))))
    if not np.allclose(got, expected, rtol=0, atol=_CONSISTENCY_TOLERANCE * scale):
        raise RuntimeError(
            f"{run.name}: the model's predictions differ from its fusion layer "
            "applied to its encoders' features, which is what the experiment "
            "scores; a model class with another prediction needs its own scoring"
        )


def score_run(model, encoders, run, splits, config, log, counter):
    """Test scores of one trained run (its best epoch's weights loaded).

    Args:
        model: the trained model.
        encoders: dict of its encoders by modality.
        run: the `Run`.
        splits: its `DatasetSplits`.
        config: the resolved `ExperimentConfig`.
        log: callable taking one progress line.
        counter: str. The run's `[i/n]` prefix for progress lines.

    Returns:
        A dict: `test_accuracy` (`fused` and per modality for multimodal
        runs, the modality for a baseline) and `probe_accuracy`; for
        multimodal runs also `contribution` and, with `config.refit`,
        `refit` (computed last: it changes the fusion weights).
    """
    encoded = EncodedSplits(encoders, splits, max(INFERENCE_BATCH, config.batch_size))
    check_consistent(model, run, splits, encoded)
    test_x, test_y = encoded["test"]
    if run.modality is not None:
        head = model.get_layer("head")
        with dgl_backend.no_grad():
            logits = _numpy(head(test_x[run.modality]))
        scores = {"test_accuracy": {run.modality: accuracy(logits, test_y)}}
    else:
        predictions = predictions_from_features(feature_predictor(model), test_x)
        scores = {
            "test_accuracy": {
                name: accuracy(logits, test_y) for name, logits in predictions.items()
            }
        }
    scores["probe_accuracy"] = (
        probe_accuracy(*probe_training_features(encoded, run, config), test_x, test_y)
        if config.probe else {}
    )
    if run.modality is not None:
        return scores
    scores["contribution"] = zero_contribution(feature_predictor(model), encoded)
    if config.refit and getattr(model, "fused_by_fusion_layer", True):
        scores["refit"] = refit(model, encoded, config, log, counter, run)
    elif config.refit:
        log(f"{counter} {run.name}: no fusion refit ({run.method}'s fused "
            "prediction does not come from the fusion layer)")
    return scores


def probe_training_features(encoded, run, config):
    """The training features the run's probes are fitted on.

    All of them, or with `config.max_probe_examples` a sample of that many
    seeded by the run's seed (from every training feature when the refit
    computes them anyway, else streamed: only the sample is encoded).
    """
    if config.max_probe_examples is None:
        return encoded["train"]
    return encoded.sample(
        "train", config.max_probe_examples, seed=run.seed,
        encode_all=config.refit and run.modality is None,
    )


def zero_contribution(predict, encoded):
    """Fused test accuracy with modalities' inputs zeroed: drop-one and Shapley.

    Matches `keras_dgl.diagnostics.modality_contribution(mode="zero")` and
    the accuracy of `keras_dgl.diagnostics.shapley_contribution`: a zeroed
    modality's features are its encoder's output on an all-zero input.

    Args:
        predict: the model's `feature_predictor`.
        encoded: the run's `EncodedSplits`.

    Returns:
        dict: `mode`, `fused`, `ablated` and `drop` per modality,
        `shapley` (the Shapley value of each modality for fused accuracy;
        they sum to `fused - all_zeroed`) and `all_zeroed`.
    """
    features, labels = encoded["test"]
    count = len(labels)
    zeros = encoded.zeros()
    names = list(features)

    def fused_accuracy(present):
        replaced = {
            name: features[name] if name in present
            else np.repeat(zeros[name], count, axis=0)
            for name in names
        }
        return (accuracy(predictions_from_features(predict, replaced)["fused"], labels),)

    full = fused_accuracy(names)[0]
    ablated = {
        name: fused_accuracy([n for n in names if n != name])[0] for name in names
    }
    _, phi = shapley_values(names, fused_accuracy)
    return {
        "mode": "zero",
        "fused": full,
        "ablated": ablated,
        "drop": {name: full - value for name, value in ablated.items()},
        "shapley": {name: float(phi[name][0]) for name in names},
        "all_zeroed": fused_accuracy(())[0],
    }


def refit(model, encoded, config, log, counter, run):
    """Refits the fusion layer on the cached features; scores it again."""
    started = time.time()
    outcome = model.refit_fusion(
        encoded["train"],
        encoded["validation"],
        epochs=config.refit_epochs,
        patience=REFIT_PATIENCE,
        features_given=True,
    )
    test_x, test_y = encoded["test"]
    fused = accuracy(
        predictions_from_features(feature_predictor(model), test_x)["fused"], test_y
    )
    before, after = outcome["before"], outcome["after"]
    log(f"{counter} {run.name}: fusion refit, epoch {outcome['best_epoch']} of "
        f"{outcome['epochs_run']} kept (validation loss "
        f"{before['val_loss']:.4f} -> {after['val_loss']:.4f})")
    return {
        "test_accuracy": {"fused": fused},
        # 0: the trained fusion weights were kept.
        "best_epoch": outcome["best_epoch"],
        "epochs_run": outcome["epochs_run"],
        "val_loss": [before["val_loss"], after["val_loss"]],
        "val_accuracy": [before["val_accuracy"], after["val_accuracy"]],
        "seconds": round(time.time() - started, 1),
    }
