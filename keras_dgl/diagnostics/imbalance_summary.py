"""Per-modality accuracy inside a multimodal model against unimodal references."""

from keras_dgl.diagnostics.linear_probe import linear_probe


def imbalance_summary(model, train_data, test_data, reference, probe=None):
    """Compares each modality inside `model` with its unimodal reference accuracy.

    The modality imbalance DGL addresses shows as encoders that are worse
    inside a jointly trained model than trained alone. For each modality
    this reports the linear-probe accuracy of its frozen encoder and the
    model's own per-modality prediction accuracy (other modalities zeroed),
    each beside the reference and as a gap (negative: under-optimized). The
    probe is the fairer measure; the zeroed-modality head exaggerates gaps.

    Args:
        model: a `keras_dgl.DGLModel`.
        train_data: data to fit the probes on (see `linear_probe`).
        test_data: data to score on.
        reference: dict `{modality: accuracy}`, e.g. the test accuracy of
            each modality's encoder trained alone. Modalities left out get
            `None` gaps.
        probe: optional result of `keras_dgl.diagnostics.linear_probe` on
            the same data, to avoid computing it again.

    Returns:
        A dict: per modality `{"reference", "linear_probe", "probe_gap",
        "unimodal_head", "head_gap"}`, plus `"fused"` (fused accuracy) and
        `"most_under_optimized"` (the modality with the lowest probe gap, or
        `None` without references).

    Example:

    ```python
    summary = keras_dgl.diagnostics.imbalance_summary(
        model, splits.numpy("train"), splits.numpy("test"),
        reference={"strong": 0.97, "weak": 0.66},
    )
    summary["weak"]["probe_gap"]  # e.g. -0.05 under joint training
    ```

    References:
        - [Wei, Luo and Luo, ICCV 2025](https://arxiv.org/abs/2507.10213)
    """
    unknown = sorted(set(reference) - set(model.modality_names))
    if unknown:
        raise ValueError(
            f"`reference` names unknown modalities {unknown}; the model's "
            f"modalities are {model.modality_names}."
        )
    if probe is None:
        probe = linear_probe(model, train_data, test_data)
    summary = {"fused": probe["fused"]}
    for name in model.modality_names:
        ref = reference.get(name)
        probed = probe["linear_probe"][name]
        head = probe["unimodal_head"][name]
        summary[name] = {
            "reference": None if ref is None else float(ref),
            "linear_probe": probed,
            "probe_gap": None if ref is None else probed - float(ref),
            "unimodal_head": head,
            "head_gap": None if ref is None else head - float(ref),
        }
    gaps = {
        name: summary[name]["probe_gap"]
        for name in model.modality_names
        if summary[name]["probe_gap"] is not None
    }
    summary["most_under_optimized"] = min(gaps, key=gaps.get) if gaps else None
    return summary
