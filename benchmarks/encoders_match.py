"""Which DGL variant makes every encoder as good as alone, and the fused model no worse
than joint training? Paired over subject splits of the smartwatch data (issue 11).

Every model uses the default budget of `keras-dgl train` on the built-in data: one
`Conv1DEncoder(filters=(16, 32, 64), kernel_size=5)` per modality, `ConcatFusion`,
12 epochs of Adam 1e-3, batch 32, training windows with 50% overlap. For each split
seed, every training starts from the same initial weights: the encoders, the fusion
kernel and one linear head per modality are drawn once per seed and copied into each
model (a separate unimodal head and a unimodal model's head start from the same
draw). Every training sees the same seeded data order.

Each training records, at every epoch end, its weights and its validation and test
accuracies (fused and per modality). The rows of the table are then read from those
trainings without training again:

- an epoch rule, always on validation data: `fused` (best fused validation
  accuracy, the runner's rule), `modalities` (best mean of the per-modality
  validation accuracies), or `per-encoder` (each encoder at the epoch of its own
  best unimodal validation accuracy; the fusion is then refit on the combination);
- optionally a fusion refit (`model.refit_fusion` on the frozen encoders, at most
  20 epochs, patience 5, kept on validation loss: the runner's settings), from the
  trained fusion weights or from the `logit-sum` of the separate heads (the concat
  kernel stacked from the heads' kernels, the bias their sum).

The training `dgl_separate_library` runs the winner through the library instead
(`keras_dgl.callbacks.BestWeightsPerModality`, `set_fused_from_unimodal_heads`,
`refit_fusion`); its row must equal "dgl separate, per-encoder epoch, logit-sum +
refit" on every split.

Columns: `fused` test accuracy; `<modality>`: the model's own prediction from that
modality (the zeroed-other fusion for a shared head, the separate head, the unimodal
model's head); `probe <modality>`: StandardScaler + LogisticRegression on the frozen
encoder's training features, scored on test. The same columns on the validation
split are printed too: variants are to be compared on them, the test table reports.

Usage (split seeds F..F+N-1; the CPU is shared, so run it niced; the results in
benchmarks/RESULTS.md came from the TensorFlow backend):

  KERAS_BACKEND=tensorflow nice -n 10 python benchmarks/encoders_match.py \
      [--first-seed F] [--seeds N] [--trainings joint,unimodal,...] [--json out.json]
  python benchmarks/encoders_match.py --merge a.json b.json   # pooled tables

The same command prints the same numbers on the same machine: every training and
refit resets Keras' seeds, and the data order comes from a pipeline built per run.
"""

import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np

MODALITIES = ("accelerometer", "gyroscope")
EPOCHS = 12
BATCH_SIZE = 32
LEARNING_RATE = 1e-3
OVERLAP = 0.5
# The runner's refit settings (keras-dgl train).
REFIT_EPOCHS = 20
REFIT_PATIENCE = 5
SGD_LEARNING_RATE = 1e-2
_EVAL_BATCH = 512

