"""The learned combination of zero-cost proxies against the best single proxy and random
search on NAS-Bench-201 (issue 15, point 4).

    python bench/proxy_combination.py --zc ../shared/benchmarks/nb201/zc_nasbench201.json.gz \\
        --table ../shared/benchmarks/nb201/nb201_acc_latency.csv.gz \\
        [--scores runs/bench15-proxies] [--seeds 10] [--out runs/bench15-combination.json]

Four problems: the published proxy scores of each NAS-Bench-201 data set (cifar10 is
where the combination's settings were chosen; cifar100 and ImageNet16-120 judge them), and
hwnas's own scores of the cifar10 cells (``hwnas bench proxies --out DIR``, then
``--scores DIR``). The candidates are the data set's published cells (about 724); a query
reveals a cell's validation accuracy, as a search would see it, and the figure is the test
accuracy (200 epochs, from the table) of the best cell by validation accuracy among those
queried so far.

- ``combination``: ``hwnas.proxies.combine.combined_search`` over every proxy, one run per
  seed; Spearman's rho of its fitted combination with validation accuracy over all cells
  after 10 and 20 queries.
- ``best single``: the single proxy with the highest rho with validation accuracy (an
  oracle's pick), its cells queried from the top down.
- ``random``: cells queried in a random order, one per seed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from hwnas.benchmarks.proxies import SCORES
from hwnas.benchmarks.table import read_csv
from hwnas.benchmarks.zero_cost import load_published
from hwnas.families.nb201.cell import cell_string
from hwnas.proxies.combine import combined_search, rank_features

TEST_COLUMNS = {"cifar10": "cifar10_test_acc_200ep", "cifar100": "cifar100_test_acc_200ep",
                "ImageNet16-120": "imagenet16_120_test_acc_200ep"}  # fmt: skip
QUERIES = (10, 20, 50)


def best_test(order: list[int], val: np.ndarray, test: np.ndarray, k: int) -> float:
    """Test accuracy of the cell with the best validation accuracy among ``order[:k]``."""
    first = np.asarray(order[:k])
    return float(test[first[np.argmax(val[first])]])


def problem(names: list[str], scores: np.ndarray, val: np.ndarray, test: np.ndarray,
            seeds: int) -> dict:  # fmt: skip
    features = rank_features(scores)
    runs = [combined_search(features, lambda i: val[i], max(QUERIES), seed=s)
            for s in range(seeds)]  # fmt: skip
    rho = {k: [spearmanr(r.combinations[k - 1].predict(features), val).statistic for r in runs]
           for k in (10, 20)}  # fmt: skip
    singles = {n: spearmanr(scores[:, j], val).statistic for j, n in enumerate(names)}
    best = max(singles, key=singles.get)
    top_down = list(np.argsort(-features[:, names.index(best)], kind="stable"))
    shuffles = [list(np.random.default_rng(s).permutation(len(val))) for s in range(seeds)]
    return {
        "cells": len(val),
        "combination": {
            "spearman@10": [float(np.mean(rho[10])), float(np.min(rho[10]))],
            "spearman@20": [float(np.mean(rho[20])), float(np.min(rho[20]))],
            **{
                f"test@{k}": float(np.mean([best_test(r.queried, val, test, k) for r in runs]))
                for k in QUERIES
            },  # fmt: skip
            "weights@50": dict(
                zip(
                    names,
                    np.mean([r.combinations[-1].weights for r in runs], 0).round(3).tolist(),
                    strict=True,
                )
            ),  # fmt: skip
        },
        "best single": {
            "proxy": best,
            "spearman": float(singles[best]),
            **{f"test@{k}": best_test(top_down, val, test, k) for k in QUERIES},
        },  # fmt: skip
        "random": {
            f"test@{k}": float(np.mean([best_test(o, val, test, k) for o in shuffles]))
            for k in QUERIES
        },  # fmt: skip
        "best cell": {
            "test of best val": best_test(list(range(len(val))), val, test, len(val)),
            "best test": float(test.max()),
        },  # fmt: skip
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--zc", type=Path, required=True)
    parser.add_argument("--table", type=Path, required=True)
    parser.add_argument("--scores", type=Path, help="an hwnas bench proxies --out folder")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("runs/bench15-combination.json"))
    args = parser.parse_args()
    table = {row["arch_str"]: row for row in read_csv(args.table)}
    results = {}
    for dataset, column in TEST_COLUMNS.items():
        cells = load_published(args.zc, dataset)
        val = np.array([c.accuracy for c in cells])
        test = np.array([float(table[cell_string(c.ops)][column]) for c in cells])
        names = sorted(set.intersection(*(set(c.scores) for c in cells)) - {"epe_nas"})
        scores = np.array([[c.scores[n] for n in names] for c in cells])
        results[f"published {dataset}"] = problem(names, scores, val, test, args.seeds)
        if dataset == "cifar10" and args.scores:
            rows = {}
            for line in (args.scores / SCORES).read_text().splitlines():
                row = json.loads(line)
                rows[row["cell"]] = row["scores"]
            known = [i for i, c in enumerate(cells) if cell_string(c.ops) in rows]
            ours = sorted(rows[cell_string(cells[known[0]].ops)])
            mine = np.array([[rows[cell_string(cells[i].ops)][n] for n in ours] for i in known])
            results["hwnas cifar10"] = problem(ours, mine, val[known], test[known], args.seeds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    print("| problem | cells | combination rho @10 / @20 (mean, min) | test acc @10 / @20 / @50 |"
          " best single proxy (rho) | its test acc @10 / @20 / @50 | random @10 / @20 / @50 |"
          " best cell's test |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        c, b, rnd = r["combination"], r["best single"], r["random"]
        tests = " / ".join(f"{c[f'test@{k}']:.2f}" for k in QUERIES)
        print(f"| {name} | {r['cells']} | {c['spearman@10'][0]:.3f}, {c['spearman@10'][1]:.3f} / "
              f"{c['spearman@20'][0]:.3f}, {c['spearman@20'][1]:.3f} | {tests} | "
              f"{b['proxy']} ({b['spearman']:.3f}) | "
              + " / ".join(f"{b[f'test@{k}']:.2f}" for k in QUERIES) + " | "
              + " / ".join(f"{rnd[f'test@{k}']:.2f}" for k in QUERIES)
              + f" | {r['best cell']['test of best val']:.2f}"
              f" (max {r['best cell']['best test']:.2f}) |")  # fmt: skip
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
