"""Every score of a trained run, from encoder features computed once per split.

The encoders are frozen once training ends, so each split is pushed through
them once (in inference mode) and every score is computed from those
features: the fused and per-modality test accuracy (the fusion layer on the
features), the linear probes (train and test features), the modality
contribution (a zeroed modality is its encoder's output on zeros, computed
once and repeated), the fusion refit (train and validation features) and
the refit model's test accuracy.
"""

import time

import keras
import numpy as np

from keras_dgl import backend as dgl_backend
from keras_dgl.diagnostics.linear_probe import probe_accuracy
from keras_dgl.utils.accuracy import accuracy
from keras_dgl.utils.encoder_features import encoder_features

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


def fusion_predictions(fusion, features, batch_size=INFERENCE_BATCH):
    """The fusion layer's inference-mode predictions from features.

    Args:
        fusion: a `keras_dgl.layers.FusionLayer`.
        features: dict mapping each modality to an `(n, dim)` array.
        batch_size: int. Examples per call. Defaults to `256`.

    Returns:
        dict: `"fused"` and one entry per modality, `(n, num_classes)` arrays.
    """
    names = list(features)
    count = len(next(iter(features.values())))
    parts = {key: [] for key in ["fused"] + names}
    with dgl_backend.no_grad():
        for start in range(0, count, batch_size):
            chunk = {n: features[n][start:start + batch_size] for n in names}
            parts["fused"].append(_numpy(fusion(chunk, training=False)))
            unimodal = fusion(chunk, unimodal=True, training=False)
            for name in names:
                parts[name].append(_numpy(unimodal[name]))
    return {key: np.concatenate(chunks) for key, chunks in parts.items()}


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
            got = fusion_predictions(
                model.fusion, {n: f[:count] for n, f in features.items()}
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
        predictions = fusion_predictions(model.fusion, test_x)
        scores = {
            "test_accuracy": {
                name: accuracy(logits, test_y) for name, logits in predictions.items()
            }
        }
    scores["probe_accuracy"] = (
        probe_accuracy(*encoded["train"], test_x, test_y) if config.probe else {}
    )
    if run.modality is not None:
        return scores
    scores["contribution"] = zero_contribution(model.fusion, encoded)
    if config.refit:
        scores["refit"] = refit(model, encoded, config, log, counter, run)
    return scores


def zero_contribution(fusion, encoded):
    """Fused test accuracy with each modality's input zeroed.

    Matches `keras_dgl.diagnostics.modality_contribution(mode="zero")`: a
    zeroed modality's features are its encoder's output on an all-zero
    input.

    Returns:
        dict: `mode`, `fused`, `ablated` and `drop` per modality.
    """
    features, labels = encoded["test"]
    count = len(labels)
    full = accuracy(fusion_predictions(fusion, features)["fused"], labels)
    ablated = {}
    for name, zero in encoded.zeros().items():
        replaced = {**features, name: np.repeat(zero, count, axis=0)}
        ablated[name] = accuracy(fusion_predictions(fusion, replaced)["fused"], labels)
    return {
        "mode": "zero",
        "fused": full,
        "ablated": ablated,
        "drop": {name: full - value for name, value in ablated.items()},
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
    fused = accuracy(fusion_predictions(model.fusion, test_x)["fused"], test_y)
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
