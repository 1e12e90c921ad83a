"""Building blocks shared by eegfm models: patch embedder, position embeddings, attention."""

from .attention_pool import AttentionPool
from .patch_embed import NeuralPatchEmbedder
from .position import (
    FlatSinusoidPositionEmbedding,
    MontageAgnosticPositionEmbedding,
    build_position_embedding,
    sinusoid,
)
from .spatial_moments import spatial_moments
from .transformer import MultiHeadSelfAttention, TransformerBlock

__all__ = [
    "AttentionPool",
    "FlatSinusoidPositionEmbedding",
    "MontageAgnosticPositionEmbedding",
    "MultiHeadSelfAttention",
    "NeuralPatchEmbedder",
    "TransformerBlock",
    "build_position_embedding",
    "sinusoid",
    "spatial_moments",
]
