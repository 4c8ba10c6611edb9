"""Run the NAS-Bench-201 comparisons reported in docs/benchmarks.md and print their tables.

    python bench/nb201_matrix.py --data ../shared/benchmarks/nb201/nb201_acc_latency.csv.gz \
        --out runs/bench --suite wide [--part 1/2] [--jobs 1] [--seeds 3] [--report]

Suites (each problem is one ``hwnas bench nb201`` call, exactly as a user would type it):

- ``headline``: cifar10 x pixel3, every searcher, 10 seeds (section 1);
- ``transfer``: LINAS alone on cifar100 and ImageNet16-120 x four devices (section 1);
- ``wide``: cifar10 x all 27 devices, plus cifar100 and ImageNet16-120 x four devices of
  different kinds, five searchers at budget 500;
- ``gp``: Optuna's Gaussian process on six of the wide problems at budget 200 (each of its
  runs costs minutes);
- ``large``: two generated chain problems of 1.8e16 and 4.7e18 archs with exactly known
  fronts (``hwnas bench chain``), where LINAS can only screen mutants;
- ``three``: accuracy, latency and the network's weights on five cifar10 problems.

A problem's results are in ``OUT/<problem>/summary.json`` once its call ends. ``--part K/N``
runs every N-th problem from the K-th, so a suite splits over machines or sessions; a
problem whose summary is there is skipped, and a killed call is rerun from scratch (a
table's evaluations are free, LINAS's rounds are not stored). ``--report`` runs nothing:
it prints the tables of whatever summaries exist and, for the wide suite, how LINAS fares
against the goals of issue 13, split into the problems its design was tuned on and those
it is judged on.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np

ALL_DEVICES = (
    "1080ti_1", "1080ti_256", "1080ti_32", "2080ti_1", "2080ti_256", "2080ti_32",
    "essential_ph_1", "eyeriss", "fpga", "gold_6226", "gold_6240", "pixel2", "pixel3", "raspi4",
    "samsung_a50", "samsung_s7", "silver_4114", "silver_4210r", "titan_rtx_1", "titan_rtx_256",
    "titan_rtx_32", "titanx_1", "titanx_256", "titanx_32", "titanxp_1", "titanxp_256",
    "titanxp_32",
)  # fmt: skip
KINDS = ("raspi4", "eyeriss", "gold_6226", "titan_rtx_1")  # mobile CPU, ASIC, server CPU, GPU
OTHER_DATASETS = ("cifar100", "ImageNet16-120")
WIDE_SEARCHERS = "random,nsga2,evolution,linas,optuna-tpe"
TUNED_ON = {"cifar10-pixel3", *(f"{d}-{v}" for d in OTHER_DATASETS for v in KINDS)}
"""Problems LINAS's design was chosen on: every variant was measured on cifar10 x pixel3,
and the noise term's start (50 evaluations) was checked on the eight transfer problems.
The other 26 cifar10 devices were never looked at while designing it: they judge it."""
GP_PROBLEMS = tuple(f"cifar10-{v}" for v in ("pixel3", "fpga", *KINDS))
CHAINS = ("18x8-seed0", "24x6-seed1")  # 1.8e16 and 4.7e18 archs
THREE_OBJECTIVES = ("accuracy:max", "latency:min", "params:min")


class Problem(NamedTuple):
    """One ``hwnas bench`` call: on NAS-Bench-201 (``dataset`` x ``device``), or on the
    generated chain problem (``dataset`` "chain", ``device`` "LAYERSxWIDTHS-seedS")."""

    dataset: str
    device: str
    searchers: str
    seeds: int
    budget: int
    suffix: str = ""
    objectives: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.dataset}-{self.device}{self.suffix}"


SUITES = ("headline", "transfer", "wide", "gp", "large", "three")


def suite(name: str, seeds: int | None) -> list[Problem]:
    if name == "headline":
        everyone = "random,nsga2,linas,optuna-tpe,optuna-nsga2"
        return [Problem("cifar10", "pixel3", everyone, seeds or 10, 500)]
    if name == "transfer":
        return [Problem(d, v, "linas", seeds or 10, 500) for d in OTHER_DATASETS for v in KINDS]
    if name == "wide":
        pairs = [("cifar10", v) for v in ALL_DEVICES]
        pairs += [(d, v) for d in OTHER_DATASETS for v in KINDS]
        return [Problem(d, v, WIDE_SEARCHERS, seeds or 3, 500, "-wide") for d, v in pairs]
    if name == "gp":
        return [Problem("cifar10", p.split("-", 1)[1], "optuna-gp", seeds or 3, 200, "-gp")
                for p in GP_PROBLEMS]  # fmt: skip
    if name == "large":
        return [Problem("chain", shape, WIDE_SEARCHERS, seeds or 3, 500)
                for shape in CHAINS]  # fmt: skip
    if name == "three":
        return [Problem("cifar10", v, WIDE_SEARCHERS, seeds or 3, 500, "-three", THREE_OBJECTIVES)
                for v in ("pixel3", *KINDS)]  # fmt: skip
    raise SystemExit(f"unknown suite {name!r}")


def finished(out: Path, problem: Problem) -> bool:
    """Whether ``problem``'s summary is there for its searchers, seeds and budget."""
    path = out / problem.name / "summary.json"
    if not path.exists():
        return False
    summary = json.loads(path.read_text())
    return (list(summary["searchers"]) == problem.searchers.split(",")
            and summary["seeds"] == list(range(problem.seeds))
            and summary["budget"] == problem.budget)  # fmt: skip


