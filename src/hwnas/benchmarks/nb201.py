"""NAS-Bench-201 (NATS-Bench topology space) with accuracies and 27 device latency tables.

A cell has six edges (0->1, 0->2, 1->2, 0->3, 1->3, 2->3), each one of five operations, so the
space has 5^6 = 15,625 cells. Data comes from the user's copy of ``nb201_acc_latency.csv.gz``.

The table has no size column, but a cell's network size follows from its genome alone
(``parameters``), so a third objective needs no other data.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.benchmarks.table import TableBenchmark, read_csv
from hwnas.errors import HwnasError
from hwnas.execute.base import SINGLE_PART, Built
from hwnas.families.nb201.cell import cell_space, parse_cell
from hwnas.families.nb201.config import NB201Config, network_cost
from hwnas.space import Arch

DATASETS = {
    "cifar10": "cifar10_test_acc_200ep",
    "cifar100": "cifar100_test_acc_200ep",
    "ImageNet16-120": "imagenet16_120_test_acc_200ep",
}
METRICS = ("accuracy", "latency", "params")
PARAMS_COLUMN = "hwnas_params"  # computed, not read: the table has no size column
CLASSES = {"cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}


def parameters(ops: dict[str, str], classes: int) -> int:
    """Weights of the tables' network (C=16, N=5) with cell ``ops``, as the ``nb201``
    family's extracted module counts them (BatchNorm's affine pair included, dead edges
    holding weights): what NAS-Bench-201 reports."""
    return network_cost(ops, NB201Config(num_classes=classes)).params


def devices(rows_header: list[str]) -> list[str]:
    return sorted(c.removeprefix("lat_") for c in rows_header if c.startswith("lat_"))


def load_nb201(
    path: str | Path,
    dataset: str = "cifar10",
    device: str = "pixel3",
    features: tuple[str, Callable[[np.ndarray], np.ndarray]] | None = None,
) -> TableBenchmark:
    """The benchmark with metrics ``accuracy`` (%, max), ``latency`` (ms, min) and
    ``params`` (weights of the network, min).

    ``features`` (a label and a map from index genomes to feature columns, such as
    ``proxies.proxy_features``) are added to the space's predictor features; the label
    joins the space's name, so runs stored with other features are not resumed."""
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
        cell_space(
            f"nb201-{dataset}-{device}" + (f"+{features[0]}" if features else ""),
            extra=features[1] if features else None,
        ),
        dict(zip(METRICS, (DATASETS[dataset], f"lat_{device}", PARAMS_COLUMN), strict=True)),
        source=str(path),
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
