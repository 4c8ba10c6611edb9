"""Plain torch modules an extracted transformer is made of: no elastic logic, so they export,
quantise and time like any model, and compute what the super-network computes (both call
``operators``)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.families.transformer import operators


class TokenEmbedding(nn.Module):
    """Byte (token) embedding plus a learned position for each of ``context`` positions."""

    def __init__(self, vocab: int, width: int, context: int) -> None:
        super().__init__()
        self.token = nn.Embedding(vocab, width)
        self.position = nn.Parameter(torch.zeros(context, width))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.token(ids) + self.position[: ids.shape[1]]


class PatchEmbedding(nn.Module):
    """Non-overlapping patches projected to the width, a class token first, positions added."""

    def __init__(self, channels: int, width: int, patch: int, positions: int) -> None:
        super().__init__()
        self.project = nn.Conv2d(channels, width, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        self.position = nn.Parameter(torch.zeros(1, positions, width))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        patches = self.project(images).flatten(2).transpose(1, 2)
        cls = self.cls.expand(images.shape[0], -1, -1)  # shape, not len: a dynamic batch axis
        return torch.cat([cls, patches], dim=1) + self.position


class Attention(nn.Module):
    def __init__(
        self, width: int, heads: int, head_dim: int, kind: str, causal: bool, chunk: int
    ) -> None:
        super().__init__()
        inner = heads * head_dim
        self.q, self.k, self.v = (nn.Linear(width, inner, bias=False) for _ in range(3))
        self.o = nn.Linear(inner, width, bias=False)
        self.heads, self.kind, self.causal, self.chunk = heads, kind, causal, chunk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = operators.attend(self.q(x), self.k(x), self.v(x), self.heads, self.kind,
                                 self.causal, self.chunk)  # fmt: skip
        return self.o(mixed)


class MLP(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.up = nn.Linear(width, hidden, bias=False)
        self.down = nn.Linear(hidden, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.gelu(self.up(x)))


class GLU(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.gate = nn.Linear(width, hidden, bias=False)
        self.up = nn.Linear(width, hidden, bias=False)
        self.down = nn.Linear(hidden, width, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(operators.gated(self.gate(x), self.up(x)))


class MixtureOfExperts(nn.Module):
    """Top-k routed experts, each an ``MLP``; ``capacity`` tokens per expert and sequence."""

    def __init__(self, width: int, hidden: int, experts: int, top_k: int, capacity: int) -> None:
        super().__init__()
        self.router = nn.Linear(width, experts, bias=False)
        self.experts = nn.ModuleList(MLP(width, hidden // experts) for _ in range(experts))
        self.top_k, self.capacity = top_k, capacity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = operators.route(x, self.router(x), list(self.experts), self.top_k,
                                 self.capacity)  # fmt: skip
        return out


class Block(nn.Module):
    """Pre-norm residual block: ``x + attention(norm(x))``, then ``x + ffn(norm(x))``.

    ``norm`` builds each norm from the width (LayerNorm here, RMSNorm for the LLaMA family,
    which shares this block)."""

    def __init__(
        self,
        width: int,
        attention: nn.Module,
        ffn: nn.Module,
        norm: Callable[[int], nn.Module] = nn.LayerNorm,
    ) -> None:
        super().__init__()
        self.norm1 = norm(width)
        self.attention = attention
        self.norm2 = norm(width)
        self.ffn = ffn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.ffn(self.norm2(x))


class TokenHead(nn.Module):
    """Final norm and next-token logits at every position (weights tied to the embedding,
    unless a LLaMA-style model keeps its own output embedding)."""

    def __init__(
        self, width: int, vocab: int, norm: Callable[[int], nn.Module] = nn.LayerNorm
    ) -> None:
        super().__init__()
        self.norm = norm(width)
        self.logits = nn.Linear(width, vocab, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.norm(x))


class ClassHead(nn.Module):
    """Final norm and class logits, from the class token."""

    def __init__(self, width: int, classes: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.logits = nn.Linear(width, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits(self.norm(x[:, 0]))


class TransformerNet(nn.Module):
    """A standalone sub-network: embedding, blocks, head."""

    def __init__(self, embed: nn.Module, blocks: nn.Sequential, head: nn.Module) -> None:
        super().__init__()
        self.embed = embed
        self.blocks = blocks
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.embed(x)))
