"""The NAS-Bench-201 cell: its space, its string form and what its genome implies.

A cell is a DAG of four nodes; each of its six edges (0->1, 0->2, 1->2, 0->3, 1->3, 2->3)
runs one of five operations, so the space has 5^6 = 15,625 cells. This is the one definition
both the tabular benchmark and the network family use, so an arch found in one is the same
arch in the other. Nothing here needs torch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from hwnas.errors import HwnasError
from hwnas.space import Space, Value, categorical

OPERATIONS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
"""In the order the genome's indices use: ``none`` is 0, so a dead edge is a zero."""
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
EDGE_NAMES = tuple(f"edge_{i}_{j}" for i, j in EDGES)
NODES = 4
CELLS = len(OPERATIONS) ** len(EDGES)
"""How many cells the space has (15,625): the length of an array indexed by genome code."""
SHORT = {"none": "-", "skip_connect": "s", "nor_conv_1x1": "1", "nor_conv_3x3": "3",
         "avg_pool_3x3": "p"}  # fmt: skip
_PATHS = ((3,), (0, 4), (1, 5), (0, 2, 5))  # input->output paths, as edge indices


def cell_space(
    name: str = "nb201",
    encoder: bool = True,
    extra: Callable[[np.ndarray], np.ndarray] | None = None,
) -> Space:
    """The 15,625 cells, with ``cell_features`` as the predictors' domain features.

    ``extra`` maps index genomes to more columns appended to those (a cell's zero-cost
    proxies, say), so a predictor-driven searcher learns from them without knowing what
    they are."""
    choices = [categorical(edge, OPERATIONS) for edge in EDGE_NAMES]
    if not encoder:
        return Space(choices, name=name)
    if extra is None:
        return Space(choices, name=name, encoder=cell_features)

    def features(genome: np.ndarray) -> np.ndarray:
        return np.column_stack([cell_features(genome), extra(genome)])

    return Space(choices, name=name, encoder=features)


def incoming(node: int) -> list[tuple[int, str]]:
    """(source node, edge name) of every edge into ``node``, sources in order."""
    return [(i, name) for (i, j), name in zip(EDGES, EDGE_NAMES, strict=True) if j == node]


def parse_cell(arch_str: str) -> dict[str, str]:
    """``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` -> {edge name: op}."""
    ops = [t.split("~")[0] for part in arch_str.strip("|").split("|+|") for t in part.split("|")]
    if len(ops) != len(EDGES) or any(op not in OPERATIONS for op in ops):
        raise HwnasError(f"not a NAS-Bench-201 cell string: {arch_str!r}")
    return dict(zip(EDGE_NAMES, ops, strict=True))


def genome_string(genome: np.ndarray) -> str:
    """``cell_string`` of an index genome (op index per edge, ``EDGE_NAMES`` order)."""
    ops = zip(EDGE_NAMES, (OPERATIONS[int(i)] for i in genome), strict=True)
    return cell_string(dict(ops))


def cell_string(ops: Mapping[str, Value | None]) -> str:
    """The inverse of ``parse_cell``: the form NAS-Bench-201's tables and papers use."""
    nodes = ["|".join(f"{ops[name]}~{i}" for i, name in incoming(j)) for j in range(1, NODES)]
    return "|" + "|+|".join(nodes) + "|"


def short_label(ops: Mapping[str, Value | None]) -> str:
    """One character per edge, grouped by the node it enters: ``3|s1|13p``."""
    return "|".join("".join(SHORT[str(ops[name])] for _, name in incoming(j))
                    for j in range(1, NODES))  # fmt: skip


def effective_edges(genome: np.ndarray) -> np.ndarray:
    """Op index per edge with edges off every input->output path set to ``none`` (0).

    Such edges cannot change the cell's output, so accuracy depends on the effective cell;
    latency may still depend on the raw ops (a runtime can execute dead branches).
    """
    ops = np.asarray(genome)
    live = ops != 0
    reach = np.ones((len(ops), NODES), dtype=bool)  # reach[:, n]: node n reachable from input
    for n in (1, 2, 3):
        reach[:, n] = np.any(
            [live[:, e] & reach[:, i] for e, (i, j) in enumerate(EDGES) if j == n], 0
        )
    leads = np.ones((len(ops), NODES), dtype=bool)  # leads[:, n]: output reachable from node n
    for n in (2, 1, 0):
        leads[:, n] = np.any(
            [live[:, e] & leads[:, j] for e, (i, j) in enumerate(EDGES) if i == n], 0
        )
    keep = np.column_stack(
        [live[:, e] & reach[:, i] & leads[:, j] for e, (i, j) in enumerate(EDGES)]
    )
    return np.where(keep, ops, 0)


def genome_codes(genome: np.ndarray) -> np.ndarray:
    """Each index genome as one integer in [0, CELLS): its digits in base 5, edge 0 first,
    so that anything known per cell can be an array indexed by code."""
    weights = len(OPERATIONS) ** np.arange(len(EDGES) - 1, -1, -1)
    return np.asarray(genome, dtype=np.int64) @ weights


def effective_genomes() -> np.ndarray:
    """The distinct effective cells (9,445 of the 15,625), as index genomes: the networks
    the cells compute, since cells that differ only on dead edges compute the same one."""
    every = np.indices((len(OPERATIONS),) * len(EDGES)).reshape(len(EDGES), -1).T
    return np.unique(effective_edges(every), axis=0)


def keeps_a_path(dead: set[int]) -> bool:
    """Whether some input->output path avoids every edge index in ``dead``: a cell whose
    every path has a ``none`` edge outputs zeros (10% in the table, whatever else it holds)."""
    return any(dead.isdisjoint(path) for path in _PATHS)


def cell_features(genome: np.ndarray) -> np.ndarray:
    """Domain features: effective ops one-hot and counts, raw op counts (dead branches may
    still run and cost latency), and per-path depth of convolutions."""
    eff = effective_edges(genome)
    raw = np.column_stack([(np.asarray(genome) == k).sum(1) for k in range(len(OPERATIONS))])
    onehot = np.concatenate([(eff == k).astype(float) for k in range(len(OPERATIONS))], axis=1)
    counts = np.column_stack([(eff == k).sum(1) for k in range(len(OPERATIONS))])
    paths = []
    for path in _PATHS:
        ops = eff[:, list(path)]
        open_ = np.all(ops != 0, axis=1)
        paths += [open_, np.where(open_, np.isin(ops, (2, 3)).sum(1), 0)]
    return np.column_stack([onehot, counts, raw, *paths]).astype(float)
