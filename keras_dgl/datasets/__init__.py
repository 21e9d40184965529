"""tf.data input pipelines for multimodal DGL training.

Keras 3 accepts a `tf.data.Dataset` in `fit` / `evaluate` / `predict` on
every backend, so these pipelines serve TensorFlow, JAX and PyTorch alike.
Every loader returns a `DatasetSplits`. The audio-visual loaders read a raw
folder or one written by `prepare` (decoded once into TFRecord shards).
"""

from keras_dgl.datasets.audio_visual import audio_visual
from keras_dgl.datasets.ave import ave
from keras_dgl.datasets.crema_d import crema_d
from keras_dgl.datasets.kinetics_sounds import kinetics_sounds
from keras_dgl.datasets.prepare import prepare
from keras_dgl.datasets.presets import PRESETS
from keras_dgl.datasets.smartwatch import smartwatch
from keras_dgl.datasets.splits import DatasetSplits
from keras_dgl.datasets.synthetic import synthetic
from keras_dgl.datasets.verify_prepared import verify_prepared
from keras_dgl.datasets.vggsound import vggsound

__all__ = [
    "PRESETS",
    "DatasetSplits",
    "audio_visual",
    "ave",
    "crema_d",
    "kinetics_sounds",
    "prepare",
    "smartwatch",
    "synthetic",
    "verify_prepared",
    "vggsound",
]
