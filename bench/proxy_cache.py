"""Zero-cost proxies of every NAS-Bench-201 cell (issue 15, points 5 and 8): the cache a
proxy-assisted search on the table reads.

    python bench/proxy_cache.py --table ../shared/benchmarks/nb201/nb201_acc_latency.csv.gz \\
        --out runs/bench15-cache [--proxies nwot] [--part 1/2]

Each cell's network is scored freshly initialised (seed 0), as ``hwnas bench proxies`` does
for the published cells, and appended to ``OUT/scores.jsonl`` (a killed run goes on where it
stopped). ``--part K/N`` scores every N-th cell from the K-th into ``OUT/partK``, so N
processes can share the work; the search reads every part. The cache stays out of the
repository: it is about 15,625 lines per part set, made here in about a core-hour for nwot.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from hwnas.benchmarks.proxies import SCORES, score_cells
from hwnas.benchmarks.table import read_csv
from hwnas.families.nb201.cell import parse_cell
from hwnas.files import run_lock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--table", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("runs/bench15-cache"))
    parser.add_argument("--proxies", default="nwot", help="comma-separated")
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--cells", type=int, help="only the first N cells (a quick look)")
    parser.add_argument("--part", default="1/1", help="K/N: every N-th cell from the K-th")
    args = parser.parse_args()
    part, parts = (int(x) for x in args.part.split("/"))
    cells = [parse_cell(row["arch_str"]) for row in read_csv(args.table)][: args.cells]
    mine = cells[part - 1 :: parts]
    out = args.out / f"part{part}" if parts > 1 else args.out
    start = time.perf_counter()
    with run_lock(out):
        done = score_cells(mine, args.dataset, out, args.proxies.split(","),
                           batch_size=args.batch_size)  # fmt: skip
    print(json.dumps({"cells": len(done), "seconds": round(time.perf_counter() - start, 1),
                      "scores": str(out / SCORES)}))  # fmt: skip


if __name__ == "__main__":
    main()
