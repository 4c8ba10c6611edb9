"""Analytic cost, op schedule and weight storage of a transformer sub-network (batch 1).

MACs count what ``torch.utils.flop_counter`` counts (every matrix product, the attention's
included; no element-wise work), parameters what the extracted module holds (tied token
weights once), and the tests hold both to the counters. The op schedule follows the
MobileNet's conventions: element-wise work (activations, masks, scaling, normalisation of
attention weights, the expert outputs' accumulation) happens in place; every matrix
product, norm, residual add and gather writes a new tensor.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

from hwnas.families.base import ArchLike, Cost, Op
from hwnas.families.transformer.config import (
    ArchLayer,
    TransformerConfig,
    arch_layers,
    arch_width,
    capacity,
)


def _linear_chunks(config: TransformerConfig) -> tuple[int, int]:
    """(chunk size, chunks) of causal linear attention over the sequence."""
    c = min(config.linear_chunk, config.sequence)
    return c, math.ceil(config.sequence / c)


def _attention_macs(layer: ArchLayer, config: TransformerConfig) -> int:
    """The products between queries, keys and values (not the projections)."""
    n, head_dim = config.sequence, config.head_dim
    if layer.attention != "linear":
        return 2 * n * n * head_dim * layer.heads
    if not config.causal:
        return layer.heads * (2 * n * head_dim * head_dim + n * head_dim)
    c, chunks = _linear_chunks(config)
    padded = c * chunks
    per_head = 2 * padded * head_dim * head_dim + padded * head_dim + 2 * padded * c * head_dim
    return layer.heads * per_head


def _ffn(layer: ArchLayer, width: int, config: TransformerConfig) -> tuple[int, int]:
    """(MACs, parameters) of a layer's feed-forward part."""
    n, hidden = config.sequence, layer.hidden
    if layer.feed_forward == "mlp":
        return 2 * n * width * hidden, 2 * width * hidden
    if layer.feed_forward == "glu":
        return 3 * n * width * hidden, 3 * width * hidden
    rows = capacity(n, layer.top_k, config)
    macs = n * width * config.experts + 2 * rows * width * hidden
    return macs, 2 * width * hidden + config.experts * width


def _ends(width: int, config: TransformerConfig) -> tuple[int, int]:
    """(MACs, parameters) of the embedding and the head together."""
    n = config.sequence
    if config.input == "tokens":
        return n * width * config.vocab_size, (config.vocab_size + n + 2) * width
    patch = config.in_channels * config.patch_size**2
    macs = (n - 1) * patch * width + width * config.outputs
    params = (patch + 1 + 1 + n + 2) * width + (width + 1) * config.outputs
    return macs, params


def cost(arch: ArchLike, config: TransformerConfig) -> Cost:
    width = arch_width(arch)
    n = config.sequence
    macs, params = _ends(width, config)
    for layer in arch_layers(arch, config):
        inner = layer.heads * config.head_dim
        ffn_macs, ffn_params = _ffn(layer, width, config)
        macs += 4 * n * width * inner + _attention_macs(layer, config) + ffn_macs
        params += 4 * width + 4 * width * inner + ffn_params
    return Cost(macs, params)


def _matrices(arch: ArchLike, config: TransformerConfig) -> Iterator[tuple[int, int, bool]]:
    """(elements, output rows, has a bias) of every weight matrix of the extracted module."""
    width, n = arch_width(arch), config.sequence
    if config.input == "tokens":
        yield config.vocab_size * width, config.vocab_size, False  # tied with the head
        yield n * width, n, False  # positions
    else:
        yield config.in_channels * config.patch_size**2 * width, width, True
        yield n * width, n, False
        yield width * config.outputs, config.outputs, True
    for layer in arch_layers(arch, config):
        inner = layer.heads * config.head_dim
        for _ in range(3):
            yield width * inner, inner, False
        yield inner * width, width, False
        projections = {"mlp": 2, "glu": 3, "moe": 2}[layer.feed_forward]
        yield from ((width * layer.hidden, layer.hidden, False),) * (projections - 1)
        yield layer.hidden * width, width, False
        if layer.feed_forward == "moe":
            yield width * config.experts, config.experts, False


def weight_bytes(arch: ArchLike, config: TransformerConfig) -> dict[str, int]:
    """``fp32``: 4 bytes per parameter. ``int8``: every weight matrix (embeddings included)
    at 1 byte per weight plus a 4-byte float scale per output row and a 4-byte int32 bias
    where it has one; norms and the class token stay fp32."""
    return storage(cost(arch, config).params, _matrices(arch, config))


