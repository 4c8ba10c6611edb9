"""Analytic cost, op schedule and weight storage of a LLaMA-style sub-network (batch 1).

The conventions are the transformer family's (``transformer.cost``): MACs count every matrix
product, the attention's included, as ``torch.utils.flop_counter`` does (grouped keys are
broadcast over their query heads, which it counts once per query head, as the hardware
runs them); parameters count what the extracted module holds, a tied embedding once;
int8 storage is ``transformer.cost.storage``. Element-wise work (activations, masks,
scaling) happens in place; every matrix product, norm, rotation, residual add and gather
writes a new tensor.
"""

from __future__ import annotations

from collections.abc import Iterator

from hwnas.families.base import ArchLike, Cost, Op
from hwnas.families.llama.config import LlamaConfig, arch_layers
from hwnas.families.transformer.cost import storage


def cost(arch: ArchLike, config: LlamaConfig) -> Cost:
    c, n, h = config, config.context, config.hidden_size
    embeddings = c.vocab_size * h * (1 if c.tie_embeddings else 2)
    macs, params = n * h * c.vocab_size, embeddings + h
    for layer in arch_layers(arch, c):
        q, kv = layer.heads * c.dim, layer.kv_heads * c.dim
        macs += n * h * (2 * q + 2 * kv) + 2 * n * n * q + 3 * n * h * layer.hidden
        params += 2 * h + h * (2 * q + 2 * kv) + 3 * h * layer.hidden
    return Cost(macs, params)


def _matrices(arch: ArchLike, config: LlamaConfig) -> Iterator[tuple[int, int, bool]]:
    """(elements, output rows, has a bias) of every weight matrix of the extracted module."""
    c, h = config, config.hidden_size
    for _ in range(1 if c.tie_embeddings else 2):
        yield c.vocab_size * h, c.vocab_size, False
    for layer in arch_layers(arch, c):
        q, kv = layer.heads * c.dim, layer.kv_heads * c.dim
        yield from ((h * q, q, False), (h * kv, kv, False), (h * kv, kv, False), (q * h, h, False))
        yield from ((h * layer.hidden, layer.hidden, False),) * 2
        yield layer.hidden * h, h, False


def weight_bytes(arch: ArchLike, config: LlamaConfig) -> dict[str, int]:
    """``fp32``: 4 bytes per parameter. ``int8``: every weight matrix (embeddings included)
    at 1 byte per weight plus a 4-byte scale per output row; norms stay fp32."""
    return storage(cost(arch, config).params, _matrices(arch, config))


def schedule(arch: ArchLike, config: LlamaConfig) -> list[Op]:
    """The ops of one batch-1 inference of ``arch``; names as in ``Family.op_schedule``.

    ``input``, ``embed``; per layer ``l{i}.`` + ``norm1``, ``q``, ``k``, ``v``, ``q_rope``,
    ``k_rope``, ``scores``, ``context``, ``o``, ``add1``, ``norm2``, ``gate``, ``up``,
    ``mul``, ``down``, ``add2`` (``i`` the layer's place in the dense model); then ``norm``
    and ``logits``.
    """
    ops: list[Op] = []

    def op(name: str, inputs: tuple[str, ...], elements: int) -> str:
        ops.append(Op(name, inputs, elements))
        return name

    c, n, h = config, config.context, config.hidden_size
    x = op("embed", (op("input", (), n),), n * h)
    for layer in arch_layers(arch, c):
        p, q_rows, kv_rows = f"l{layer.index}.", layer.heads * c.dim, layer.kv_heads * c.dim
        normed = op(p + "norm1", (x,), n * h)
        q = op(p + "q_rope", (op(p + "q", (normed,), n * q_rows),), n * q_rows)
        k = op(p + "k_rope", (op(p + "k", (normed,), n * kv_rows),), n * kv_rows)
        v = op(p + "v", (normed,), n * kv_rows)
        mixed = op(p + "context", (op(p + "scores", (q, k), layer.heads * n * n), v), n * q_rows)
        x = op(p + "add1", (x, op(p + "o", (mixed,), n * h)), n * h)
        normed = op(p + "norm2", (x,), n * h)
        gate, up = (op(p + name, (normed,), n * layer.hidden) for name in ("gate", "up"))
        y = op(p + "down", (op(p + "mul", (gate, up), n * layer.hidden),), n * h)
        x = op(p + "add2", (x, y), n * h)
    op("logits", (op("norm", (x,), n * h),), n * c.vocab_size)
    return ops