# name -> what is trained. "head": the fusion layer's unimodal_head;
# "optimizer": "adam" (the default budget) or "sgd" (momentum 0.9).
TRAININGS = {
    "joint": {"method": "joint", "head": "shared", "optimizer": "adam"},
    "unimodal": {"method": "unimodal", "optimizer": "adam"},
    "dgl_shared": {"method": "dgl", "head": "shared", "optimizer": "adam"},
    "dgl_separate": {"method": "dgl", "head": "separate", "optimizer": "adam"},
    # The shared head's slices also learn from the unimodal losses (the
    # encoders still see only their unimodal loss): does the weak modality
    # suffer because its slice is fit to the multimodal residual only?
    "dgl_shared_both": {
        "method": "dgl", "head": "shared", "optimizer": "adam",
        "head_learns_unimodal": True,
    },
    # The fusion alone learns for the first epochs, on the initial encoders'
    # features, before DGL starts (a head warm-up within the same budget).
    "dgl_shared_warmup": {
        "method": "dgl", "head": "shared", "optimizer": "adam", "warmup": 2,
    },
    # Separate heads train the encoders (each then learns as if alone); the
    # fusion learns from the multimodal loss plus, on the same detached
    # features, each of its modality slices as a unimodal classifier
    # (W_m sg(f_m) + b), so that no slice is left to the multimodal residual.
    "dgl_separate_slices": {
        "method": "dgl", "head": "separate", "optimizer": "adam",
        "fusion_learns_slices": True,
    },
    # The winner through the library's own API: fit with validation data and
    # keras_dgl.callbacks.BestWeightsPerModality, then
    # fusion.set_fused_from_unimodal_heads() and model.refit_fusion. Must
    # reproduce the "per-encoder epoch, logit-sum + refit" row.
    "dgl_separate_library": {
        "method": "dgl", "head": "separate", "optimizer": "adam", "library": True,
    },
    "joint_sgd": {"method": "joint", "head": "shared", "optimizer": "sgd"},
    "unimodal_sgd": {"method": "unimodal", "optimizer": "sgd"},
    "dgl_shared_sgd": {
        "method": "dgl", "head": "shared", "optimizer": "sgd", "alpha": 1.0,
    },
    "dgl_shared_sgd_alpha3": {
        "method": "dgl", "head": "shared", "optimizer": "sgd", "alpha": 3.0,
    },
    # The weaker modality's encoder gets 3x the step (alpha is an encoder
    # learning-rate multiplier under SGD).
    "dgl_shared_sgd_gyro3": {
        "method": "dgl", "head": "shared", "optimizer": "sgd",
        "alpha": {"accelerometer": 1.0, "gyroscope": 3.0},
    },
    "dgl_separate_sgd": {
        "method": "dgl", "head": "separate", "optimizer": "sgd", "alpha": 1.0,
    },
}
DEFAULT_TRAININGS = "joint,unimodal,dgl_shared,dgl_separate,dgl_separate_library"

# Rows: (label, training, epoch rule, fusion after the epoch rule).
# Fusion: "trained" (as trained), "refit", "logit-sum", "logit-sum+refit".
ROWS = (
    ("joint", "joint", "fused", "trained"),
    ("joint + refit", "joint", "fused", "refit"),
    ("unimodal", "unimodal", "own", "trained"),
    ("dgl shared (published)", "dgl_shared", "fused", "trained"),
    ("dgl shared + refit", "dgl_shared", "fused", "refit"),
    ("dgl shared, epoch on modalities", "dgl_shared", "modalities", "trained"),
    ("dgl separate", "dgl_separate", "fused", "trained"),
    ("dgl separate + refit", "dgl_separate", "fused", "refit"),
    ("dgl separate, epoch on modalities", "dgl_separate", "modalities", "trained"),
    ("dgl separate, epoch on modalities + refit", "dgl_separate", "modalities",
     "refit"),
    ("dgl separate, per-encoder epoch + refit", "dgl_separate", "per-encoder",
     "refit"),
    ("dgl separate, per-encoder epoch, logit-sum", "dgl_separate", "per-encoder",
     "logit-sum"),
    ("dgl separate, per-encoder epoch, logit-sum + refit", "dgl_separate",
     "per-encoder", "logit-sum+refit"),
    ("dgl separate + logit-sum", "dgl_separate", "fused", "logit-sum"),
    ("dgl separate + logit-sum + refit", "dgl_separate", "fused",
     "logit-sum+refit"),
    ("dgl shared, head learns unimodal", "dgl_shared_both", "fused", "trained"),
    ("dgl shared, head learns unimodal + refit", "dgl_shared_both", "fused",
     "refit"),
    ("dgl shared, 2-epoch head warm-up", "dgl_shared_warmup", "fused", "trained"),
    ("dgl shared, 2-epoch head warm-up + refit", "dgl_shared_warmup", "fused",
     "refit"),
    ("dgl separate, fusion slices learn unimodal", "dgl_separate_slices", "fused",
     "trained"),
    ("dgl separate, fusion slices learn unimodal + refit", "dgl_separate_slices",
     "fused", "refit"),
    ("dgl separate, fusion slices learn unimodal, per-encoder epoch + refit",
     "dgl_separate_slices", "per-encoder", "refit"),
    ("dgl separate, BestWeightsPerModality, heads' sum + refit (library)",
     "dgl_separate_library", "library", "logit-sum+refit"),
    ("joint sgd", "joint_sgd", "fused", "trained"),
    ("unimodal sgd", "unimodal_sgd", "own", "trained"),
    ("dgl shared sgd, alpha 1", "dgl_shared_sgd", "fused", "trained"),
    ("dgl shared sgd, alpha 3", "dgl_shared_sgd_alpha3", "fused", "trained"),
    ("dgl shared sgd, alpha gyroscope 3", "dgl_shared_sgd_gyro3", "fused",
     "trained"),
    ("dgl separate sgd, alpha 1", "dgl_separate_sgd", "fused", "trained"),
    ("dgl separate sgd + refit", "dgl_separate_sgd", "fused", "refit"),
)
# Each row's references for the paired differences.
REFERENCES = {"adam": ("joint", "unimodal"), "sgd": ("joint sgd", "unimodal sgd")}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=5,
                   help="number of split seeds, from --first-seed on")
    p.add_argument("--first-seed", type=int, default=0)
    p.add_argument("--trainings", default=DEFAULT_TRAININGS,
                   help=f"comma list of {sorted(TRAININGS)}")
    p.add_argument("--epochs", type=int, default=EPOCHS,
                   help="training epochs (the default budget is 12; fewer only "
                   "for smoke tests)")
    p.add_argument("--json", default=None, help="write every record here")
    p.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                   help="train nothing: print the tables of the union of these "
                   "--json outputs (rows whose training every file has)")
    p.add_argument("--no-probe", action="store_true",
                   help="skip the linear probes (faster; for repeatability checks)")
    args = p.parse_args(argv)
    args.trainings = [t for t in args.trainings.split(",") if t]
    unknown = sorted(set(args.trainings) - set(TRAININGS))
    if unknown:
        p.error(f"unknown --trainings {unknown}; choose from {sorted(TRAININGS)}")
    return args


