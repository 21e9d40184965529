"""Modality encoders: each maps one modality's batch to (batch, output_dim) features."""

from keras_dgl.encoders.conv1d_encoder import Conv1DEncoder
from keras_dgl.encoders.mlp_encoder import MLPEncoder
from keras_dgl.encoders.resnet18 import ResNet18

__all__ = ["Conv1DEncoder", "MLPEncoder", "ResNet18"]
