"""The LLaMA decoder's operators as functions of tensors, shared by the elastic super-network
(on sliced weights) and the extracted modules (on copied ones), so the two compute the same
thing by construction; they follow Hugging Face's ``LlamaForCausalLM`` to float rounding, so
a loaded checkpoint computes what it computed there. All of them export to ONNX (opset 17).

The attention kernel and SwiGLU's gating are the transformer family's
(``operators.attend_heads`` and ``operators.gated``); what is LLaMA's own is here: RMSNorm,
rotary positions and the grouping of query heads onto shared key/value heads.
"""

from __future__ import annotations

import torch

from hwnas.families.transformer.operators import attend_heads, merge_heads, split_heads


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """``x / sqrt(mean(x^2) + eps) * weight``: no mean subtraction, no bias. Written out
    rather than ``F.rms_norm``, which opset 17 has no operator for."""
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def rope_tables(
    positions: int, dim: int, theta: float, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosines and sines (positions, dim) of the rotary angles, as Hugging Face computes
    them: frequency ``theta ** (-2i / dim)`` for pair i, repeated for the two halves."""
    exponent = torch.arange(0, dim, 2, dtype=torch.int64, device=device).float() / dim
    inverse = 1.0 / (theta**exponent)
    angles = torch.arange(positions, dtype=torch.float32, device=device)[:, None] * inverse
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary positions on heads ``x`` (..., sequence, dim): channel j pairs with j + dim/2
    (the "rotate half" layout Hugging Face checkpoints are stored in)."""
    n, half = x.shape[-2], x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos[:n] + rotated * sin[:n]


def grouped_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kv_heads: int, cos: torch.Tensor,
    sin: torch.Tensor,
) -> torch.Tensor:  # fmt: skip
    """Causal grouped-query attention of projected queries (batch, sequence, heads * dim)
    and keys and values (batch, sequence, kv_heads * dim).

    Query head h reads key/value head ``h // (heads / kv_heads)``, as Hugging Face's
    ``repeat_kv`` arranges them; the keys are broadcast over their group instead of copied.
    """
    dim = k.shape[-1] // kv_heads
    q = rotate(split_heads(q, q.shape[-1] // dim), cos, sin)
    k = rotate(split_heads(k, kv_heads), cos, sin)
    v = split_heads(v, kv_heads)
    grouped = q.unflatten(1, (kv_heads, -1))  # (batch, kv_heads, group, sequence, dim)
    out = attend_heads(grouped, k.unsqueeze(2), v.unsqueeze(2), "softmax", True, 1)
    return merge_heads(out.flatten(1, 2))