def command(args: argparse.Namespace, problem: Problem) -> list[str]:
    common = ["--searchers", problem.searchers, "--seeds", str(problem.seeds),
              "--budget", str(problem.budget), "--out", str(args.out / problem.name)]  # fmt: skip
    if problem.dataset == "chain":
        shape, seed = problem.device.split("-seed")
        layers, widths = shape.split("x")
        return [sys.executable, "-m", "hwnas.cli", "bench", "chain", "--layers", layers,
                "--widths", widths, "--problem-seed", seed, *common]  # fmt: skip
    return [
        sys.executable, "-m", "hwnas.cli", "bench", "nb201", "--data", str(args.data),
        "--dataset", problem.dataset, "--device", problem.device, *common,
        *(f"--objective={o}" for o in problem.objectives),
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


def wide_table(summaries: dict[str, dict]) -> str:
    """One row per problem: each searcher's mean ratio at each mark, the best in bold, and
    whether LINAS is at least every other searcher at 100, 200 and 500."""
    names = list(next(iter(summaries.values()))["searchers"])
    head = ["problem", "set", *(f"{n} @{m}" for n in names for m in (100, 500)), "LINAS leads"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for problem, summary in summaries.items():
        s = summary["searchers"]
        cells = [problem.removesuffix("-wide"), _set_of(problem)]
        for n in names:
            for m in (100, 500):
                value = s[n][f"hv_ratio@{m}"]
                best = max(s[o][f"hv_ratio@{m}"] for o in names)
                cells.append(f"**{value:.3f}**" if value >= best else f"{value:.3f}")
        behind = _behind(s)
        cells.append("no: " + ", ".join(behind) if behind else "yes")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _set_of(problem: str) -> str:
    return "tuned" if problem.removesuffix("-wide") in TUNED_ON else "judged"


def _behind(s: dict, marks: tuple[int, ...] = (100, 200, 500)) -> list[str]:
    """Where LINAS's mean ratio falls below another searcher's: 'name@mark (-gap)'."""
    out = []
    for m in marks:
        ours = s["linas"][f"hv_ratio@{m}"]
        rival = max((n for n in s if n != "linas"), key=lambda n: s[n][f"hv_ratio@{m}"])
        gap = s[rival][f"hv_ratio@{m}"] - ours
        if gap > 0:
            out.append(f"{rival}@{m} (-{gap:.3f})")
    return out


def goals(summaries: dict[str, dict]) -> str:
    """The goals of issue 13 on the wide matrix, over all problems and per set."""
    lines = []
    for label, keep in (("all", lambda p: True), ("tuned", lambda p: _set_of(p) == "tuned"),
                        ("judged", lambda p: _set_of(p) == "judged")):  # fmt: skip
        chosen = {p: s["searchers"] for p, s in summaries.items() if keep(p)}
        if not chosen:
            continue
        leads = sum(not _behind(s) for s in chosen.values())
        means = {m: np.mean([s["linas"][f"hv_ratio@{m}"] for s in chosen.values()])
                 for m in (50, 500)}  # fmt: skip
        others = {n for s in chosen.values() for n in s if n != "linas"}
        best_other = {m: max(np.mean([s[n][f"hv_ratio@{m}"] for s in chosen.values()])
                             for n in others) for m in (50, 500)}  # fmt: skip
        lines.append(
            f"- {label} ({len(chosen)} problems): LINAS at least every other searcher at "
            f"100, 200 and 500 on {leads} ({leads / len(chosen):.0%}); mean ratio "
            f"{means[500]:.3f} at 500 (best other searcher {best_other[500]:.3f}), "
            f"{means[50]:.3f} at 50 (best other {best_other[50]:.3f})"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("runs/bench"))
    parser.add_argument(
        "--suite", default="headline,transfer", help="comma-separated: " + ", ".join(SUITES)
    )
    parser.add_argument("--seeds", type=int, help="seeds per searcher (default: the suite's)")
    parser.add_argument("--jobs", type=int, default=1, help="problems run at once")
    parser.add_argument("--part", default="1/1", help="K/N: every N-th problem from the K-th")
    parser.add_argument("--report", action="store_true", help="print tables, run nothing")
    args = parser.parse_args()
    k, n = (int(x) for x in args.part.split("/"))
    problems = [p for name in args.suite.split(",") for p in suite(name.strip(), args.seeds)]
    if not args.report:
        mine = [p for p in problems[k - 1 :: n] if not finished(args.out, p)]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}  # one core per problem, --jobs of them
        with ThreadPoolExecutor(args.jobs) as pool:
            codes = list(pool.map(lambda p: subprocess.run(command(args, p), env=env).returncode,
                                  mine))  # fmt: skip
        if any(codes):
            sys.exit(max(codes))
    found = {p.name: args.out / p.name / "summary.json" for p in problems}
    summaries = {name: json.loads(path.read_text()) for name, path in found.items()
                 if path.exists()}  # fmt: skip
    missing = [name for name, path in found.items() if not path.exists()]
    print(table(summaries))
    wide = {p: s for p, s in summaries.items() if p.endswith("-wide")}
    if wide:
        print("\n" + wide_table(wide) + "\n\n" + goals(wide))
    if missing:
        print(f"\nnot run yet: {', '.join(missing)}")


if __name__ == "__main__":
    main()
