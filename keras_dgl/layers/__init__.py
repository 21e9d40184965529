"""Fusion layers: fused logits plus one prediction per modality."""

from keras_dgl.layers.attention_fusion import AttentionFusion
from keras_dgl.layers.concat_fusion import ConcatFusion
from keras_dgl.layers.film_fusion import FiLMFusion
from keras_dgl.layers.fusion_layer import FusionLayer
from keras_dgl.layers.gated_fusion import GatedFusion
from keras_dgl.layers.sum_fusion import SumFusion

__all__ = [
    "AttentionFusion",
    "ConcatFusion",
    "FiLMFusion",
    "FusionLayer",
    "GatedFusion",
    "SumFusion",
]
