"""Searchers compared on the real main job (issue 13, point 5), as a user would run them.

    python bench/main_job_searchers.py --out runs/bench13-main [--config examples/lm.yaml] \
        [--searchers linas,optuna-tpe,optuna-gp,nsga2] [--seeds 3] [--part 1/2] [--report]

One super-network is trained (``hwnas train``) and this machine profiled for it once
(``hwnas profile create``); then every searcher searches it with every seed (``hwnas run``
with ``search.seed``, the checkpoint copied into the run's folder, latency predicted by the
profile), so the searchers differ in nothing but their proposals and only bits per byte is
measured. Each run's folder is ``OUT/runs/<searcher>-seed<k>``; a run whose summary.json is
there is skipped, a killed one is started again from its copied checkpoint. ``--part K/N``
runs every N-th of the runs from the K-th.

Fronts are compared on one reference point for all runs: the worst value of each objective
on the front of everything any run evaluated, plus a tenth of that front's range, so the
volume measures the trade-off region, not how bad the worst random sub-network was. The
ratio is a run's hypervolume over that union front's. ``OUT/summary.json`` holds the
reference, every run's ratio after 20, 40 and the full budget, its front and LINAS-style
overheads (the searcher's own seconds per candidate).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from hwnas.pareto import hypervolume, pareto_mask, running_hypervolume
from hwnas.store import Store

SEARCHERS = "linas,optuna-tpe,optuna-gp,nsga2"
OBJECTIVES = ("bits_per_byte", "latency_ms")  # the text task's defaults, both minimised
MARKS = (20, 40)
PROFILE_SAMPLES = 100


def hwnas(*arguments: str | Path) -> None:
    command = [sys.executable, "-m", "hwnas.cli", *map(str, arguments)]
    print("+", " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True)


def prepare(config: Path, out: Path) -> tuple[Path, Path]:
    """The trained super-network and the profile, made once (a finished one is reused)."""
    supernet, profile = out / "supernet", out / "profile.json"
    resume = ("--resume",) if (supernet / "supernet.safetensors").exists() else ()
    hwnas("train", "--config", config, "--out", supernet, *resume)
    if not profile.exists():
        hwnas("profile", "create", "--config", config, "--out", profile,
              "--samples", PROFILE_SAMPLES)  # fmt: skip
    return supernet, profile


def search(config: Path, out: Path, supernet: Path, profile: Path, searcher: str, seed: int):
    folder = out / "runs" / f"{searcher}-seed{seed}"
    if (folder / "summary.json").exists():
        return
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for part in supernet.glob("supernet.safetensors*"):
        shutil.copy2(part, folder / part.name)
    settings = yaml.safe_load(config.read_text()) or {}
    settings.setdefault("search", {})["seed"] = seed
    reseeded = folder / "config.yaml"
    reseeded.write_text(yaml.safe_dump(settings, sort_keys=False))
    hwnas("run", "--config", reseeded, "--out", folder, "--searcher", searcher,
          "--latency", f"profile:{profile}")  # fmt: skip


def points(folder: Path) -> np.ndarray:
    """The run's evaluated (bits per byte, latency) in evaluation order; NaN for failures."""
    with Store(folder / "run.sqlite") as store:
        rows = [[np.nan] * 2 if e.metrics is None else [e.metrics[m] for m in OBJECTIVES]
                for e in store.evaluations("main")]  # fmt: skip
    return np.asarray(rows, dtype=float)


def report(out: Path, searchers: list[str], seeds: int) -> dict:
    runs = {(s, k): out / "runs" / f"{s}-seed{k}" for s in searchers for k in range(seeds)}
    done = {key: folder for key, folder in runs.items() if (folder / "summary.json").exists()}
    seen = {key: points(folder) for key, folder in done.items()}
    union = np.vstack([p[~np.isnan(p).any(axis=1)] for p in seen.values()])
    front = union[pareto_mask(union)]
    reference = front.max(axis=0) + 0.1 * (front.max(axis=0) - front.min(axis=0))
    best = hypervolume(front, reference)
    results = []
    for (searcher, seed), p in seen.items():
        curve = running_hypervolume([None if np.isnan(x).any() else x for x in p], reference)
        summary = json.loads((done[(searcher, seed)] / "summary.json").read_text())
        results.append({
            "searcher": searcher, "seed": seed, "evaluations": len(p),
            "ratio": {str(m): curve[min(m, len(curve)) - 1] / best for m in (*MARKS, len(p))},
            "front": p[pareto_mask(np.nan_to_num(p, nan=np.inf))].tolist(),
            "seconds_per_candidate": summary["searcher_seconds_per_candidate"],
            "search_seconds": summary["time_seconds"]["search"],
        })  # fmt: skip
    table = {"reference": reference.tolist(), "union_front": front.tolist(), "runs": results,
             "missing": [f"{s}-seed{k}" for (s, k) in runs if (s, k) not in done]}  # fmt: skip
    (out / "summary.json").write_text(json.dumps(table, indent=1))
    return table


def print_table(table: dict, searchers: list[str]) -> None:
    print(f"reference point (bits per byte, latency ms): {table['reference']}; "
          f"union front of {len(table['union_front'])} points")  # fmt: skip
    marks = sorted({m for r in table["runs"] for m in r["ratio"]}, key=int)
    print("searcher      seeds  " + "  ".join(f"HV@{m:>4}" for m in marks) + "  s/cand  search s")
    for searcher in searchers:
        mine = [r for r in table["runs"] if r["searcher"] == searcher]
        if not mine:
            continue
        cells = []
        for m in marks:
            values = [r["ratio"][m] for r in mine if m in r["ratio"]]
            cells.append(f"{np.mean(values):.3f}±{np.std(values):.3f}" if values else "  -  ")
        cost = np.mean([r["seconds_per_candidate"] for r in mine])
        wall = np.mean([r["search_seconds"] for r in mine])
        print(
            f"{searcher:<12}  {len(mine):>5}  " + "  ".join(cells) + f"  {cost:6.3f}  {wall:8.0f}"
        )
    if table["missing"]:
        print("not run yet: " + ", ".join(table["missing"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench13-main"))
    parser.add_argument("--config", type=Path, default=Path("examples/lm.yaml"))
    parser.add_argument("--searchers", default=SEARCHERS)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--part", default="1/1", help="K/N: every N-th run from the K-th")
    parser.add_argument("--report", action="store_true", help="print the table, run nothing")
    args = parser.parse_args()
    searchers = args.searchers.split(",")
    if not args.report:
        supernet, profile = prepare(args.config, args.out)
        k, n = (int(x) for x in args.part.split("/"))
        pairs = [(s, seed) for seed in range(args.seeds) for s in searchers]
        for searcher, seed in pairs[k - 1 :: n]:
            search(args.config, args.out, supernet, profile, searcher, seed)
    print_table(report(args.out, searchers, args.seeds), searchers)


if __name__ == "__main__":
    main()
