"""Building blocks shared by eegfm models: patch embedder, position embeddings, attention."""

from .patch_embed import NeuralPatchEmbedder
from .position import (
    FlatSinusoidPositionEmbedding,
    MontageAgnosticPositionEmbedding,
    build_position_embedding,
    sinusoid,
)
from .transformer import MultiHeadSelfAttention, TransformerBlock

__all__ = [
    "FlatSinusoidPositionEmbedding",
    "MontageAgnosticPositionEmbedding",
    "MultiHeadSelfAttention",
    "NeuralPatchEmbedder",
    "TransformerBlock",
    "build_position_embedding",
    "sinusoid",
]
