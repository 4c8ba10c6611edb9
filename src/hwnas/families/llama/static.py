"""Plain torch modules an extracted LLaMA-style decoder is made of: no elastic logic, so they
export, quantise and time like any model. The residual block, the SwiGLU feed-forward, the
head and the network around them are the transformer family's (``transformer.static``),
built here with RMSNorm; what is LLaMA's own is the norm, the embedding without positions
and grouped-query attention with rotary positions."""

from __future__ import annotations

import torch
from torch import nn

from hwnas.families.llama import operators


class RMSNorm(nn.Module):
    def __init__(self, width: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return operators.rms_norm(x, self.weight, self.eps)


class TokenEmbedding(nn.Module):
    """Token lookup only: positions enter through the rotary angles of every attention."""

    def __init__(self, vocab: int, width: int) -> None:
        super().__init__()
        self.token = nn.Embedding(vocab, width)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.token(ids)


class GroupedAttention(nn.Module):
    """Causal grouped-query attention with rotary positions for up to ``context`` tokens
    (the angle tables are constants of the module, so the exported graph holds them)."""

    def __init__(
        self, width: int, heads: int, kv_heads: int, dim: int, context: int, theta: float
    ) -> None:
        super().__init__()
        self.q = nn.Linear(width, heads * dim, bias=False)
        self.k = nn.Linear(width, kv_heads * dim, bias=False)
        self.v = nn.Linear(width, kv_heads * dim, bias=False)
        self.o = nn.Linear(heads * dim, width, bias=False)
        self.kv_heads = kv_heads
        cos, sin = operators.rope_tables(context, dim, theta)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = operators.grouped_attention(self.q(x), self.k(x), self.v(x), self.kv_heads,
                                            self.cos, self.sin)  # fmt: skip
        return self.o(mixed)
