"""The application behind `keras-dgl train` and `keras-dgl tune`.

One experiment trains every requested method (see `keras_dgl.registry`) on
the same data splits with the same budget and seeds, chooses each run's
epoch on the validation split and scores it on the test split. The package
is split by concern:

- `presets`: per-dataset defaults and the published recipe (plain data);
- `config`, `run`, `errors`: `ExperimentConfig`, `Run`, `ExperimentError` and
  `TrainingDiverged` (no Keras);
- `checkpoints`, `run_state`, `run_recorder`: a run's crash-safe checkpoints;
- `factories`: data, encoders, fusion layers, optimizers and models;
- `store`: atomic files and the output folder;
- `runner`: `run_experiment`, the training loop with resume;
- `scoring`: every score of a trained run, from features encoded once;
- `summary`, `report`, `plots`: statistics, the printed table and CSV, PNGs;
- `tune`: `run_tune`, the KerasTuner search behind `keras-dgl tune`.

Names are imported on first use, so `keras_dgl.experiments.config` and
`keras_dgl.experiments.presets` load no Keras.

Example:

```python
config = keras_dgl.experiments.ExperimentConfig(
    dataset="synthetic", epochs=2, seeds=1, out="/tmp/dgl-demo"
)
results = keras_dgl.experiments.run_experiment(config, verbose=0)
results["summary"]["dgl"]["fused"]["mean"]
```
"""

import importlib

_ATTRIBUTES = {
    "ExperimentConfig": "config",
    "ExperimentError": "errors",
    "Run": "run",
    "TrainingDiverged": "errors",
    "PRESETS": "presets",
    "PUBLISHED_RECIPE": "presets",
    "run_experiment": "runner",
    "summarize": "summary",
    "format_table": "report",
    "run_tune": "tune",
}

__all__ = sorted(_ATTRIBUTES)


def __getattr__(name):
    if name not in _ATTRIBUTES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_ATTRIBUTES[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_ATTRIBUTES))
