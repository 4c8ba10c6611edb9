"""The NAS-Bench-201 network with every edge a weighted mixture of the five operations: the
super-network gradient one-shot search (DARTS, PC-DARTS) learns architecture weights on.

One set of architecture weights (``alphas``, six edges by five operations) is shared by
every cell, as the NAS-Bench-201 search space ties them, so the derived cell is one arch of
the ``nb201`` family's space. The stem, the residual reductions and the head are the
family's own modules, so the network is the one NAS-Bench-201's tables were trained with.

PC-DARTS's two changes are options: ``partial`` sends only 1/K of an edge's channels
through the mixture (the rest skip it) and shuffles channels after, which divides the
mixture's activation memory by about K; ``edge_normalisation`` weighs each edge into a node
by a softmax of its own weight (``betas``), which steadies the choice partial channels make
noisy.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from hwnas.families.nb201.cell import EDGE_NAMES, NODES, OPERATIONS, incoming
from hwnas.families.nb201.config import NB201Config, blocks
from hwnas.families.nb201.network import Head, Reduction, operation


class MixedEdge(nn.Module):
    """An edge running every operation on the first ``channels // partial`` channels and
    summing them by ``weights`` (``none`` adds nothing, yet takes part in the softmax); the
    other channels pass through unchanged, and the two parts are shuffled together."""

    def __init__(self, channels: int, partial: int) -> None:
        super().__init__()
        if channels % partial:
            raise ValueError(f"partial channels 1/{partial} of {channels} is not a whole number")
        self.partial, self.width = partial, channels // partial
        self.ops = nn.ModuleDict({op: operation(op, self.width) for op in OPERATIONS[1:]})

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        mixed, rest = x[:, : self.width], x[:, self.width :]
        out = sum(w * self.ops[op](mixed) for w, op in zip(weights[1:], OPERATIONS[1:],
                                                            strict=True))  # fmt: skip
        if self.partial == 1:
            return out
        joined = torch.cat([out, rest], dim=1)
        n, c, h, w = joined.shape
        return (
            joined.view(n, self.partial, c // self.partial, h, w)
            .transpose(1, 2)
            .reshape(n, c, h, w)
        )


class MixedCell(nn.Module):
    def __init__(self, channels: int, partial: int) -> None:
        super().__init__()
        self.edges = nn.ModuleDict({name: MixedEdge(channels, partial) for name in EDGE_NAMES})

    def forward(
        self, x: torch.Tensor, weights: Mapping[str, torch.Tensor],
        edge_weights: Mapping[str, torch.Tensor] | None,
    ) -> torch.Tensor:  # fmt: skip
        nodes = [x]
        for j in range(1, NODES):
            terms = []
            for i, name in incoming(j):
                term = self.edges[name](nodes[i], weights[name])
                terms.append(term if edge_weights is None else edge_weights[name] * term)
            nodes.append(sum(terms[1:], terms[0]))
        return nodes[-1]


class OneShotNB201(nn.Module):
    """The mixed network over ``config``; ``alphas`` and ``betas`` are the architecture
    parameters (``architecture_parameters``), the rest its weights (``weights``).

    ``mask``, when set, is an (edges, operations) 0/1 tensor multiplied into the softmax
    and renormalised: how an operation is taken out of an edge, or an edge fixed to one
    operation, for perturbation-based selection."""

    def __init__(
        self, config: NB201Config, partial: int = 1, edge_normalisation: bool = False
    ) -> None:
        super().__init__()
        self.config = config
        self.stem = nn.Sequential(
            nn.Conv2d(config.in_channels, config.channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(config.channels),
        )
        steps: list[nn.Module] = []
        for block in blocks(config):
            if block.kind == "cell":
                steps.append(MixedCell(block.channels, partial))
            elif block.kind == "reduce":
                steps.append(Reduction(block.channels))
        self.steps = nn.ModuleList(steps)
        self.head = Head(config.widths[-1], config.num_classes)
        self.alphas = nn.Parameter(1e-3 * torch.randn(len(EDGE_NAMES), len(OPERATIONS)))
        self.betas = nn.Parameter(torch.zeros(len(EDGE_NAMES))) if edge_normalisation else None
        self.mask: torch.Tensor | None = None

    def architecture_parameters(self) -> list[nn.Parameter]:
        return [self.alphas] + ([self.betas] if self.betas is not None else [])

    def weights(self) -> list[nn.Parameter]:
        own = {id(p) for p in self.architecture_parameters()}
        return [p for p in self.parameters() if id(p) not in own]

    def operation_weights(self) -> torch.Tensor:
        """Per edge, each operation's weight in the mixture (rows sum to 1)."""
        weights = torch.softmax(self.alphas, dim=-1)
        if self.mask is not None:
            weights = weights * self.mask
            weights = weights / weights.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        return weights

    def _edge_weights(self) -> dict[str, torch.Tensor] | None:
        if self.betas is None:
            return None
        weights = {}
        for j in range(1, NODES):
            edges = [name for _, name in incoming(j)]
            index = [EDGE_NAMES.index(name) for name in edges]
            weights.update(zip(edges, torch.softmax(self.betas[index], dim=0), strict=True))
        return weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = dict(zip(EDGE_NAMES, self.operation_weights(), strict=True))
        edge_weights = self._edge_weights()
        x = self.stem(x)
        for step in self.steps:
            x = step(x, weights, edge_weights) if isinstance(step, MixedCell) else step(x)
        return self.head(x)
