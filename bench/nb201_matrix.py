"""Run the NAS-Bench-201 comparisons reported in docs/benchmarks.md and print their tables.

    python bench/nb201_matrix.py --data ../shared/benchmarks/nb201/nb201_acc_latency.csv.gz \
        --out runs/bench [--seeds 10] [--budget 500] [--jobs 2] [--only headline|transfer]

The headline problem (cifar10 x pixel3) runs every searcher; the transfer matrix runs the
best searcher on cifar100 and ImageNet16-120 x raspi4, eyeriss, gold_6226, titan_rtx_1.
Each problem is one `hwnas bench nb201` call, exactly as a user would type it, so rerunning
resumes from the stores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HEADLINE = ("cifar10", "pixel3", "random,nsga2,linas,optuna-tpe,optuna-nsga2")
TRANSFER_DATASETS = ("cifar100", "ImageNet16-120")
TRANSFER_DEVICES = ("raspi4", "eyeriss", "gold_6226", "titan_rtx_1")


def command(args: argparse.Namespace, dataset: str, device: str, searchers: str) -> list[str]:
    return [
        sys.executable, "-m", "hwnas.cli", "bench", "nb201", "--data", str(args.data),
        "--dataset", dataset, "--device", device, "--searchers", searchers,
        "--seeds", str(args.seeds), "--budget", str(args.budget),
        "--out", str(args.out / f"{dataset}-{device}"),
    ]  # fmt: skip


def reach(entry: dict, level: str) -> str:
    """Mean evaluations to a level when every seed got there, else how many seeds did."""
    if entry[f"evals_to_{level}"] is not None:
        return f"{entry[f'evals_to_{level}']:.0f}"
    hits = sorted(v for v in entry[f"evals_to_{level}_per_seed"] if v is not None)
    seeds = len(entry[f"evals_to_{level}_per_seed"])
    return f"{len(hits)}/{seeds} seeds" + (f" (median {hits[len(hits) // 2]})" if hits else "")


def table(summaries: dict[str, dict]) -> str:
    lines = []
    for problem, summary in summaries.items():
        first = next(iter(summary["searchers"].values()))
        marks = [k.split("@")[1] for k in first if k.startswith("hv_ratio@")]
        if not lines:
            head = ["problem", "searcher", *(f"@{m}" for m in marks)]
            head += ["evals to 95%", "evals to 99%", "front found", "s/candidate"]
            lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, e in summary["searchers"].items():
            ratios = [f"{e[f'hv_ratio@{m}']:.3f} ± {e[f'hv_ratio_std@{m}']:.3f}" for m in marks]
            cells = [problem, name, *ratios, reach(e, "95"), reach(e, "99")]
            cells += [f"{e['pareto_fraction']:.0%}", f"{e['seconds_per_candidate']:.4f}"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=500)
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--best", default="linas", help="searcher for the transfer matrix")
    parser.add_argument("--only", choices=["headline", "transfer"])
    args = parser.parse_args()
    jobs = []
    if args.only != "transfer":
        jobs.append(HEADLINE)
    if args.only != "headline":
        jobs += [(d, v, args.best) for d in TRANSFER_DATASETS for v in TRANSFER_DEVICES]
    with ThreadPoolExecutor(args.jobs) as pool:
        codes = list(pool.map(lambda job: subprocess.run(command(args, *job)).returncode, jobs))
    if any(codes):
        sys.exit(max(codes))
    summaries = {
        f"{d} x {v}": json.loads((args.out / f"{d}-{v}" / "summary.json").read_text())
        for d, v, _ in jobs
    }
    print(table(summaries))


if __name__ == "__main__":
    main()