# Models ------------------------------------------------------------------------


def make_encoder():
    import keras_dgl

    return keras_dgl.encoders.Conv1DEncoder(filters=(16, 32, 64), kernel_size=5)


def initial_weights(seed, shapes, num_classes):
    """One draw per seed of every weight a model of this benchmark starts from."""
    import keras

    import keras_dgl

    keras.utils.clear_session()
    keras.utils.set_random_seed(seed)
    encoders = {name: make_encoder() for name in MODALITIES}
    features = {}
    for name in MODALITIES:
        encoders[name].build((None,) + tuple(shapes[name]))
        features[name] = (None, encoders[name].filters[-1])
    fusion = keras_dgl.layers.ConcatFusion(num_classes=num_classes)
    fusion.build(features)
    heads = {}
    for name in MODALITIES:
        heads[name] = keras.layers.Dense(num_classes)
        heads[name].build(features[name])
    return {
        "encoders": {n: e.get_weights() for n, e in encoders.items()},
        "fusion": [_numpy(v) for v in fusion.fused_path_variables()],
        "heads": {n: h.get_weights() for n, h in heads.items()},
    }


def _numpy(variable):
    import keras

    return np.array(keras.ops.convert_to_numpy(variable))


def _optimizer(kind):
    import keras

    if kind == "sgd":
        return keras.optimizers.SGD(SGD_LEARNING_RATE, momentum=0.9)
    return keras.optimizers.Adam(LEARNING_RATE)


def build_multimodal(spec, init, shapes, num_classes):
    import keras

    import keras_dgl

    encoders = {name: make_encoder() for name in MODALITIES}
    fusion = keras_dgl.layers.ConcatFusion(
        num_classes=num_classes, unimodal_head=spec["head"]
    )
    model_class = keras_dgl.DGLModel
    if spec.get("head_learns_unimodal"):
        model_class = _HeadLearnsUnimodal
    elif spec.get("fusion_learns_slices"):
        model_class = _FusionLearnsSlices
    model = model_class(
        encoders, fusion, alpha=spec.get("alpha", 1.0), method=spec["method"]
    )
    model.build({n: (None,) + tuple(shapes[n]) for n in MODALITIES})
    for name in MODALITIES:
        model.encoders[name].set_weights(init["encoders"][name])
    for variable, value in zip(model.fusion.fused_path_variables(), init["fusion"]):
        variable.assign(value)
    for name, head in model.fusion.unimodal_heads.items():
        head.set_weights(init["heads"][name])
    model.compile(optimizer=_optimizer(spec["optimizer"]), metrics=["accuracy"])
    return model


