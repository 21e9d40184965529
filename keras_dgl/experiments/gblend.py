"""Gradient-Blending's preparation step: its loss weights, estimated once per run."""

import os

import keras

from keras_dgl.experiments import store
from keras_dgl.experiments.factories import build_model
from keras_dgl.models.gblend import gblend_weights


def prepare(config, run, splits, run_dir, log, counter):
    """Estimates (or reads back) the loss weights of a gblend run.

    Each loss term is trained alone on a fresh model for the run's epochs
    and scored on the validation split (`keras_dgl.gblend_weights`). The
    result is saved in the run folder, so a resumed run trains with the same
    weights. This is the `prepare` hook of the `"gblend"` entry of
    `keras_dgl.registry.METHODS`.

    Args:
        config: the resolved `ExperimentConfig`.
        run: the `Run`.
        splits: its `DatasetSplits`.
        run_dir: str. The run's folder.
        log: callable taking one progress line.
        counter: str. The run's `[i/n]` prefix.

    Returns:
        `(model_kwargs, record)`: the `DGLModel` arguments (`fused_weight`
        and the `alpha` dict) and `{"gblend": estimate}` for the run's
        record.
    """
    path = os.path.join(run_dir, "gblend.json")
    blend = store.read_json(path)
    if blend is None:
        log(f"{counter} {run.name}: estimating Gradient-Blending weights "
            f"({config.epochs} epochs per loss term)")
        keras.utils.clear_session()
        keras.utils.set_random_seed(run.seed)

        def builder(**kwargs):
            return build_model(config, run, splits, **kwargs)[0]

        blend = gblend_weights(builder, splits.train, splits.validation,
                               epochs=config.epochs)
        store.write_json(path, blend)
    weights = dict(blend["weights"])
    return {"fused_weight": weights.pop("fused"), "alpha": weights}, {"gblend": blend}
