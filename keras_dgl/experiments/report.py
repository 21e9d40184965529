"""The printed comparison table and the CSV of runs."""

import csv
import math

from keras_dgl.experiments.store import atomic_path

REFIT_SUFFIX = " + refit"
# Footnotes of the dgl row under `--unimodal-head separate`, by epoch choice.
_DGL_SEPARATE = {
    "per-modality": (
        "dgl: a linear head per modality (its <modality> column); each encoder "
        "with its head at its own best validation epoch; fused = the sum of "
        "the heads' logits where the fusion layer can hold it (concat, sum)."
    ),
    "fused": (
        "dgl: a linear head per modality (its <modality> column), at the best "
        "fused validation epoch; fused = the sum of the heads' logits where "
        "the fusion layer can hold it (concat, sum)."
    ),
}
_WIDTH = 14


def modalities(records):
    """The modality names the records were scored on, sorted."""
    return sorted({k for r in records for k in r["test_accuracy"]} - {"fused"})


def grad_ratio_at_best(record, modality):
    """The encoder's gradient ratio at the run's chosen epoch, if measured."""
    series = record.get("gradient_ratio", {}).get(modality)
    index = record["best_epoch"] - 1
    if not series or index >= len(series) or series[index] is None:
        return None
    value = float(series[index])
    return value if math.isfinite(value) else None


def _percent(stats, signed=False):
    if stats is None:
        return "-"
    sign = "+" if signed else ""
    text = f"{100 * stats['mean']:{sign}.1f}"
    if stats["std"] is not None:
        text += f" ± {100 * stats['std']:.1f}"
    return text


def _ratio(stats):
    if stats is None:
        return "-"
    text = f"{stats['mean']:.2f}"
    if stats["std"] is not None:
        text += f" ± {stats['std']:.2f}"
    return text


def _line(first_cell, first, cells, widths):
    return first_cell.ljust(first) + "".join(c.rjust(w) for c, w in zip(cells, widths))


def format_table(results, columns, rows):
    """The printed comparison: test accuracy per method, gains, diagnostics.

    Args:
        results: dict with `config`, `backend`, `summary`, `gain`,
            `refit_gain` and `diagnostics` (see `summarize`).
        columns: list of str. The accuracy columns, in order.
        rows: list of str. The method rows, in order.

    Returns:
        The table as text.
    """
    first = max([24] + [len(r) + 2 for r in rows])
    blocks = [
        _accuracy_block(results, columns, rows, first),
        _gain_block(results, columns, first),
        _refit_block(results, first),
        _diagnostics_block(results, columns, first),
        _footnotes(results, rows),
    ]
    return "\n\n".join("\n".join(block) for block in blocks if block)


def _accuracy_block(results, columns, rows, first):
    config = results["config"]
    seeds = config["seeds"]
    widths = [max(_WIDTH, len(c) + 2) for c in columns]
    lines = [
        f"Test accuracy (%) on {config['dataset']}, {config['fusion']} fusion, "
        f"{config['epochs']} epochs, {config['optimizer']} lr "
        f"{config['learning_rate']:g}, alpha {config['alpha']:g}, backend "
        f"{results['backend']}: mean ± std over {len(seeds)} split(s), "
        f"seeds {', '.join(str(s) for s in seeds)}",
        _line("method", first, columns, widths),
    ]
    for row in rows:
        stats = results["summary"][row]
        lines.append(_line(row, first, [_percent(stats[c]) for c in columns], widths))
    return lines


def _gain_block(results, columns, first):
    gain = results["gain"]
    if not gain or not gain["columns"]:
        return []
    gain_columns = [c for c in columns if c in gain["columns"]]
    widths = [max(_WIDTH, len(c) + 2) for c in gain_columns]
    lines = [
        "DGL - joint, paired by split (accuracy points)",
        _line("split", first, gain_columns, widths),
    ]
    for index, seed in enumerate(gain["seeds"]):
        cells = [f"{100 * gain['columns'][c]['per_seed'][index]:+.1f}"
                 for c in gain_columns]
        lines.append(_line(f"seed {seed}", first, cells, widths))
    cells = [_percent(gain["columns"][c], signed=True) for c in gain_columns]
    lines.append(_line("mean ± std", first, cells, widths))
    return lines


def _refit_block(results, first):
    refit_gain = results.get("refit_gain") or {}
    if not refit_gain:
        return []
    seeds = sorted({s for g in refit_gain.values() for s in g["seeds"]})
    headers = [f"seed {s}" for s in seeds] + ["mean ± std"]
    widths = [_WIDTH] * len(headers)
    lines = [
        "Refit gain: <method> + refit - <method>, fused, by split "
        "(accuracy points)",
        _line("method", first, headers, widths),
    ]
    for method, stats in refit_gain.items():
        by_seed = dict(zip(stats["seeds"], stats["per_seed"]))
        cells = ["-" if s not in by_seed else f"{100 * by_seed[s]:+.1f}" for s in seeds]
        cells.append(_percent(stats, signed=True))
        lines.append(_line(method, first, cells, widths))
    return lines


