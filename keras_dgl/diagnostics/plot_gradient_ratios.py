"""Plot of each encoder's gradient ratio over training, one line per method."""

import math

_SUFFIX = "_grad_ratio"


def plot_gradient_ratios(histories, path, title=None, log_scale=True):
    """Writes a PNG of each encoder's multimodal/unimodal gradient ratio over training.

    One panel per modality, one line per entry of `histories` (typically one
    per training method), and a dashed line at 1: below it, fusion shrinks
    the gradient an encoder receives compared with training it alone.

    Args:
        histories: dict mapping a label (e.g. the method) to a
            `keras_dgl.callbacks.GradientMonitor` (its per-step series), its
            `.history` dict, a `keras.callbacks.History` returned by `fit`
            with a `GradientMonitor` attached (epoch-end values), or that
            History's `.history` dict.
        path: str. Where to write the PNG.
        title: str or `None`. Figure title.
        log_scale: bool. Logarithmic y axis. Defaults to `True`.

    Returns:
        `path`.

    Example:

    ```python
    monitors = {"joint": joint_monitor, "dgl": dgl_monitor}
    keras_dgl.diagnostics.plot_gradient_ratios(monitors, "ratios.png")
    ```
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    series = {label: _series(history) for label, history in histories.items()}
    modalities = sorted({m for _, _, ratios in series.values() for m in ratios})
    if not modalities:
        raise ValueError(
            "No gradient ratios found: expected keys ending in "
            f"'{_SUFFIX}' (written by keras_dgl.callbacks.GradientMonitor)."
        )
    figure = Figure(figsize=(4.5 * len(modalities), 3.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(modalities), squeeze=False)[0]
    for axis, modality in zip(axes, modalities):
        for label, (x, x_label, ratios) in series.items():
            if modality in ratios:
                axis.plot(x, ratios[modality], marker=".", label=label)
                axis.set_xlabel(x_label)
        axis.axhline(1.0, color="gray", linestyle="--", linewidth=1)
        if log_scale:
            axis.set_yscale("log")
        axis.set_title(modality)
        axis.set_ylabel("multimodal / unimodal gradient norm")
        axis.legend()
    if title:
        figure.suptitle(title)
    figure.savefig(path, dpi=100)
    return path


def _series(history):
    """`(x, x_label, {modality: ratios})` from any accepted history form."""
    values = getattr(history, "history", history)
    if not isinstance(values, dict):
        raise TypeError(
            "Expected a GradientMonitor, a keras History or their `.history` "
            f"dict. Received: {type(history).__name__}"
        )
    ratios = {
        key[: -len(_SUFFIX)]: [math.nan if v is None else float(v) for v in value]
        for key, value in values.items()
        if key.endswith(_SUFFIX) and not key.startswith("val_")
    }
    if "step" in values:
        return list(values["step"]), "training step", ratios
    length = max((len(v) for v in ratios.values()), default=0)
    return list(range(1, length + 1)), "epoch", ratios