def storage(params: int, matrices: Iterable[tuple[int, int, bool]]) -> dict[str, int]:
    """``weight_bytes`` of a model of ``params`` parameters whose weight matrices are
    ``matrices`` (elements, output rows, has a bias); the rest (norms) stays fp32. Shared
    with the LLaMA family, whose extracted models quantize the same way."""
    matrices = list(matrices)
    in_matrices = sum(e for e, _, _ in matrices) + sum(r for _, r, bias in matrices if bias)
    int8 = sum(e + 4 * rows + 4 * rows * bias for e, rows, bias in matrices)
    return {"fp32": 4 * params, "int8": int8 + 4 * (params - in_matrices)}


def schedule(arch: ArchLike, config: TransformerConfig) -> list[Op]:
    """The ops of one batch-1 inference of ``arch``; names as in ``Family.op_schedule``.

    ``input``, ``embed`` (token lookup or patch projection; for images ``embed.tokens`` with
    the class token), ``embed.position``; per layer ``l{i}.`` + ``norm1``, ``q``, ``k``,
    ``v``, the attention's tensors (``scores``; for linear attention ``state``,
    ``prefix``, ``k_sum``, ``k_prefix`` and, causal, ``scores`` within chunks), ``context``,
    ``o``, ``add1``, ``norm2``, the feed-forward's (``up``, ``down``; ``gate`` and ``mul``
    for a GLU; ``router``, ``out`` and per expert ``e{j}.gather``, ``e{j}.up``,
    ``e{j}.down``), ``add2``; then ``norm`` and ``logits``.
    """
    ops: list[Op] = []

    def op(name: str, inputs: tuple[str, ...], elements: int) -> str:
        ops.append(Op(name, inputs, elements))
        return name

    c, width, n = config, arch_width(arch), config.sequence
    if c.input == "tokens":
        x = op("input", (), n)
        x = op("embed", (x,), n * width)
    else:
        x = op("input", (), c.in_channels * c.image_size**2)
        x = op("embed", (x,), (n - 1) * width)
        x = op("embed.tokens", (x,), n * width)
    x = op("embed.position", (x,), n * width)
    for layer in arch_layers(arch, c):
        p, inner = f"l{layer.index}.", layer.heads * c.head_dim
        h = op(p + "norm1", (x,), n * width)
        q, k, v = (op(p + name, (h,), n * inner) for name in ("q", "k", "v"))
        context_inputs = _attention_ops(op, p, layer, c, q, k, v)
        mixed = op(p + "context", context_inputs, n * inner)
        x = op(p + "add1", (x, op(p + "o", (mixed,), n * width)), n * width)
        h = op(p + "norm2", (x,), n * width)
        if layer.feed_forward == "mlp":
            y = op(p + "down", (op(p + "up", (h,), n * layer.hidden),), n * width)
        elif layer.feed_forward == "glu":
            gate, up = op(p + "gate", (h,), n * layer.hidden), op(p + "up", (h,), n * layer.hidden)
            y = op(p + "down", (op(p + "mul", (gate, up), n * layer.hidden),), n * width)
        else:
            router = op(p + "router", (h,), n * c.experts)
            y = op(p + "out", (router,), n * width)
            rows = capacity(n, layer.top_k, c)
            for e in range(c.experts):
                gathered = op(p + f"e{e}.gather", (h, router), rows * width)
                up = op(p + f"e{e}.up", (gathered,), rows * layer.hidden // c.experts)
                op(p + f"e{e}.down", (up,), rows * width)
        x = op(p + "add2", (x, y), n * width)
    if c.input == "tokens":
        op("logits", (op("norm", (x,), n * width),), n * c.vocab_size)
    else:
        op("logits", (op("norm", (x,), width),), c.outputs)
    return ops


def _attention_ops(op, p: str, layer: ArchLayer, config: TransformerConfig, q, k, v) -> tuple:
    """Write the attention's intermediate tensors; returns what ``context`` reads."""
    n, heads, head_dim = config.sequence, layer.heads, config.head_dim
    if layer.attention != "linear":
        return (op(p + "scores", (q, k), heads * n * n), v)
    if not config.causal:
        state = op(p + "state", (k, v), heads * head_dim * head_dim)
        return (q, state, op(p + "k_sum", (k,), heads * head_dim))
    c, chunks = _linear_chunks(config)
    if chunks * c != n:  # zero-padded copies of q, k and v
        q = k = v = op(p + "padded", (q, k, v), 3 * heads * chunks * c * head_dim)
    state = op(p + "state", (k, v), heads * chunks * head_dim * head_dim)
    prefix = op(p + "prefix", (state,), heads * chunks * head_dim * head_dim)
    k_prefix = op(p + "k_prefix", (op(p + "k_sum", (k,), heads * chunks * head_dim),),
                  heads * chunks * head_dim)  # fmt: skip
    scores = op(p + "scores", (q, k), heads * chunks * c * c)
    return (q, prefix, k_prefix, scores, v)
