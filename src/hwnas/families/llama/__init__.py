"""The LLaMA-style decoder family: RMSNorm, rotary positions, SwiGLU, grouped-query
attention; elastic depth, key/value head groups and intermediate size; loads a local
Hugging Face folder as its dense super-network."""

from hwnas.families.llama.config import LlamaConfig
from hwnas.families.llama.network import ElasticLlama
from hwnas.families.llama.pretrained import load_llama

__all__ = ["ElasticLlama", "LlamaConfig", "load_llama"]
