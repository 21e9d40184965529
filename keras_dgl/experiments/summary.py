"""Statistics over splits: means per table row, paired gains, diagnostics."""

import keras
import numpy as np

from keras_dgl import registry
from keras_dgl.experiments.report import REFIT_SUFFIX
from keras_dgl.experiments.report import format_table
from keras_dgl.experiments.report import grad_ratio_at_best
from keras_dgl.experiments.report import modalities as _modalities


def _table_rows(records):
    """The table rows' records: every run, plus `<row> + refit` views."""
    rows = []
    for record in records:
        rows.append(record)
        refit = record.get("refit")
        if refit:
            rows.append({
                "row": record["row"] + REFIT_SUFFIX,
                "seed": record["seed"],
                "test_accuracy": refit["test_accuracy"],
                # The refit leaves the encoders, hence the probes, unchanged.
                "probe_accuracy": {},
            })
    return rows


def _multimodal(config):
    return [m for m in config.methods if m in registry.multimodal_methods()]


def _row_order(rows, config):
    multimodal = _multimodal(config)
    order = multimodal + [m + REFIT_SUFFIX for m in multimodal]
    order += sorted({r["row"] for r in rows if r["row"].startswith("unimodal ")})
    return [row for row in order if any(r["row"] == row for r in rows)]


def _columns(records, probe):
    modalities = _modalities(records)
    columns = ["fused"] + modalities
    if probe:
        columns += [f"probe {m}" for m in modalities]
    return columns


def _value(record, column):
    if column.startswith("probe "):
        return record["probe_accuracy"].get(column[len("probe "):])
    return record["test_accuracy"].get(column)


def _stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    array = np.asarray(values, dtype=float)
    # Sample standard deviation across splits; undefined for one split.
    std = float(array.std(ddof=1)) if len(array) > 1 else None
    return {"mean": float(array.mean()), "std": std, "n": len(array),
            "values": [float(v) for v in values]}


def _paired(by_run, seeds, row_a, row_b, column):
    """`{seeds, per_seed, mean, std, ...}` of `row_a - row_b`, split by split."""
    paired = [s for s in seeds if (row_a, s) in by_run and (row_b, s) in by_run]
    diffs = []
    for seed in paired:
        a = _value(by_run[(row_a, seed)], column)
        b = _value(by_run[(row_b, seed)], column)
        diffs.append(None if a is None or b is None else a - b)
    if not paired or any(d is None for d in diffs):
        return None
    return {"seeds": paired, **_stats(diffs), "per_seed": diffs}


def _diagnostics(records, methods):
    """Per method and modality: drop-one, Shapley and gradient ratio stats."""
    modalities = _modalities(records)
    diagnostics = {}
    for method in methods:
        runs = [r for r in records if r["row"] == method]
        entry = {
            "drop": {
                m: _stats([r["contribution"]["drop"].get(m) for r in runs
                           if r.get("contribution")])
                for m in modalities
            },
            "shapley": {
                m: _stats([r["contribution"].get("shapley", {}).get(m)
                           for r in runs if r.get("contribution")])
                for m in modalities
            },
            "grad_ratio": {
                m: _stats([grad_ratio_at_best(r, m) for r in runs])
                for m in modalities
            },
        }
        if any(v is not None for part in entry.values() for v in part.values()):
            diagnostics[method] = entry
    return diagnostics


def summarize(records, config):
    """Means over splits per method, the paired gains, the table.

    Args:
        records: list of run records (as in `results["runs"]`).
        config: the resolved `ExperimentConfig`.

    Returns:
        A dict with `config`, `backend`, `runs`, `summary`, `gain`,
        `refit_gain`, `diagnostics` and `table`; see `run_experiment`.

    Example:

    ```python
    results = summarize(results["runs"], config.resolved())
    print(results["table"])
    ```
    """
    table_rows = _table_rows(records)
    rows = _row_order(table_rows, config)
    columns = _columns(records, config.probe)
    summary = {
        row: {
            column: _stats([_value(r, column) for r in table_rows if r["row"] == row])
            for column in columns
        }
        for row in rows
    }
    by_run = {(r["row"], r["seed"]): r for r in table_rows}
    gain = None
    paired = [s for s in config.seeds if ("dgl", s) in by_run and ("joint", s) in by_run]
    if paired:
        gain = {"seeds": paired, "columns": {}}
        for column in columns:
            stats = _paired(by_run, paired, "dgl", "joint", column)
            if stats is not None:
                gain["columns"][column] = {
                    k: v for k, v in stats.items() if k != "seeds"
                }
    multimodal = _multimodal(config)
    refit_gain = {}
    for method in multimodal:
        stats = _paired(by_run, config.seeds, method + REFIT_SUFFIX, method, "fused")
        if stats is not None:
            refit_gain[method] = stats
    results = {
        "config": config.to_dict(),
        "backend": keras.backend.backend(),
        "runs": sorted(records, key=lambda r: (r["seed"], r["run"])),
        "summary": summary,
        "gain": gain,
        "refit_gain": refit_gain,
        "diagnostics": _diagnostics(records, multimodal),
    }
    results["table"] = format_table(results, columns, rows)
    return results
