"""NAS-Bench-201 (NATS-Bench topology space) with accuracies and 27 device latency tables.

A cell has six edges (0->1, 0->2, 1->2, 0->3, 1->3, 2->3), each one of five operations, so the
space has 5^6 = 15,625 cells. Data comes from the user's copy of ``nb201_acc_latency.csv.gz``.

The table has no size column, but a cell's network size follows from its genome alone
(``parameters``), so a third objective needs no other data.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.benchmarks.table import TableBenchmark, read_csv
from hwnas.errors import HwnasError
from hwnas.execute.base import SINGLE_PART, Built
from hwnas.space import Arch

OPERATIONS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
EDGE_NAMES = tuple(f"edge_{i}_{j}" for i, j in EDGES)
DATASETS = {
    "cifar10": "cifar10_test_acc_200ep",
    "cifar100": "cifar100_test_acc_200ep",
    "ImageNet16-120": "imagenet16_120_test_acc_200ep",
}
_PATHS = ((3,), (0, 4), (1, 5), (0, 2, 5))  # input->output paths, as edge indices
METRICS = ("accuracy", "latency", "params")
PARAMS_COLUMN = "hwnas_params"  # computed, not read: the table has no size column
CLASSES = {"cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}
STAGE_CHANNELS = (16, 32, 64)  # the network of the table: C = 16, N = 5 cells per stage
CELLS_PER_STAGE = 5


def parameters(ops: dict[str, str], classes: int) -> int:
    """Weights of the NAS-Bench-201 network (C=16, N=5) with cell ``ops``, BatchNorm's
    affine pair included, as its PyTorch module counts them: dead edges still hold weights.

    Stem 3x3 conv + BN; three stages of 5 cells at 16, 32, 64 channels, each convolution
    edge ReLU-conv-BN (3x3: 9C^2 + 2C, 1x1: C^2 + 2C; pool, skip and none hold none);
    between stages a residual block (two 3x3 ReLU-conv-BN, the first with stride 2, and a
    1x1 shortcut after a 2x2 pool); a last BN and the classifier."""
    conv3 = sum(op == "nor_conv_3x3" for op in ops.values())
    conv1 = sum(op == "nor_conv_1x1" for op in ops.values())
    total = 3 * 16 * 9 + 2 * 16  # stem
    for c in STAGE_CHANNELS:
        total += CELLS_PER_STAGE * (conv3 * (9 * c * c + 2 * c) + conv1 * (c * c + 2 * c))
    for c_in, c_out in zip(STAGE_CHANNELS[:-1], STAGE_CHANNELS[1:], strict=True):
        total += 9 * c_in * c_out + 2 * c_out + 9 * c_out * c_out + 2 * c_out + c_in * c_out
    last = STAGE_CHANNELS[-1]
    return total + 2 * last + last * classes + classes


def parse_cell(arch_str: str) -> dict[str, str]:
    """``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` -> {edge name: op}."""
    ops = [t.split("~")[0] for part in arch_str.strip("|").split("|+|") for t in part.split("|")]
    if len(ops) != len(EDGES) or any(op not in OPERATIONS for op in ops):
        raise HwnasError(f"not a NAS-Bench-201 cell string: {arch_str!r}")
    return dict(zip(EDGE_NAMES, ops, strict=True))


def effective_edges(genome: np.ndarray) -> np.ndarray:
    """Op index per edge with edges off every input->output path set to ``none`` (0).

    Such edges cannot change the cell's output, so accuracy depends on the effective cell;
    latency may still depend on the raw ops (a runtime can execute dead branches).
    """
    ops = np.asarray(genome)
    live = ops != 0
    reach = np.ones((len(ops), 4), dtype=bool)  # reach[:, n]: node n reachable from input
    for n in (1, 2, 3):
        reach[:, n] = np.any(
            [live[:, e] & reach[:, i] for e, (i, j) in enumerate(EDGES) if j == n], 0
        )
    leads = np.ones((len(ops), 4), dtype=bool)  # leads[:, n]: output reachable from node n
    for n in (2, 1, 0):
        leads[:, n] = np.any(
            [live[:, e] & leads[:, j] for e, (i, j) in enumerate(EDGES) if i == n], 0
        )
    keep = np.column_stack(
        [live[:, e] & reach[:, i] & leads[:, j] for e, (i, j) in enumerate(EDGES)]
    )
    return np.where(keep, ops, 0)


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


def devices(rows_header: list[str]) -> list[str]:
    return sorted(c.removeprefix("lat_") for c in rows_header if c.startswith("lat_"))


def load_nb201(
    path: str | Path, dataset: str = "cifar10", device: str = "pixel3"
) -> TableBenchmark:
    """The benchmark with metrics ``accuracy`` (%, max), ``latency`` (ms, min) and
    ``params`` (weights of the network, min)."""
    if dataset not in DATASETS:
        raise HwnasError(
            f"unknown NAS-Bench-201 dataset {dataset!r}; choose from {', '.join(DATASETS)}"
        )
    rows = read_csv(path)
    if "arch_str" not in rows[0]:
        raise HwnasError(f"{path}: no 'arch_str' column; is this nb201_acc_latency.csv.gz?")
    known = devices(list(rows[0]))
    if device not in known:
        raise HwnasError(f"unknown device {device!r} in {path}; choose from {', '.join(known)}")
    cells = []
    for line, row in enumerate(rows, start=2):
        try:
            ops = parse_cell(row["arch_str"])
        except HwnasError as exc:
            raise HwnasError(f"{path}:{line}: {exc}") from None
        cells.append({**row, **ops, PARAMS_COLUMN: str(parameters(ops, CLASSES[dataset]))})
    return TableBenchmark(
        cells,
        EDGE_NAMES,
        dict(zip(METRICS, (DATASETS[dataset], f"lat_{device}", PARAMS_COLUMN), strict=True)),
        name=f"nb201-{dataset}-{device}",
        source=str(path),
        encoder=cell_features,
        options={edge: OPERATIONS for edge in EDGE_NAMES},
    )


class _Delayed:
    """The table's answer after ``delay_s``: an evaluation's cost stood in for, so executors
    are measured on a table as they would be on real work."""

    def __init__(self, table: TableBenchmark, delay_s: float) -> None:
        self.table, self.delay_s, self.metrics = table, delay_s, table.metrics

    def evaluate(self, arch: Arch) -> dict[str, float]:
        time.sleep(self.delay_s)
        return self.table.evaluate(arch)


def worker_evaluators(context: Mapping[str, Any]) -> Built:
    """The ``nb201`` workload on a worker: ``path``, ``dataset``, ``device`` as for
    ``load_nb201``; ``delay_s`` (default 0) seconds added to each evaluation."""
    table = load_nb201(context["path"], context.get("dataset", "cifar10"),
                       context.get("device", "pixel3"))  # fmt: skip
    delay = float(context.get("delay_s", 0.0))
    return Built(table.space, {SINGLE_PART.name: _Delayed(table, delay) if delay else table})