def build_unimodal(spec, modality, init, shapes, num_classes):
    import keras

    encoder = make_encoder()
    inputs = keras.Input(tuple(shapes[modality]), name=modality)
    head = keras.layers.Dense(num_classes, name="head")
    model = keras.Model(inputs, head(encoder(inputs)), name=f"unimodal_{modality}")
    encoder.set_weights(init["encoders"][modality])
    head.set_weights(init["heads"][modality])
    model.compile(
        optimizer=_optimizer(spec["optimizer"]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model, encoder, head


def _head_learns_unimodal_class():
    import keras_dgl

    class HeadLearnsUnimodal(keras_dgl.DGLModel):
        """DGL whose shared head also learns from the unimodal losses.

        Only for this study: the encoders still receive only their unimodal
        loss, but the fusion weights that the unimodal predictions reuse are
        not frozen in them.
        """

        def _unimodal_through_frozen_fusion(self, features, training):
            return self.fusion(features, unimodal=True, training=training)

    return HeadLearnsUnimodal


class _LazyClass:
    """Defers the subclass (and so the Keras import) until a model is built."""

    def __init__(self, factory):
        self.factory = factory
        self.value = None

    def __call__(self, *args, **kwargs):
        if self.value is None:
            self.value = self.factory()
        return self.value(*args, **kwargs)


def _fusion_learns_slices_class():
    from keras import ops

    import keras_dgl

    class FusionLearnsSlices(keras_dgl.DGLModel):
        """DGL (separate heads) whose fusion also fits each slice alone.

        Only for this study. The encoders and separate heads are trained as
        in DGL; the fusion additionally receives CE(W_m sg(f_m) + b, y) per
        modality, on the same detached features as its multimodal loss.
        """

        def call(self, inputs, training=None):
            features = {
                n: self.encoders[n](inputs[n], training=training)
                for n in self.modality_names
            }
            detached = {n: ops.stop_gradient(f) for n, f in features.items()}
            fused = self.fusion(detached, training=training)
            unimodal = self.fusion(features, unimodal=True, training=training)
            slices = {
                n: self.fusion.shared_unimodal_logits(detached, n, training=training)
                for n in self.modality_names
            }
            cast = {n: ops.cast(v, "float32") for n, v in unimodal.items()}
            return {
                "fused": ops.cast(fused, "float32"),
                "unimodal": cast,
                "slices": {n: ops.cast(v, "float32") for n, v in slices.items()},
            }

        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                         training=True):
            total = super().compute_loss(x, y, y_pred, sample_weight, training)
            for name in self.modality_names:
                term = self._term(y, y_pred["slices"][name], sample_weight)
                total = ops.add(total, term)
            return total

    return FusionLearnsSlices


_HeadLearnsUnimodal = _LazyClass(_head_learns_unimodal_class)
_FusionLearnsSlices = _LazyClass(_fusion_learns_slices_class)


# Data --------------------------------------------------------------------------


def load(seed):
    import keras_dgl

    splits = keras_dgl.datasets.smartwatch(
        batch_size=BATCH_SIZE, split_seed=seed, overlap=OVERLAP
    )
    arrays = {s: splits.numpy(s) for s in ("train", "validation", "test")}
    return splits, arrays


def train_pipeline(arrays, seed, modality=None):
    """A fresh, seeded pipeline per run: its order does not depend on earlier runs."""
    import tensorflow as tf

    x, y = arrays["train"]
    if modality is not None:
        x = x[modality]
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).cache()
    dataset = dataset.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(BATCH_SIZE)


# Training with per-epoch records -----------------------------------------------


def _accuracy(logits, labels):
    return float(np.mean(np.argmax(np.asarray(logits), axis=-1) == labels))


