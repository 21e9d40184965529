"""Keras preprocessing layers that run inside the model's step.

The training transforms of the audio-visual presets as backend-agnostic
Keras layers, so that with prepared data (`keras_dgl.datasets.prepare`,
then a loader with `augment="device"`) the host only reads and batches
bytes and the accelerator crops, flips, normalises, takes the STFT and
masks. Keras' own layers are used where they match the published
transform (`keras.layers.Normalization`, `STFTSpectrogram` inside
`LogSpectrogram`, `Resizing`); the others are written here.
"""

from keras_dgl.preprocessing.attach import attach
from keras_dgl.preprocessing.log_spectrogram import LogSpectrogram
from keras_dgl.preprocessing.random_audio_crop import RandomAudioCrop
from keras_dgl.preprocessing.random_resized_crop import RandomResizedCrop
from keras_dgl.preprocessing.spec_augment import SpecAugment

__all__ = [
    "LogSpectrogram",
    "RandomAudioCrop",
    "RandomResizedCrop",
    "SpecAugment",
    "attach",
]
