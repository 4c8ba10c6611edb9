"""The NAS-Bench-201 network as a family: a one-shot super-network over the cell space.

Every edge of every cell holds all four operations that have weights or do something
(``none`` holds nothing and adds nothing); an arch picks one per edge, the same for every
cell, as NAS-Bench-201 does. The network is the one its tables were trained with: a 3x3
stem, three stages of N cells at C, 2C and 4C channels, a residual block halving the side
between stages, then BatchNorm, ReLU, global pooling and a linear classifier. ``extract``
builds the same network holding only the arch's operations, so its parameter count is the
one NAS-Bench-201 reports.

There are no elastic widths, so progressive shrinking has one phase and sorting by
importance has nothing to reorder. For the latency table the network is a chain of layers
(stem, node steps, reductions, head): a cell is a DAG, so it is cut into three node steps,
each passing on the nodes computed so far, concatenated, which keeps the catalogue at 155
node steps a stage instead of 15,625 cells.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from hwnas.families.base import ArchLike, Cost, Family, Layer, Op, Phase, SquareImageClassifier
from hwnas.families.nb201.cell import (
    EDGE_NAMES,
    NODES,
    OPERATIONS,
    cell_space,
    incoming,
    short_label,
)
from hwnas.families.nb201.config import (
    Block,
    NB201Config,
    blocks,
    network_cost,
)
from hwnas.space import Arch, Space

COMPUTING = OPERATIONS[1:]  # every op but none


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__(
            nn.ReLU(),
            nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
        )


def operation(op: str, channels: int) -> nn.Module:
    if op == "skip_connect":
        return nn.Identity()
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    return ReLUConvBN(channels, channels, 1 if op == "nor_conv_1x1" else 3)


class Cell(nn.Module):
    """Node j is the sum of its incoming edges' ops on earlier nodes; the output is node 3.
    ``ops`` says which operations each edge holds (all of them in the super-network, the
    arch's one in an extracted network); ``active`` which one it runs."""

    def __init__(self, channels: int, ops: Mapping[str, Sequence[str]]) -> None:
        super().__init__()
        self.edges = nn.ModuleDict({
            name: nn.ModuleDict({op: operation(op, channels) for op in ops[name] if op != "none"})
            for name in EDGE_NAMES
        })  # fmt: skip
        self.active: dict[str, str] = {name: ops[name][0] for name in EDGE_NAMES}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for j in range(1, NODES):
            nodes.append(node(self.edges, self.active, nodes, j))
        return nodes[-1]


def node(edges: nn.ModuleDict, active: Mapping[str, str], nodes: Sequence[torch.Tensor],
         j: int) -> torch.Tensor:  # fmt: skip
    """Node ``j``: the sum of its incoming edges' active ops on the earlier ``nodes``."""
    terms = [edges[name][active[name]](nodes[i]) for i, name in incoming(j)
             if active[name] != "none"]  # fmt: skip
    return sum(terms[1:], terms[0]) if terms else torch.zeros_like(nodes[0])


class Reduction(nn.Module):
    """NAS-Bench-201's residual block between stages: stride-2 ReLU-conv-BN, ReLU-conv-BN,
    and a 2x2 average pool then 1x1 conv on the shortcut."""

    def __init__(self, c_in: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, 2 * c_in, 3, stride=2)
        self.conv_b = ReLUConvBN(2 * c_in, 2 * c_in, 3)
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, 2), nn.Conv2d(c_in, 2 * c_in, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut(x) + self.conv_b(self.conv_a(x))


class Head(nn.Module):
    def __init__(self, channels: int, classes: int) -> None:
        super().__init__()
        self.norm, self.act = nn.BatchNorm2d(channels), nn.ReLU()
        self.classifier = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.act(self.norm(x)).mean(dim=(2, 3)))


class NodeStep(nn.Module):
    """Node ``j`` of a cell running ``active`` as a chain link: it takes the nodes so far,
    concatenated along channels, and passes them on with node j added (node 3, the cell's
    output, alone)."""

    def __init__(self, edges: nn.ModuleDict, active: Mapping[str, str], j: int) -> None:
        super().__init__()
        self.edges, self.active, self.j = edges, dict(active), j

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = list(torch.chunk(x, self.j, dim=1))
        out = node(self.edges, self.active, nodes, self.j)
        return out if self.j == NODES - 1 else torch.cat([*nodes, out], dim=1)