def _multimodal_scores(model, arrays):
    scores = {}
    for split in ("validation", "test"):
        x, y = arrays[split]
        outputs = model.predict_modalities(x, batch_size=_EVAL_BATCH, verbose=0)
        scores[split] = {k: _accuracy(v, y) for k, v in outputs.items()}
    return scores


def _snapshot(model):
    return {
        "encoders": {n: model.encoders[n].get_weights() for n in MODALITIES},
        "fused_path": [_numpy(v) for v in model.fusion.fused_path_variables()],
        "heads": {n: h.get_weights() for n, h in model.fusion.unimodal_heads.items()},
    }


def _restore(model, fusion_snapshot, modality_snapshots):
    """The fused path from one epoch; each encoder (and its head) from its own."""
    for variable, value in zip(
        model.fusion.fused_path_variables(), fusion_snapshot["fused_path"]
    ):
        variable.assign(value)
    for name in MODALITIES:
        source = modality_snapshots[name]
        model.encoders[name].set_weights(source["encoders"][name])
        if name in model.fusion.unimodal_heads:
            model.fusion.unimodal_heads[name].set_weights(source["heads"][name])


def _recorder(record):
    import keras

    class Recorder(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            record(self.model)

    return Recorder()


def train_multimodal(spec, seed, init, splits, arrays):
    import keras

    keras.utils.clear_session()
    keras.utils.set_random_seed(seed)
    model = build_multimodal(spec, init, splits.input_shapes, splits.num_classes)
    epochs, scores = [], []

    def record(m):
        epochs.append(_snapshot(m))
        scores.append(_multimodal_scores(m, arrays))

    started = time.perf_counter()
    if spec.get("library"):
        import keras_dgl

        best = keras_dgl.callbacks.BestWeightsPerModality()
        model.fit(train_pipeline(arrays, seed), epochs=EPOCHS, verbose=0,
                  validation_data=arrays["validation"], callbacks=[best])
        return {"model": model, "best": best,
                "train_seconds": time.perf_counter() - started}
    warmup = int(spec.get("warmup", 0))
    if warmup:
        # The fused path alone learns, on the initial encoders' features
        # (frozen batch normalization runs on its moving statistics).
        for encoder in model.encoders.values():
            encoder.trainable = False
        model.compile(optimizer=_optimizer(spec["optimizer"]), metrics=["accuracy"])
        model.fit(train_pipeline(arrays, seed), epochs=warmup, verbose=0,
                  callbacks=[_recorder(record)])
        for encoder in model.encoders.values():
            encoder.trainable = True
        model.compile(optimizer=_optimizer(spec["optimizer"]), metrics=["accuracy"])
    model.fit(
        train_pipeline(arrays, seed),
        epochs=EPOCHS - warmup,
        verbose=0,
        callbacks=[_recorder(record)],
    )
    seconds = time.perf_counter() - started
    return {"model": model, "epochs": epochs, "scores": scores,
            "train_seconds": seconds}


def train_unimodal(spec, seed, init, splits, arrays):
    """One model per modality; the records are merged as one 'training'."""
    import keras

    result = {"models": {}, "epochs": {}, "scores": {}, "train_seconds": 0.0}
    for name in MODALITIES:
        keras.utils.clear_session()
        keras.utils.set_random_seed(seed)
        model, encoder, head = build_unimodal(
            spec, name, init, splits.input_shapes, splits.num_classes
        )
        epochs, scores = [], []

        def record(m, name=name, encoder=encoder):
            epochs.append(m.get_weights())
            scores.append({
                split: {name: _accuracy(
                    m.predict(arrays[split][0][name], batch_size=_EVAL_BATCH,
                              verbose=0),
                    arrays[split][1])}
                for split in ("validation", "test")
            })

        started = time.perf_counter()
        model.fit(train_pipeline(arrays, seed, name), epochs=EPOCHS, verbose=0,
                  callbacks=[_recorder(record)])
        result["train_seconds"] += time.perf_counter() - started
        result["models"][name] = (model, encoder)
        result["epochs"][name] = epochs
        result["scores"][name] = scores
    return result


# Reading rows from a training ----------------------------------------------------


def _best(values):
    """Index of the first maximum (ties keep the earlier epoch, as the runner)."""
    return int(np.argmax(np.asarray(values)))


class Prober:
    """Linear probes on frozen encoder features, cached per (training, epoch)."""

    def __init__(self, arrays, enabled=True):
        self.arrays = arrays
        self.enabled = enabled
        self.cache = {}

    def __call__(self, key, encoder, modality):
        if not self.enabled:
            return {"validation": math.nan, "test": math.nan}
        if key in self.cache:
            return self.cache[key]
        import keras
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from threadpoolctl import threadpool_limits

        features = {}
        for split in ("train", "validation", "test"):
            x, y = self.arrays[split]
            parts = [
                keras.ops.convert_to_numpy(
                    encoder(x[modality][i:i + _EVAL_BATCH], training=False)
                )
                for i in range(0, len(y), _EVAL_BATCH)
            ]
            features[split] = (np.concatenate(parts), y)
        with threadpool_limits(1):
            probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
            probe.fit(*features["train"])
            result = {
                split: float(probe.score(*features[split]))
                for split in ("validation", "test")
            }
        self.cache[key] = result
        return result


def _refit(model, arrays, seed):
    import keras

    keras.utils.set_random_seed(seed)
    outcome = model.refit_fusion(
        arrays["train"], arrays["validation"], epochs=REFIT_EPOCHS,
        patience=REFIT_PATIENCE,
    )
    return outcome


def _logit_sum(model):
    """Concat kernel stacked from the separate heads' kernels; bias = their sum."""
    kernels = [model.fusion.unimodal_heads[n].kernel for n in model.fusion.modalities]
    biases = [model.fusion.unimodal_heads[n].bias for n in model.fusion.modalities]
    model.fusion.kernel.assign(np.concatenate([_numpy(k) for k in kernels]))
    model.fusion.bias.assign(np.sum([_numpy(b) for b in biases], axis=0))


def _fused_accuracy(model, arrays):
    return {
        split: _accuracy(
            model.predict(arrays[split][0], batch_size=_EVAL_BATCH, verbose=0),
            arrays[split][1],
        )
        for split in ("validation", "test")
    }


def read_library_row(training, name, seed, arrays, prober):
    """The winner as the library runs it: the callback has restored the model."""
    model, best = training["model"], training["best"].best_epochs
    started = time.perf_counter()
    scores = _multimodal_scores(model, arrays)
    row = {"epochs": {m: best[m] + 1 for m in MODALITIES}}
    row["epochs"]["fusion"] = best["fused"] + 1
    for split in ("validation", "test"):
        row[split] = {m: scores[split][m] for m in MODALITIES}
    for m in MODALITIES:
        probe = prober((name, m, best[m]), model.encoders[m], m)
        for split in ("validation", "test"):
            row[split][f"probe {m}"] = probe[split]
    model.fusion.set_fused_from_unimodal_heads()
    row["refit_epoch"] = _refit(model, arrays, seed)["best_epoch"]
    fused = _fused_accuracy(model, arrays)
    for split in ("validation", "test"):
        row[split]["fused"] = fused[split]
    row["read_seconds"] = time.perf_counter() - started
    return row


def read_multimodal_row(training, name, rule, fusion, seed, arrays, prober):
    if rule == "library":
        return read_library_row(training, name, seed, arrays, prober)
    model, epochs, scores = training["model"], training["epochs"], training["scores"]
    val = [s["validation"] for s in scores]
    started = time.perf_counter()
    chosen = {}
    if rule == "fused":
        best = _best([v["fused"] for v in val])
        chosen = {m: best for m in MODALITIES}
        chosen["fusion"] = best
    elif rule == "modalities":
        best = _best([np.mean([v[m] for m in MODALITIES]) for v in val])
        chosen = {m: best for m in MODALITIES}
        chosen["fusion"] = best
    elif rule == "per-encoder":
        chosen = {m: _best([v[m] for v in val]) for m in MODALITIES}
        # The trained fusion of the latest chosen epoch; it is replaced below.
        chosen["fusion"] = max(chosen[m] for m in MODALITIES)
    else:
        raise ValueError(rule)
    _restore(model, epochs[chosen["fusion"]],
             {m: epochs[chosen[m]] for m in MODALITIES})
    row = {"epochs": {k: v + 1 for k, v in chosen.items()}}
    for split in ("validation", "test"):
        row[split] = {m: scores[chosen[m]][split][m] for m in MODALITIES}
        row[split]["fused"] = scores[chosen["fusion"]][split]["fused"]
    for m in MODALITIES:
        probe = prober((name, m, chosen[m]), model.encoders[m], m)
        for split in ("validation", "test"):
            row[split][f"probe {m}"] = probe[split]
    if rule == "per-encoder" and fusion == "trained":
        raise ValueError("per-encoder epochs need a new fusion")
    if fusion.startswith("logit-sum"):
        if model.fusion.unimodal_head != "separate":
            raise ValueError("logit-sum needs separate heads")
        _logit_sum(model)
    if fusion.endswith("refit"):
        outcome = _refit(model, arrays, seed)
        row["refit_epoch"] = outcome["best_epoch"]
    if fusion != "trained" or rule == "per-encoder":
        fused = _fused_accuracy(model, arrays)
        for split in ("validation", "test"):
            row[split]["fused"] = fused[split]
    row["read_seconds"] = time.perf_counter() - started
    return row


def read_unimodal_row(training, name, arrays, prober):
    row = {"validation": {}, "test": {}, "epochs": {}}
    for m in MODALITIES:
        model, encoder = training["models"][m]
        scores = training["scores"][m]
        best = _best([s["validation"][m] for s in scores])
        model.set_weights(training["epochs"][m][best])
        row["epochs"][m] = best + 1
        probe = prober((name, m, best), encoder, m)
        for split in ("validation", "test"):
            row[split][m] = scores[best][split][m]
            row[split][f"probe {m}"] = probe[split]
    return row


# Tables ------------------------------------------------------------------------


COLUMNS = ("fused",) + MODALITIES + tuple(f"probe {m}" for m in MODALITIES)


def _mean_std(values):
    values = 100.0 * np.asarray(values, dtype=float)
    if values.size == 0 or np.all(np.isnan(values)):
        return None
    std = float(np.std(values, ddof=1)) if values.size > 1 else math.nan
    return float(np.mean(values)), std


def _cell(stats, signed=False):
    if stats is None:
        return "-"
    mean, std = stats
    sign = "+" if signed else ""
    if math.isnan(std):
        return f"{mean:{sign}.1f}"
    return f"{mean:{sign}.1f} ± {std:.1f}"


def _values(records, label, split, column, seeds):
    by_seed = {r["seed"]: r for r in records if r["row"] == label}
    values = []
    for seed in seeds:
        record = by_seed.get(seed)
        if record is None or column not in record[split]:
            return None
        values.append(record[split][column])
    return values


def _table(records, labels, seeds, split, reference=None):
    width = max(len(label) for label in labels) + 2
    lines = [f"{'row':<{width}}" + "".join(f"{c:>22}" for c in COLUMNS)]
    for label in labels:
        cells = []
        for column in COLUMNS:
            values = _values(records, label, split, column, seeds)
            if values is None:
                cells.append("-")
                continue
            if reference is not None:
                ref_label = reference(label, column)
                ref = _values(records, ref_label, split, column, seeds)
                if ref is None or ref_label == label:
                    cells.append("-")
                    continue
                values = np.asarray(values) - np.asarray(ref)
                cells.append(_cell(_mean_std(values), signed=True))
            else:
                cells.append(_cell(_mean_std(values)))
        lines.append(f"{label:<{width}}" + "".join(f"{c:>22}" for c in cells))
    return "\n".join(lines)


def _optimizer_of(label):
    return "sgd" if "sgd" in label else "adam"


def report(records, seeds, trainings, wall, backend):
    import keras

    labels = [label for label, t, _, _ in ROWS if t in trainings]
    header = (
        f"Smartwatch, concat fusion, {EPOCHS} epochs, batch {BATCH_SIZE}, Adam "
        f"{LEARNING_RATE:g} (sgd rows: SGD {SGD_LEARNING_RATE:g} momentum 0.9), "
        f"backend {backend}, keras {keras.__version__}, "
        f"{platform.machine()} {os.cpu_count()} CPUs, split seeds "
        f"{', '.join(map(str, seeds))}; accuracy % mean ± std over splits; "
        f"wall {wall:.0f} s"
    )
    print(header)

    def vs_joint(label, column):
        return REFERENCES[_optimizer_of(label)][0]

    def vs_unimodal(label, column):
        return REFERENCES[_optimizer_of(label)][1]

    for split in ("test", "validation"):
        print(f"\n{split.capitalize()} accuracy")
        print(_table(records, labels, seeds, split))
        print(f"\n{split.capitalize()}: row - joint, paired by split (points)")
        print(_table(records, labels, seeds, split, vs_joint))
        print(f"\n{split.capitalize()}: row - unimodal, paired by split (points)")
        print(_table(records, labels, seeds, split, vs_unimodal))

    print("\nChosen epochs (1-based) and refit epoch, mean over splits; seconds")
    width = max(len(label) for label in labels) + 2
    for label in labels:
        rows = [r for r in records if r["row"] == label]
        epochs = {
            k: np.mean([r["epochs"][k] for r in rows]) for k in rows[0]["epochs"]
        }
        text = ", ".join(f"{k} {v:.1f}" for k, v in epochs.items())
        if "refit_epoch" in rows[0]:
            text += f"; refit {np.mean([r['refit_epoch'] for r in rows]):.1f}"
        print(f"{label:<{width}}{text}")
    print("\nTraining seconds per model (mean over splits; unimodal: both models)")
    for name in trainings:
        seconds = {r["seed"]: r["train_seconds"] for r in records
                   if r["training"] == name}
        print(f"  {name:<24}{np.mean(list(seconds.values())):7.1f}")


def merge(paths):
    records, trainings, wall, backends = [], None, 0.0, set()
    for path in paths:
        with open(path) as f:
            run = json.load(f)
        records += run["records"]
        wall += run["wall_s"]
        backends.add(run.get("backend", "tensorflow"))
        names = run["args"]["trainings"]
        trainings = names if trainings is None else [
            t for t in trainings if t in names
        ]
    seeds = sorted({r["seed"] for r in records})
    if len(records) != len({(r["row"], r["seed"]) for r in records}):
        raise SystemExit("--merge: two files hold the same row and seed")
    print(f"Merged from {', '.join(paths)}")
    report(records, seeds, trainings, wall, "/".join(sorted(backends)))


def main(argv=None):
    global EPOCHS
    args = parse_args(argv)
    EPOCHS = args.epochs
    import keras

    if args.merge:
        return merge(args.merge)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    started = time.perf_counter()
    records = []
    for seed in seeds:
        splits, arrays = load(seed)
        init = initial_weights(seed, splits.input_shapes, splits.num_classes)
        prober = Prober(arrays, enabled=not args.no_probe)
        for name in args.trainings:
            spec = TRAININGS[name]
            if spec["method"] == "unimodal":
                training = train_unimodal(spec, seed, init, splits, arrays)
            else:
                training = train_multimodal(spec, seed, init, splits, arrays)
            for label, source, rule, fusion in ROWS:
                if source != name:
                    continue
                if spec["method"] == "unimodal":
                    row = read_unimodal_row(training, name, arrays, prober)
                else:
                    row = read_multimodal_row(
                        training, name, rule, fusion, seed, arrays, prober
                    )
                row.update({"row": label, "training": name, "seed": seed,
                            "train_seconds": training["train_seconds"]})
                records.append(row)
                print(json.dumps(row, default=float), file=sys.stderr, flush=True)
    wall = time.perf_counter() - started
    report(records, seeds, args.trainings, wall, keras.backend.backend())
    if args.json:
        path = args.json
        partial = path + ".partial"
        with open(partial, "w") as f:
            json.dump({"args": vars(args), "records": records, "wall_s": wall,
                       "backend": keras.backend.backend()},
                      f, indent=1, default=float)
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)


if __name__ == "__main__":
    main()
