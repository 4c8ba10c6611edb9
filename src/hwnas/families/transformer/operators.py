"""The transformer's operators as functions of tensors, shared by the elastic super-network
(which calls them on sliced weights) and the extracted modules (on copied ones), so the two
compute the same thing by construction. All of them export to ONNX (opset 17).

Attention kinds, all on the same Q/K/V/O projections:

- ``softmax``: scaled dot-product attention.
- ``sigmoid``: each weight is ``sigmoid(q.k / sqrt(d) - log n)`` for a sequence of n, with no
  normalisation across keys; the ``-log n`` bias keeps the initial attention mass near one,
  as "Theory, Analysis, and Best Practices for Sigmoid Self-Attention" (Ramapuram et al.,
  2024) recommends.
- ``linear``: ``phi(q) . sum phi(k) v^T / phi(q) . sum phi(k)`` with ``phi = elu + 1``
  (Katharopoulos et al., 2020); causal sums run chunk by chunk (quadratic only inside a
  chunk), so the cost grows linearly with the sequence.

Mixture of experts (``route``): top-k routing on a softmax over experts, each expert taking
at most ``capacity`` tokens (earliest first, so a token's fate depends only on the tokens
before it: causal), with the Switch Transformer's load-balancing loss.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F

EPSILON = 1e-6


def split_heads(x: torch.Tensor, heads: int) -> torch.Tensor:
    """(batch, sequence, heads * dim) -> (batch, heads, sequence, dim)."""
    batch, sequence, inner = x.shape
    return x.reshape(batch, sequence, heads, inner // heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    batch, heads, sequence, dim = x.shape
    return x.transpose(1, 2).reshape(batch, sequence, heads * dim)


def future_mask(n: int, device: torch.device) -> torch.Tensor:
    """True above the diagonal: the keys a causal query at each row may not see."""
    return torch.ones(n, n, dtype=torch.bool, device=device).triu(1)


def phi(x: torch.Tensor) -> torch.Tensor:
    """Linear attention's positive feature map."""
    return F.elu(x) + 1


def linear_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool, chunk: int
) -> torch.Tensor:
    q, k = phi(q), phi(k)
    if not causal:
        state = k.transpose(-2, -1) @ v
        norm = q @ k.sum(-2, keepdim=True).transpose(-2, -1)
        return (q @ state) / (norm + EPSILON)
    batch, heads, n, dim = q.shape
    c = min(chunk, n)
    chunks = math.ceil(n / c)
    pad = chunks * c - n
    if pad:  # zero keys and values after phi contribute nothing
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
    q, k, v = (t.reshape(batch, heads, chunks, c, t.shape[-1]) for t in (q, k, v))
    kv = k.transpose(-2, -1) @ v  # each chunk's sum of k v^T
    state = kv.cumsum(2) - kv  # the sums over every earlier chunk
    k_sum = k.sum(3, keepdim=True)
    k_prefix = k_sum.cumsum(2) - k_sum
    scores = (q @ k.transpose(-2, -1)).masked_fill(future_mask(c, q.device), 0.0)
    numerator = q @ state + scores @ v
    norm = q @ k_prefix.transpose(-2, -1) + scores.sum(-1, keepdim=True)
    out = numerator / (norm + EPSILON)
    return out.reshape(batch, heads, chunks * c, -1)[:, :, :n]


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, kind: str, causal: bool,
    chunk: int,
) -> torch.Tensor:  # fmt: skip
    """Multi-head attention of projected queries, keys and values (batch, sequence, inner)."""
    q, k, v = (split_heads(t, heads) for t in (q, k, v))
    return merge_heads(attend_heads(q, k, v, kind, causal, chunk))


def attend_heads(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kind: str, causal: bool, chunk: int
) -> torch.Tensor:
    """Attention of queries, keys and values split into heads (..., sequence, dim).

    The leading axes broadcast (softmax and sigmoid), so grouped-query attention passes
    queries as (batch, groups, heads per group, sequence, dim) against keys and values of
    (batch, groups, 1, sequence, dim): each group's keys serve its heads without a copy."""
    if kind == "linear":
        return linear_attention(q, k, v, causal, chunk)
    n = q.shape[-2]
    scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    if kind == "softmax":
        if causal:
            scores = scores.masked_fill(future_mask(n, q.device), float("-inf"))
        weights = scores.softmax(-1)
    elif kind == "sigmoid":
        weights = torch.sigmoid(scores - math.log(n))
        if causal:
            weights = weights.masked_fill(future_mask(n, q.device), 0.0)
    else:
        raise ValueError(f"unknown attention {kind!r}")
    return weights @ v


def gated(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """SwiGLU's gating of the up projection (Shazeer, 2020)."""
    return F.silu(gate) * up


def route(
    x: torch.Tensor,
    logits: torch.Tensor,
    experts: Sequence[Callable[[torch.Tensor], torch.Tensor]],
    top_k: int,
    capacity: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixture of experts over ``x`` (batch, sequence, width) with router ``logits`` (batch,
    sequence, experts): ``(output, load-balancing loss)``.

    Each token goes to its ``top_k`` most probable experts. One expert is weighted by its
    probability (Switch Transformer), so the router learns from the task's loss; several by
    their probabilities renormalised over the chosen ones (GShard). Within each sequence an
    expert takes its first ``capacity`` tokens in order; a token beyond that gets nothing
    from it (its residual path carries it). Sequences are routed apart, so a sequence's
    output never depends on the rest of its batch, and every expert runs on exactly
    ``capacity`` rows per sequence, padding included, so the cost is fixed.
    """
    count, width = logits.shape[-1], x.shape[-1]
    probs = logits.softmax(-1)
    chosen, index = probs.topk(top_k, dim=-1)
    if top_k > 1:
        chosen = chosen / chosen.sum(-1, keepdim=True)
    assigned = torch.zeros_like(probs).scatter(-1, index, 1.0)
    weights = torch.zeros_like(probs).scatter(-1, index, chosen)
    queue = assigned.cumsum(1) * assigned
    kept = assigned * (queue <= capacity).to(assigned.dtype)
    weights = weights * kept
    first = torch.arange(x.shape[1], 0, -1, dtype=x.dtype, device=x.device)  # earlier first
    out = torch.zeros_like(x)
    for e, expert in enumerate(experts):
        rows = (kept[..., e] * first).topk(capacity, dim=1).indices
        spread = rows.unsqueeze(-1).expand(-1, -1, width)
        scale = weights[..., e].gather(1, rows).unsqueeze(-1)
        out = out.scatter_add(1, spread, expert(x.gather(1, spread)) * scale)
    share = assigned.mean((0, 1)) / top_k  # fraction of assignments each expert received
    balance = count * (share * probs.mean((0, 1))).sum()
    return out, balance