class NB201Network(nn.Module):
    """The network over ``ops`` (per edge, the operations it holds); every cell runs the
    ops ``set_ops`` gives."""

    def __init__(self, config: NB201Config, ops: Mapping[str, Sequence[str]]) -> None:
        super().__init__()
        self.config = config
        self.stem = nn.Sequential(
            nn.Conv2d(config.in_channels, config.channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(config.channels),
        )
        steps: list[nn.Module] = []
        for block in blocks(config):
            if block.kind == "cell":
                steps.append(Cell(block.channels, ops))
            elif block.kind == "reduce":
                steps.append(Reduction(block.channels))
        self.steps = nn.ModuleList(steps)
        self.head = Head(config.widths[-1], config.num_classes)

    def cells(self) -> list[Cell]:
        return [m for m in self.steps if isinstance(m, Cell)]

    def _reductions(self) -> list[Reduction]:
        return [m for m in self.steps if isinstance(m, Reduction)]

    def set_ops(self, ops: Mapping[str, str]) -> None:
        for cell in self.cells():
            cell.active = dict(ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for step in self.steps:
            x = step(x)
        return self.head(x)


class NB201SuperNet(NB201Network, SquareImageClassifier, Family):
    name = "nb201"
    config_class = NB201Config
    training_defaults = {"optimizer": "sgd", "learning_rate": 0.1, "weight_decay": 5e-4,
                         "warmup": 0.0, "grad_clip": 5.0, "teacher_only": 0.0,
                         "distillation": 1.0}  # fmt: skip
    """NAS-Bench-201's own recipe (SGD at 0.1, weight decay 5e-4), with the sandwich's
    in-place distillation as every family here trains."""
    small_overrides = {"channels": 4, "cells": 1}

    def __init__(self, config: NB201Config | None = None) -> None:
        super().__init__(config or NB201Config(), dict.fromkeys(EDGE_NAMES, COMPUTING))
        self._space = cell_space()
        self.active = self.teacher_arch()
        self.set_active(self.active)

    def space(self) -> Space:
        return self._space

    # -- training ------------------------------------------------------------------------
    def teacher_arch(self) -> Arch:
        """Every edge a 3x3 convolution: the largest cell, and the best in all three tables."""
        return self._space.make(dict.fromkeys(EDGE_NAMES, "nor_conv_3x3"))

    def smallest_arch(self) -> Arch:
        """Every edge a skip connection: no weights in the cells, yet the input still reaches
        the output (all ``none`` would train a constant)."""
        return self._space.make(dict.fromkeys(EDGE_NAMES, "skip_connect"))

    def label(self, arch: ArchLike) -> str:
        return "cell " + short_label(self.canonical(arch).to_dict())

    def phases(self) -> list[Phase]:
        return [Phase("cells", frozenset(self._space.names))]

    def sort_by_importance(self, inputs: torch.Tensor | None = None) -> None:
        """Nothing to sort: the network has no elastic widths or depth."""

    def set_active(self, arch: ArchLike) -> Arch:
        arch = self.canonical(arch)
        self.set_ops({name: str(arch[name]) for name in EDGE_NAMES})
        self.active = arch
        return arch

    # -- evaluating ----------------------------------------------------------------------
    def _ops(self, arch: ArchLike) -> dict[str, str]:
        arch = self.canonical(arch)
        return {name: str(arch[name]) for name in EDGE_NAMES}

    def extract(self, arch: ArchLike) -> NB201Network:
        ops = self._ops(arch)
        sub = NB201Network(self.config, {name: (op,) for name, op in ops.items()})
        own = sub.state_dict()
        sub.load_state_dict({k: v.detach().clone() for k, v in self.state_dict().items()
                             if k in own})  # fmt: skip
        sub.set_ops(ops)
        return sub.eval()

    def cost(self, arch: ArchLike) -> Cost:
        return network_cost(self._ops(arch), self.config)

    def weight_bytes(self, arch: ArchLike) -> dict[str, int]:
        """``fp32``: 4 bytes a parameter. ``int8``: BatchNorm folded into the conv before
        it (the head's, before a ReLU, kept as an fp32 scale and shift); a weight is a byte
        and each output channel carries a 4-byte bias and a 4-byte scale."""
        sub = self.extract(arch)
        layers = [m for m in sub.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
        weights = sum(m.weight.numel() for m in layers)
        channels = sum(m.weight.shape[0] for m in layers)
        return {"fp32": 4 * self.cost(arch).params,
                "int8": weights + 8 * channels + 8 * self.config.widths[-1]}  # fmt: skip

    def op_schedule(self, arch: ArchLike) -> list[Op]:
        """One op per tensor an inference writes; a ReLU-conv-BN is one op (runtimes fuse
        them), a skip edge writes nothing (its node reads the source node)."""
        ops, config = self._ops(arch), self.config
        schedule = [Op("input", (), config.in_channels * config.input_size**2)]
        previous = "input"
        for block in blocks(config):
            c, r = block.channels, block.size
            if block.kind == "stem":
                schedule.append(Op("stem", (previous,), config.channels * r * r))
                previous = "stem"
            elif block.kind == "reduce":
                name, out = f"reduce{block.index}", 2 * c * (r // 2) ** 2
                schedule += [Op(f"{name}.a", (previous,), out),
                             Op(f"{name}.b", (f"{name}.a",), out),
                             Op(f"{name}.shortcut", (previous,), out),
                             Op(name, (f"{name}.b", f"{name}.shortcut"), out)]  # fmt: skip
                previous = name
            elif block.kind == "cell":
                previous = _cell_schedule(schedule, f"cell{block.index}", previous, ops, c * r * r)
            else:
                schedule += [Op("head.act", (previous,), c * r * r),
                             Op("head.pool", ("head.act",), c),
                             Op("logits", ("head.pool",), config.num_classes)]  # fmt: skip
        return schedule

    # -- latency tables ------------------------------------------------------------------
    def layer_schedule(self, arch: ArchLike) -> list[Layer]:
        ops = self._ops(arch)
        return [
            layer for block in blocks(self.config) for layer in _layers(block, ops, self.config)
        ]

    def layer_catalogue(self) -> list[Layer]:
        every = {layer.key: layer for arch in _covering(self._space)
                 for layer in self.layer_schedule(arch)}  # fmt: skip
        return list(every.values())

    def layer_module(self, layer: Layer) -> nn.Module:
        """A copy of the layer with the weights of the first position that runs it."""
        settings = dict(layer.settings)
        if layer.kind == "stem":
            return copy.deepcopy(self.stem)
        if layer.kind == "head":
            return copy.deepcopy(self.head)
        stage = self.config.widths.index(int(layer.input_shape[0] if layer.kind == "reduce"
                                             else settings["channels"]))  # fmt: skip
        if layer.kind == "reduce":
            return copy.deepcopy(self._reductions()[stage])
        cell = self.cells()[stage * self.config.cells]
        j = int(settings["node"])
        ops = {name: str(settings.get(name, "none")) for name in EDGE_NAMES}
        # only the operations node j runs are copied (a catalogue has hundreds of layers)
        edges = nn.ModuleDict({
            name: nn.ModuleDict({ops[name]: copy.deepcopy(cell.edges[name][ops[name]])})
            for _, name in incoming(j) if ops[name] != "none"
        })  # fmt: skip
        return NodeStep(edges, ops, j)

    def layer_modules(self, arch: ArchLike) -> list[nn.Module]:
        sub = self.extract(arch)
        cells, reductions = iter(sub.cells()), iter(sub._reductions())
        modules: list[nn.Module] = []
        for block in blocks(self.config):
            if block.kind == "cell":
                cell = next(cells)
                modules += [NodeStep(cell.edges, cell.active, j) for j in range(1, NODES)]
            elif block.kind == "reduce":
                modules.append(next(reductions))
            else:
                modules.append(sub.stem if block.kind == "stem" else sub.head)
        return modules


def _cell_schedule(schedule: list[Op], name: str, source: str, ops: Mapping[str, str],
                   elements: int) -> str:  # fmt: skip
    nodes = [source]
    for j in range(1, NODES):
        terms = []
        for i, edge in incoming(j):
            if ops[edge] == "skip_connect":
                terms.append(nodes[i])
            elif ops[edge] != "none":
                schedule.append(Op(f"{name}.{edge}", (nodes[i],), elements))
                terms.append(f"{name}.{edge}")
        schedule.append(Op(f"{name}.node{j}", tuple(terms), elements))
        nodes.append(f"{name}.node{j}")
    return nodes[-1]


def _layers(block: Block, ops: Mapping[str, str], config: NB201Config) -> list[Layer]:
    c, r = block.channels, block.size
    if block.kind == "stem":
        return [Layer("stem", (("out", config.channels),), (c, r, r))]
    if block.kind == "reduce":
        return [Layer("reduce", (("in", c), ("out", 2 * c)), (c, r, r))]
    if block.kind == "head":
        return [Layer("head", (("classes", config.num_classes),), (c, r, r))]
    return [Layer("node", (("channels", c), ("node", j),
                           *((edge, ops[edge]) for _, edge in incoming(j))), (c * j, r, r))
            for j in range(1, NODES)]  # fmt: skip


def _covering(space: Space) -> list[Arch]:
    """Archs whose node steps, together, are every node step of the space: node j depends
    only on its j incoming edges, so 125 archs (every op triple into node 3, the other
    edges cycled alongside) cover node 1's 5, node 2's 25 and node 3's 125 settings."""
    archs = []
    for k in range(len(OPERATIONS) ** 3):
        a, b, c = k % 5, (k // 5) % 5, k // 25
        values = {"edge_0_3": a, "edge_1_3": b, "edge_2_3": c, "edge_0_2": a, "edge_1_2": b,
                  "edge_0_1": a}  # fmt: skip
        archs.append(space.make({name: OPERATIONS[v] for name, v in values.items()}))
    return archs
