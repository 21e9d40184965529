"""The experiment's PNGs: validation curves, test accuracy bars, gradient ratios."""

import os

import numpy as np

from keras_dgl.diagnostics.plot_gradient_ratios import plot_gradient_ratios
from keras_dgl.experiments.store import atomic_path


def _pyplot():
    import matplotlib

    # No display on servers; plots go to files only.
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _validation_series(record, column):
    history = record["history"]
    if record["modality"] is not None:
        key = "val_accuracy" if column == record["modality"] else None
    else:
        key = "val_accuracy" if column == "fused" else f"val_{column}_accuracy"
    return history.get(key) if key else None


def _row_colors(results):
    """One color per method row, the same in every plot."""
    palette = [f"C{index % 10}" for index in range(len(results["summary"]))]
    return dict(zip(results["summary"], palette))


def plot_validation_curves(results, path):
    """Validation accuracy over epochs: one panel per prediction, one line per method.

    Lines are means over splits, with the spread (min to max) shaded.

    Args:
        results: dict returned by `run_experiment` or `summarize`.
        path: str. PNG file to write (atomically).
    """
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    records = results["runs"]
    panels = ["fused"] + sorted(
        {k for r in records for k in r["test_accuracy"]} - {"fused"}
    )
    figure, axes = plt.subplots(
        1, len(panels), figsize=(4.5 * len(panels), 3.6), squeeze=False
    )
    colors = _row_colors(results)
    for axis, panel in zip(axes[0], panels):
        for row in results["summary"]:
            curves = [
                _validation_series(r, panel) for r in records if r["row"] == row
            ]
            curves = [c for c in curves if c]
            if not curves:
                continue
            length = min(len(c) for c in curves)
            values = 100 * np.array([c[:length] for c in curves])
            epochs = np.arange(1, length + 1)
            axis.plot(epochs, values.mean(0), label=row, color=colors[row],
                      marker="." if length < 30 else None)
            if len(curves) > 1:
                axis.fill_between(epochs, values.min(0), values.max(0),
                                  color=colors[row], alpha=0.15)
        axis.set_title(panel if panel == "fused" else f"{panel} (its own prediction)")
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylabel("validation accuracy (%)")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as partial:
        # The temporary name does not end in .png: name the format.
        figure.savefig(partial, dpi=110, format="png")
    plt.close(figure)


def plot_comparison(results, path):
    """Bar chart of test accuracy per method and prediction (mean ± std).

    Args:
        results: dict returned by `run_experiment` or `summarize`.
        path: str. PNG file to write (atomically).
    """
    plt = _pyplot()
    summary = results["summary"]
    rows = list(summary)
    columns = list(next(iter(summary.values()))) if summary else []
    figure, axis = plt.subplots(figsize=(max(6, 1.6 * len(columns) + 4), 4))
    width = 0.8 / max(1, len(rows))
    colors = _row_colors(results)
    for index, row in enumerate(rows):
        positions, means, errors = [], [], []
        for c_index, column in enumerate(columns):
            stats = summary[row][column]
            if stats is None:
                continue
            positions.append(c_index + (index - (len(rows) - 1) / 2) * width)
            means.append(100 * stats["mean"])
            errors.append(100 * (stats["std"] or 0.0))
        axis.bar(positions, means, width, yerr=errors, capsize=3, label=row,
                 color=colors[row])
    axis.set_xticks(range(len(columns)))
    axis.set_xticklabels(columns)
    axis.set_ylabel("test accuracy (%)")
    config = results["config"]
    axis.set_title(
        f"{config['dataset']}, {config['fusion']} fusion, "
        f"{len(config['seeds'])} split(s)"
    )
    axis.grid(axis="y", alpha=0.3)
    # Outside the axes: inside, it would cover bars.
    axis.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    figure.tight_layout()
    with atomic_path(path) as partial:
        # The temporary name does not end in .png: name the format.
        figure.savefig(partial, dpi=110, format="png")
    plt.close(figure)


def plot_method_gradient_ratios(results, out):
    """One PNG per multimodal method: each encoder's gradient ratio per epoch.

    Writes `gradient_ratio_<method>.png` in `out` with one line per split
    (`keras_dgl.diagnostics.plot_gradient_ratios`), for every method whose
    runs recorded ratios.

    Args:
        results: dict returned by `run_experiment` or `summarize`.
        out: str. Output folder.

    Returns:
        The list of written paths.
    """
    written = []
    for method in results.get("diagnostics") or {}:
        histories = {
            f"seed {r['seed']}": {
                f"{name}_grad_ratio": values
                for name, values in r["gradient_ratio"].items()
            }
            for r in results["runs"]
            if r["row"] == method and r.get("gradient_ratio")
        }
        if not histories:
            continue
        path = os.path.join(out, f"gradient_ratio_{method}.png")
        with atomic_path(path) as partial:
            plot_gradient_ratios(
                histories, partial,
                title=f"{method}: multimodal / unimodal gradient norm per encoder",
            )
        written.append(path)
    return written