def _diagnostics_block(results, columns, first):
    diagnostics = results.get("diagnostics") or {}
    if not diagnostics:
        return []
    names = [c for c in columns if c != "fused" and not c.startswith("probe ")]
    headers = [f"drop {m}" for m in names] + [f"shapley {m}" for m in names]
    headers += [f"grad ratio {m}" for m in names]
    widths = [max(_WIDTH, len(h) + 2) for h in headers]
    lines = [
        "Modality diagnostics, mean ± std over splits",
        _line("method", first, headers, widths),
    ]
    for method, entry in diagnostics.items():
        cells = [_percent(entry["drop"].get(m)) for m in names]
        cells += [_percent(entry.get("shapley", {}).get(m)) for m in names]
        cells += [_ratio(entry["grad_ratio"].get(m)) for m in names]
        lines.append(_line(method, first, cells, widths))
    return lines


def _footnotes(results, rows):
    config = results["config"]
    lines = [
        "fused: the model's prediction; <modality>: its prediction from that "
        "modality alone (multimodal models with a shared head: the fusion "
        "weights with the other modalities zeroed);",
        "probe <modality>: logistic regression on the frozen encoder's "
        "features (fitted on the training split). Each run's epoch is chosen "
        "on validation accuracy.",
    ]
    if not config["probe"]:
        lines.pop()
        lines[-1] = lines[-1].rstrip(";") + "."
    if "dgl" in rows and config.get("unimodal_head") == "separate":
        lines.append(_DGL_SEPARATE.get(config.get("epoch_choice"), _DGL_SEPARATE["fused"]))
    if results.get("refit_gain") or any(r.endswith(REFIT_SUFFIX) for r in rows):
        lines.append(
            "<method> + refit: that model after refitting its fusion layer on "
            f"frozen encoder features (at most {config['refit_epochs']} epochs, "
            "kept on validation loss); its encoders and probes are unchanged."
        )
    if results.get("diagnostics"):
        lines.append(
            "drop <modality>: fused accuracy points lost with that modality's "
            "input zeroed at test time; shapley <modality>: its Shapley value "
            "for fused accuracy (points; over every subset of modalities "
            "zeroed, the values sum to fused minus all-zeroed accuracy); "
            "grad ratio <modality>: norm of the "
            "gradient its encoder would get from the multimodal loss over that "
            "from its own unimodal loss, at the chosen epoch, on one validation "
            "batch (below 1: fusion shrinks it)."
        )
    return lines


def write_csv(path, records, probe):
    """Writes one CSV row per run to `path` (atomically).

    Args:
        path: str. The CSV file.
        records: list of run records.
        probe: bool. Include the probe columns.
    """
    names = modalities(records)
    header = ["run", "method", "modality", "seed", "fused_accuracy"]
    header += [f"{m}_accuracy" for m in names]
    if probe:
        header += [f"probe_{m}_accuracy" for m in names]
    header += ["best_epoch", "best_val_accuracy", "epochs", "train_seconds"]
    header += ["refit_fused_accuracy", "refit_best_epoch"]
    header += [f"drop_{m}" for m in names]
    header += [f"shapley_{m}" for m in names]
    header += [f"grad_ratio_{m}" for m in names]
    with atomic_path(path) as partial:
        with open(partial, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(header)
            for r in records:
                row = [r["run"], r["method"], r["modality"] or "", r["seed"],
                       _cell(r["test_accuracy"].get("fused"))]
                row += [_cell(r["test_accuracy"].get(m)) for m in names]
                if probe:
                    row += [_cell(r["probe_accuracy"].get(m)) for m in names]
                row += [r["best_epoch"], _cell(r["best_val_accuracy"]), r["epochs"],
                        r["train_seconds"]]
                refit = r.get("refit") or {}
                row += [_cell(refit.get("test_accuracy", {}).get("fused")),
                        refit.get("best_epoch", "")]
                drop = (r.get("contribution") or {}).get("drop", {})
                row += [_cell(drop.get(m)) for m in names]
                shapley = (r.get("contribution") or {}).get("shapley", {})
                row += [_cell(shapley.get(m)) for m in names]
                ratios = [grad_ratio_at_best(r, m) for m in names]
                row += ["" if v is None else f"{v:.4g}" for v in ratios]
                writer.writerow(row)


def _cell(value):
    return "" if value is None else f"{value:.4f}"
