"""LINAS with zero-cost proxies as predictor features on NAS-Bench-201 (issue 15, point 5),
beside the same search with perfect or borrowed features for each objective: how much of
the hypervolume any accuracy proxy could add at most, how much the latency noise costs, and
whether the searcher itself or the information it gets is what limits it.

    python bench/proxy_linas.py --table ../shared/benchmarks/nb201/nb201_acc_latency.csv.gz \\
        --cache runs/bench15-cache/part1 --cache runs/bench15-cache/part2 \\
        --out runs/bench15-linas [--seeds 10] [--budget 400] [--variants plain,proxies,...]

Each variant is ``hwnas bench nb201 --searchers linas`` on cifar10 x pixel3 in its own
folder, with the space's own features plus the parts its name joins with ``+``:
- ``plain``: nothing more, as in section 1;
- ``proxies``: the cached proxies' rank quantiles (``--proxy-cache``);
- ``true-accuracy`` / ``true-latency``: the table's own cifar10 accuracy / Pixel 3 latency
  of every cell, the objective itself without noise: bounds, not searches;
- ``DEVICE-latency`` (``raspi4-latency``, any device column of the table): another device's
  measured latency, a lookup table a user could have of a related device.
``true-accuracy+true-latency`` gives the searcher both objectives exactly: what it reaches
when nothing is left to learn.

Prints one JSON line per variant: the hypervolume ratio at 50, 100, 200 and the budget
(mean, sd and per seed), evaluations to 95% and 99%, and the search's own seconds.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np

from hwnas.benchmarks.compare import run_comparison
from hwnas.benchmarks.nb201 import load_nb201
from hwnas.benchmarks.proxies import proxy_features
from hwnas.families.nb201.cell import CELLS, genome_codes
from hwnas.pareto import Objective

OBJECTIVES = [Objective("accuracy", "max"), Objective("latency", "min")]
DATASET, TARGET = "cifar10", "pixel3"
Features = tuple[str, Callable[[np.ndarray], np.ndarray]]


@cache
def device_columns(table: Path, device: str) -> dict[str, np.ndarray]:
    """Each of the table's metrics on ``device`` for every genome, indexed by the genome's
    base-5 code: read once per device, looked up by array indexing on the search's feature
    path."""
    bench = load_nb201(table, DATASET, device)
    keys, values = bench.entries()
    row_of = {key: i for i, key in enumerate(keys)}
    archs = bench.space.enumerate()
    codes = genome_codes(bench.space.to_indices(archs))
    columns = {}
    for j, metric in enumerate(bench.metrics):
        column = np.full(CELLS, np.nan)
        column[codes] = [values[row_of[a.key], j] if a.key in row_of else np.nan for a in archs]
        columns[metric] = column
    return columns


def variant_features(variant: str, table: Path, caches: list[Path]) -> Features | None:
    """The extra features ``variant`` names (``None`` for ``plain``), one part per ``+``."""
    if variant == "plain":
        return None
    parts: list[Features] = []
    for part in variant.split("+"):
        if part == "proxies":
            parts.append(proxy_features(caches))
            continue
        device, _, metric = part.rpartition("-")
        if part in ("true-accuracy", "true-latency"):
            device = TARGET
        elif metric != "latency" or not device:
            raise SystemExit(f"--variants: {part!r}: a part is proxies, true-accuracy, "
                             "true-latency or DEVICE-latency (plain stands alone)")  # fmt: skip
        column = device_columns(table, device)[metric]
        parts.append((part, lambda genome, column=column: column[genome_codes(genome)][:, None]))
    lookups = [lookup for _, lookup in parts]
    return "+".join(label for label, _ in parts), lambda g: np.hstack([f(g) for f in lookups])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", type=Path, required=True)
    parser.add_argument("--cache", type=Path, action="append", default=[])
    parser.add_argument("--out", type=Path, default=Path("runs/bench15-linas"))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=400)
    parser.add_argument("--variants", default="plain,proxies,true-accuracy,true-latency")
    args = parser.parse_args()
    variants = args.variants.split(",")
    features = {v: variant_features(v, args.table, args.cache) for v in variants}  # checked first
    for variant in variants:
        bench = load_nb201(args.table, DATASET, TARGET, features[variant])
        summary = run_comparison(bench, OBJECTIVES, ["linas"], range(args.seeds), args.budget,
                                 args.out / variant)["searchers"]["linas"]  # fmt: skip
        print(json.dumps({"variant": variant, **summary}), flush=True)


if __name__ == "__main__":
    main()
