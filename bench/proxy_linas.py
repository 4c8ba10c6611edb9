"""LINAS with zero-cost proxies as predictor features on NAS-Bench-201 (issue 15, point 5),
beside the same search with a perfect feature for each objective: how much of the
hypervolume any accuracy proxy could add at most, and how much the latency noise costs.

    python bench/proxy_linas.py --table ../shared/benchmarks/nb201/nb201_acc_latency.csv.gz \\
        --cache runs/bench15-cache/part1 --cache runs/bench15-cache/part2 \\
        --out runs/bench15-linas [--seeds 10] [--budget 400] [--variants plain,proxies,...]

Variants (each ``hwnas bench nb201 --searchers linas`` on cifar10 x pixel3, its own folder):
- ``plain``: the space's own features, as in section 1;
- ``proxies``: plus the cached proxies' rank quantiles (``--proxy-cache``);
- ``true-accuracy``: plus the table's own accuracy of every cell, the best any accuracy
  proxy can be (the objective itself, no noise): an upper bound, not a search;
- ``true-latency``: plus the table's own latency of every cell, the bound on the other side.

Prints one JSON line per variant: the hypervolume ratio at 50, 100, 200 and the budget
(mean, sd and per seed), evaluations to 95% and 99%, and the search's own seconds.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hwnas.benchmarks.compare import run_comparison
from hwnas.benchmarks.nb201 import load_nb201
from hwnas.benchmarks.proxies import proxy_features
from hwnas.pareto import Objective

OBJECTIVES = [Objective("accuracy", "max"), Objective("latency", "min")]


def true_feature(table: Path, metric: str) -> tuple[str, Callable[[np.ndarray], np.ndarray]]:
    """The table's own ``metric`` of each genome, as one more feature column."""
    bench = load_nb201(table)
    keys, values = bench.entries()
    by_key = dict(zip(keys, values[:, bench.metrics.index(metric)], strict=True))

    def lookup(genome: np.ndarray) -> np.ndarray:
        archs = bench.space.from_indices(genome)
        return np.array([[by_key.get(a.key, np.nan)] for a in archs])

    return f"true-{metric}", lookup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", type=Path, required=True)
    parser.add_argument("--cache", type=Path, action="append", default=[])
    parser.add_argument("--out", type=Path, default=Path("runs/bench15-linas"))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=400)
    parser.add_argument("--variants", default="plain,proxies,true-accuracy,true-latency")
    args = parser.parse_args()
    makers = {
        "plain": lambda: None,
        "proxies": lambda: proxy_features(args.cache),
        "true-accuracy": lambda: true_feature(args.table, "accuracy"),
        "true-latency": lambda: true_feature(args.table, "latency"),
    }
    for variant in args.variants.split(","):
        bench = load_nb201(args.table, "cifar10", "pixel3", makers[variant]())
        summary = run_comparison(bench, OBJECTIVES, ["linas"], range(args.seeds), args.budget,
                                 args.out / variant)["searchers"]["linas"]  # fmt: skip
        print(json.dumps({"variant": variant, **summary}), flush=True)


if __name__ == "__main__":
    main()
