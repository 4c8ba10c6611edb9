"""The NAS-Bench-201 network's shape, its analytic cost, and the walk every count follows.

``blocks`` lists what the network runs in order (stem, cells, residual reductions, head),
so cost, weight bytes, the op schedule and the latency table cannot disagree about it.
Nothing here needs torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from hwnas.errors import HwnasError, KeyedError
from hwnas.families.base import Cost
from hwnas.families.nb201.cell import EDGE_NAMES
from hwnas.space import Value

STAGES = 3
_LIMITS = {"in_channels": 64, "num_classes": 1_000_000, "input_size": 1024, "channels": 1024,
           "cells": 64}  # fmt: skip
CONV_WEIGHTS = {"nor_conv_1x1": 1, "nor_conv_3x3": 9}
"""Weights per input-output channel pair of each convolution edge (ReLU-conv-BN)."""


@dataclass(frozen=True)
class NB201Config:
    """The network of the NAS-Bench-201 tables by default: ``channels`` C = 16 in the first
    stage (doubled in each of the three), ``cells`` N = 5 per stage, every cell the arch's.
    ``in_channels``, ``num_classes`` and ``input_size`` come from the task; the side must be
    a multiple of 4 since each of the two reductions halves it."""

    in_channels: int = 3
    num_classes: int = 10
    input_size: int = 32
    channels: int = 16
    cells: int = 5

    def __post_init__(self) -> None:
        for name, limit in _LIMITS.items():
            value = getattr(self, name)
            if type(value) is not int or not 1 <= value <= limit:
                raise KeyedError(name, f"expected an int in 1..{limit}, got {value!r}",
                                 prefix="nb201 config ")  # fmt: skip
        if self.input_size % 4:
            raise KeyedError("input_size", f"must be a multiple of 4 (two reductions halve "
                             f"it), got {self.input_size}", prefix="nb201 config ")  # fmt: skip

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(self.channels * 2**s for s in range(STAGES))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> NB201Config:
        if not isinstance(values, Mapping):
            raise HwnasError(f"nb201 config: expected a mapping, got {type(values).__name__}")
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields, key=str)
        if unknown:
            raise KeyedError(str(unknown[0]), f"nb201 config has no key {unknown[0]!r} "
                             f"(known: {', '.join(sorted(fields))})")  # fmt: skip
        return cls(**values)


class Block(NamedTuple):
    """One step of the network: ``kind`` is stem, cell, reduce or head; ``channels`` its
    input's (a cell keeps them, a reduction doubles them) and ``size`` its input's side."""

    kind: str
    index: int
    channels: int
    size: int


def blocks(config: NB201Config) -> Iterator[Block]:
    yield Block("stem", 0, config.in_channels, config.input_size)
    size, cell = config.input_size, 0
    for stage, width in enumerate(config.widths):
        if stage:
            yield Block("reduce", stage - 1, width // 2, size)
            size //= 2
        for _ in range(config.cells):
            yield Block("cell", cell, width, size)
            cell += 1
    yield Block("head", 0, config.widths[-1], size)


def block_cost(block: Block, ops: Mapping[str, Value | None], config: NB201Config) -> Cost:
    """MACs and parameters of one block (BatchNorm's affine pair counted, as a module's
    ``parameters()`` does; pooling, sums and ReLU do no multiply-accumulates). Edges off
    every path to the output still run and hold weights, as in the tables' network."""
    c, r = block.channels, block.size
    if block.kind == "stem":
        w = config.channels
        return Cost(9 * c * w * r * r, 9 * c * w + 2 * w)
    if block.kind == "reduce":
        out, half = 2 * c, (r // 2) ** 2
        weights = 9 * c * out + 9 * out * out + c * out  # conv a, conv b, 1x1 shortcut
        return Cost(weights * half, weights + 4 * out)
    if block.kind == "head":
        return Cost(c * config.num_classes, 2 * c + (c + 1) * config.num_classes)
    macs = params = 0
    for name in EDGE_NAMES:
        k = CONV_WEIGHTS.get(str(ops[name]), 0)
        macs, params = macs + k * c * c * r * r, params + (k * c * c + 2 * c if k else 0)
    return Cost(macs, params)


def network_cost(ops: Mapping[str, Value | None], config: NB201Config) -> Cost:
    costs = [block_cost(b, ops, config) for b in blocks(config)]
    return Cost(sum(c.macs for c in costs), sum(c.params for c in costs))
