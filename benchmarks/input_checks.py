"""Cost of DGLModel's data checks, against the training they guard.

Two measurements, interleaved so that load from other processes affects
both sides alike:

1. Arrays: the time of the checks `fit` runs on a dict of NumPy arrays
   (keys, per-example shapes, labels, finiteness of every input value),
   against one `fit` epoch on the same arrays, for the smallest model of
   the suite (two one-layer MLP encoders, concat fusion): the worst case,
   since a bigger model costs more per example and the checks do not.
   Also the checks' throughput in GB/s of input.
2. tf.data: the step time of `fit` on the same data as a `tf.data`
   pipeline, plain and with a `map` that checks every batch's labels and
   input values (what checking a dataset's values would cost). `fit` does
   not do this: datasets are checked from their element spec only.

Prints one JSON line per measurement:

  KERAS_BACKEND=tensorflow python benchmarks/input_checks.py [--examples 20000]
      [--dim 256] [--rounds 5]
"""

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--examples", type=int, default=20000)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--rounds", type=int, default=5)
    return p.parse_args(argv)


def make_model(dim, num_classes=6):
    import keras

    import keras_dgl

    keras.utils.set_random_seed(0)
    encoders = {
        name: keras.Sequential([keras.layers.Dense(32, activation="relu")])
        for name in ("a", "b")
    }
    model = keras_dgl.DGLModel(encoders, keras_dgl.layers.ConcatFusion(num_classes))
    model.compile(optimizer="adam")
    model.build({name: (None, dim) for name in ("a", "b")})
    return model


def main(argv=None):
    args = parse_args(argv)
    import keras
    import tensorflow as tf

    rng = np.random.default_rng(0)
    x = {
        name: rng.normal(size=(args.examples, args.dim)).astype("float32")
        for name in ("a", "b")
    }
    y = rng.integers(0, 6, size=args.examples).astype("int32")
    model = make_model(args.dim)
    model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0)  # compile
    check, epoch = [], []
    for _ in range(args.rounds):
        started = time.perf_counter()
        model._check_data("fit", x, y)
        check.append(time.perf_counter() - started)
        started = time.perf_counter()
        # The plain Keras epoch, without the checks.
        keras.Model.fit(model, x, y, batch_size=args.batch, epochs=1, verbose=0)
        epoch.append(time.perf_counter() - started)
    gigabytes = sum(v.nbytes for v in x.values()) / 1e9
    common = {
        "backend": keras.backend.backend(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "examples": args.examples,
        "dim": args.dim,
    }
    print(json.dumps({
        "what": "array checks vs one fit epoch",
        **common,
        "check_s": round(statistics.median(check), 4),
        "epoch_s": round(statistics.median(epoch), 4),
        "ratio": round(statistics.median(check) / statistics.median(epoch), 4),
        "check_gb_per_s": round(gigabytes / statistics.median(check), 2),
    }))

    def checked(features, labels):
        assertions = [
            tf.debugging.Assert(
                tf.math.is_finite(tf.reduce_sum(tf.cast(v, tf.float64))), [name]
            )
            for name, v in features.items()
        ]
        assertions.append(tf.debugging.Assert(
            tf.logical_and(tf.reduce_min(labels) >= 0, tf.reduce_max(labels) < 6),
            ["labels"],
        ))
        with tf.control_dependencies(assertions):
            return tf.nest.map_structure(tf.identity, (features, labels))

    plain = tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch).prefetch(2)
    mapped = tf.data.Dataset.from_tensor_slices((x, y)).batch(args.batch).map(
        checked, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    ).prefetch(2)
    steps = -(-args.examples // args.batch)
    times = {"plain": [], "checked": []}
    for round_index in range(args.rounds):
        order = ("plain", "checked") if round_index % 2 == 0 else ("checked", "plain")
        for variant in order:
            dataset = plain if variant == "plain" else mapped
            started = time.perf_counter()
            model.fit(dataset, epochs=1, verbose=0, shuffle=False)
            times[variant].append((time.perf_counter() - started) / steps * 1e3)
    ratios = [c / p for c, p in zip(times["checked"], times["plain"])]
    print(json.dumps({
        "what": "tf.data step time with a value-checking map",
        **common,
        "batch": args.batch,
        "plain_ms_per_step": round(statistics.median(times["plain"]), 3),
        "checked_ms_per_step": round(statistics.median(times["checked"]), 3),
        "ratio_median_of_rounds": round(statistics.median(ratios), 3),
    }))


if __name__ == "__main__":
    main()
