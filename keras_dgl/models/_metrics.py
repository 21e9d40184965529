"""The compiled metrics of a DGLModel, on the fused output and per modality."""

import keras

from keras_dgl.models import _validation

# Strings whose stock Keras metric would read the model's logits as
# probabilities or pick the wrong form: resolved here per label kind.
_ACCURACY_NAMES = ("accuracy", "acc")


def output_metrics(model, metrics, weighted_metrics):
    """The compiled-metrics container of a compiled `model`, or `None`."""
    if not (metrics or weighted_metrics):
        return None
    return OutputMetrics(
        metrics, weighted_metrics, model._label_kind, model.fusion.units,
        model.modality_names,
        taken={m.name for m in model._logged_trackers()} | {"loss"},
    )


def listed(model_metrics, trackers, logged):
    """The model's metrics, each once, without the term trackers not logged."""
    hidden = {id(t) for t in trackers} - {id(t) for t in logged}
    unique = {}
    for metric in list(model_metrics) + list(logged):
        # Keras tracks the trackers as attributes too: list each once.
        if id(metric) not in hidden:
            unique.setdefault(id(metric), metric)
    return list(unique.values())


class OutputMetrics(keras.metrics.Metric):
    """Every compiled metric, once on the fused output and once per modality.

    It takes the place of Keras' own compiled-metrics container: the model
    outputs a dict, and each metric is applied to `y_pred["fused"]` under its
    own name and to every `y_pred["unimodal"][m]` as `<m>_<name>`. Metrics
    given as `weighted_metrics` receive the sample weights, the others do
    not, as in Keras. Sub-metrics whose variables are created on their first
    update (e.g. `keras.metrics.R2Score`) are built by Keras' symbolic build
    before the first step, as its own container is.

    Args:
        metrics: list of metric identifiers (strings, functions or
            `keras.metrics.Metric` instances), or `None`.
        weighted_metrics: the same, applied with sample weights.
        kind: the label kind of the compiled loss (`_validation`).
        units: int. The number of outputs.
        modality_names: list of str.
        taken: set of log names already in use (loss terms, hard-wired
            accuracies); a per-modality copy that would repeat one of them
            is left out, any other clash raises.
    """

    def __init__(
        self, metrics, weighted_metrics, kind, units, modality_names, taken
    ):
        super().__init__(name="compile_metrics")
        self._names = []
        self._outputs = []
        self._weighted = []
        members = []
        seen = set(taken)
        for weighted, identifiers in ((False, metrics), (True, weighted_metrics)):
            for identifier in _as_list(identifiers):
                fused = resolve_metric(identifier, kind, units)
                entries = [(fused.name, None, fused)]
                for modality in modality_names:
                    copy = resolve_metric(identifier, kind, units, clone=True)
                    entries.append((f"{modality}_{fused.name}", modality, copy))
                for name, output, metric in entries:
                    if name in seen:
                        if output is not None and name in taken:
                            continue  # e.g. the hard-wired `<m>_accuracy`
                        raise ValueError(
                            f"Two logs would be named {name!r}; give the "
                            f"metric {identifier!r} another name."
                        )
                    seen.add(name)
                    self._names.append(name)
                    self._outputs.append(output)
                    self._weighted.append(weighted)
                    members.append(metric)
        self._members = members
        self.built = False

    def update_state(self, y_true, y_pred, sample_weight=None):
        for metric, output, weighted in zip(
            self._members, self._outputs, self._weighted
        ):
            prediction = y_pred["fused"] if output is None else y_pred["unimodal"][output]
            metric.update_state(
                y_true, prediction, sample_weight=sample_weight if weighted else None
            )
        self.built = True

    def result(self):
        if not self.built:
            return {}
        return {
            name: metric.result() for name, metric in zip(self._names, self._members)
        }

    def reset_state(self):
        for metric in self._members:
            metric.reset_state()

    def get_config(self):
        # Rebuilt from the compile config, never deserialized on its own.
        return {"name": self.name}


def resolve_metric(identifier, kind, units, clone=False):
    """A new `keras.metrics.Metric` for `identifier`, suited to logits of `kind`.

    Strings that would otherwise read logits as probabilities, or pick an
    accuracy by the label's shape, are resolved by the label kind:
    `"accuracy"` is sparse or categorical accuracy for classification and
    binary accuracy at logit 0 (probability 0.5) for multi-label targets;
    it is refused for regression. A metric instance is used as it is (with
    `clone=True`, a copy from its config); it receives the model's raw
    outputs (logits), so configure it for them (e.g.
    `keras.metrics.BinaryAccuracy(threshold=0.0)`,
    `keras.metrics.AUC(from_logits=True)`).
    """
    if isinstance(identifier, keras.metrics.Metric):
        if not clone:
            return identifier
        return type(identifier).from_config(identifier.get_config())
    if isinstance(identifier, str):
        by_kind = _string_metric(identifier, kind, units)
        if by_kind is not None:
            return by_kind
        found = keras.metrics.get(identifier)
        if isinstance(found, keras.metrics.Metric):
            return type(found).from_config(dict(found.get_config(), name=identifier))
        return keras.metrics.MeanMetricWrapper(found, name=identifier)
    if callable(identifier):
        return keras.metrics.MeanMetricWrapper(
            identifier, name=getattr(identifier, "__name__", "metric")
        )
    raise TypeError(
        f"Unknown metric {identifier!r}: pass a string, a function or a "
        "keras.metrics.Metric."
    )


def _string_metric(name, kind, units):
    if name in _ACCURACY_NAMES:
        if kind == _validation.CLASS_IDS:
            return keras.metrics.SparseCategoricalAccuracy(name=name)
        if kind == _validation.ONE_HOT:
            return keras.metrics.CategoricalAccuracy(name=name)
        if kind == _validation.BINARY:
            return keras.metrics.BinaryAccuracy(name=name, threshold=0.0)
        raise ValueError(
            f"The metric {name!r} needs class labels, but the compiled loss "
            f"is a {_validation.TASKS[kind]} loss. For regression use e.g. "
            "metrics=['mae', keras.metrics.R2Score()]."
        )
    if name == "binary_accuracy":
        return keras.metrics.BinaryAccuracy(name=name, threshold=0.0)
    if name in ("auc", "AUC"):
        if kind == _validation.BINARY:
            # Variables created now, not on the first (traced) update.
            return keras.metrics.AUC(
                name=name, from_logits=True, multi_label=True, num_labels=units
            )
        return keras.metrics.AUC(name=name, from_logits=True)
    crossentropy = {
        "sparse_categorical_crossentropy": keras.metrics.SparseCategoricalCrossentropy,
        "categorical_crossentropy": keras.metrics.CategoricalCrossentropy,
        "binary_crossentropy": keras.metrics.BinaryCrossentropy,
    }
    if name in crossentropy:
        return crossentropy[name](name=name, from_logits=True)
    return None


def _as_list(identifiers):
    if identifiers is None:
        return []
    if isinstance(identifiers, (list, tuple)):
        return list(identifiers)
    if isinstance(identifiers, dict):
        raise ValueError(
            "DGLModel applies each metric to the fused output and to every "
            "modality; pass a list of metrics, not a dict."
        )
    return [identifiers]
