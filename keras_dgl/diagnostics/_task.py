"""What the diagnostics score for each task a `DGLModel` can have."""

import numpy as np

from keras_dgl.utils.accuracy import accuracy

# Tasks the diagnostics can score (`DGLModel.task`).
SCORED_TASKS = ("classification", "multilabel", "regression")


def task_of(model, what):
    """The model's task, checked to be one `what` can score."""
    task = getattr(model, "task", None) or "classification"
    if task not in SCORED_TASKS:
        raise ValueError(
            f"{what} scores classification, multilabel or regression models; "
            f"this model's loss makes it a {task!r} task."
        )
    return task


def check_task(task, what):
    if task not in SCORED_TASKS:
        raise ValueError(
            f"{what}: `task` must be one of {SCORED_TASKS}. Received: {task!r}"
        )


def score(outputs, y, task):
    """A higher-is-better score of a model's outputs on labels `y`.

    Accuracy for classification, the mean per-label accuracy at logit 0
    (probability 0.5) for multi-label targets, R² (averaged over targets)
    for regression.
    """
    outputs = np.asarray(outputs)
    if task == "classification":
        return accuracy(outputs, y)
    outputs = outputs.reshape(len(outputs), -1)
    y = np.asarray(y, "float64").reshape(outputs.shape)
    if task == "multilabel":
        return float(np.mean((outputs > 0) == (y > 0.5)))
    residual = np.sum((y - outputs) ** 2, axis=0)
    total = np.sum((y - y.mean(axis=0)) ** 2, axis=0)
    return float(np.mean(1.0 - residual / total))
