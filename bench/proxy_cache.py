"""Zero-cost proxies of every effective NAS-Bench-201 cell (issue 15, points 5 and 8): the
cache that ``hwnas bench nb201 --proxy-cache`` gives LINAS as predictor features.

    python bench/proxy_cache.py --out runs/bench15-cache [--proxies nwot] [--part 1/2]

The 15,625 cells compute 9,445 distinct networks once their dead edges (those on no
input-to-output path) are taken out, and a proxy of the network a cell computes is the
proxy of its effective cell, so only those are scored (``proxies.effective_cells``). Each
network is scored freshly initialised (seed 0), as ``hwnas bench proxies`` scores the
published cells, and appended to ``OUT/scores.jsonl`` (a killed run goes on where it
stopped). ``--part K/N`` scores every N-th cell from the K-th into ``OUT/partK``, so N
processes can share the work; the search reads every part. The cache stays out of the
repository.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from hwnas.benchmarks.proxies import SCORES, effective_cells, score_cells
from hwnas.families.nb201.cell import parse_cell
from hwnas.files import run_lock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench15-cache"))
    parser.add_argument("--proxies", default="nwot", help="comma-separated")
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--cells", type=int, help="only the first N cells (a quick look)")
    parser.add_argument("--part", default="1/1", help="K/N: every N-th cell from the K-th")
    args = parser.parse_args()
    part, parts = (int(x) for x in args.part.split("/"))
    cells = [parse_cell(key) for key in effective_cells()][: args.cells]
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
