"""Tiny models and reference gradients shared by the method tests."""

import keras
import numpy as np
from dgl_test_utils import make_encoder, make_fusion

import keras_dgl
from keras_dgl import backend as dgl_backend

DIMS = {"audio": 5, "visual": 4}


def tiny_model(method, dims=None, units=6, fusion="concat", learning_rate=1.0,
               optimizer=None, num_classes=3, unimodal_head="shared", **kwargs):
    """A built model whose plain-SGD update is -learning_rate * gradient."""
    dims = dims or DIMS
    encoders = {name: make_encoder(units, name=f"{name}_encoder") for name in dims}
    layer = make_fusion(fusion, num_classes=num_classes, unimodal_head=unimodal_head)
    model = keras_dgl.DGLModel(encoders, layer, method=method, **kwargs)
    model.compile(optimizer=optimizer or keras.optimizers.SGD(learning_rate))
    model.build({name: (None, dim) for name, dim in dims.items()})
    return model


def cross_entropy(y, logits):
    return keras.ops.mean(
        keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
    )


def numpy_values(variables):
    return [np.array(keras.ops.convert_to_numpy(v.value)) for v in variables]


def applied_update(model, x, y, learning_rate=1.0):
    """`-update / learning_rate` of every trainable variable over one step."""
    variables = model.trainable_variables
    before = numpy_values(variables)
    model.train_on_batch(x, y)
    after = numpy_values(variables)
    return [(b - a) / learning_rate for b, a in zip(before, after)], before


def gradients(loss_fn, variables):
    return dgl_backend.value_and_gradients(loss_fn, variables)[1]


def term_gradients(model, x, y, variables=None):
    """Gradients of each term, no stop-gradient anywhere: `{term: [array]}`.

    Terms: `"multimodal"` (CE of the fused logits) and one per modality (CE
    of the fusion layer's unimodal prediction).
    """
    variables = model.trainable_variables if variables is None else variables

    def features():
        return {n: model.encoders[n](x[n], training=True) for n in model.modality_names}

    result = {
        "multimodal": gradients(
            lambda: cross_entropy(y, model.fusion(features(), training=True)),
            variables,
        )
    }
    for name in model.modality_names:
        result[name] = gradients(
            lambda name=name: cross_entropy(
                y, model.fusion(features(), unimodal=True, training=True)[name]
            ),
            variables,
        )
    return result


def owners(model):
    owner = {
        id(v): name
        for name, encoder in model.encoders.items()
        for v in encoder.trainable_variables
    }
    return [owner.get(id(v)) for v in model.trainable_variables]


def softmax(logits):
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def assert_lists_close(actual, expected, rtol=1e-4, atol=1e-6, what=""):
    assert len(actual) == len(expected)
    for index, (a, e) in enumerate(zip(actual, expected)):
        np.testing.assert_allclose(
            a, e, rtol=rtol, atol=atol, err_msg=f"{what} variable {index}"
        )
