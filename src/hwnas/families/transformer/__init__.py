"""The elastic transformer family: per-layer attention and feed-forward operators, on token
sequences (a causal language model) or on images (a vision transformer)."""

from hwnas.families.transformer.config import TransformerConfig
from hwnas.families.transformer.network import ElasticTransformer

__all__ = ["ElasticTransformer", "TransformerConfig"]
