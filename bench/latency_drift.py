"""Latency that survives a drifting machine (issue 14 point 2), for every family measured.

For each family (the MobileNet on digits, the transformer of ``examples/lm.yaml``):

1. **Profile** (``time_profile``, as ``hwnas profile create``): the lookup table's layers
   and ``--samples`` sub-networks timed in one session, the reference among them. The same
   timings are fitted twice: divided by the reference (what profiles do now) and as timed
   (what they did before, ``drift_free=False``), so the two differ in nothing else.
2. **Check, minutes later** (after every family's profile, as ``hwnas profile check``):
   ``--check`` fresh sub-networks, none of the fitted ones, timed with the reference. Each
   profile's predictor is scored against them: milliseconds against milliseconds, after
   recalibrating with a timing of the reference just before (``speed_here``, as
   ``latency.recalibrate`` does), and relative to the reference.
3. **A search's front, run to run** (``--budget`` > 0): one super-network trained briefly,
   then the same measured search twice with one seed; for archs evaluated in both, how far
   ``latency_ms`` and ``latency_relative`` moved between the two runs, and how much of the
   front the two runs share when the search minimises each.

    python bench/latency_drift.py --out runs/bench14-drift
    python bench/latency_drift.py --out runs/bench14-drift-busy --neighbours 2 --budget 0

``--neighbours N`` adds N processes that switch between busy and idle every ``--period``
seconds, for a machine whose drift is known to be there (a quiet VM may show none).

Writes ``OUT/results.json`` (and the profiles, ``OUT/<family>/profile*.json``); prints
each step's figures as it ends. Nothing here is cached: the point is the machine's drift
between steps, so run it as a user would, and say what else ran.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from hwnas import run
from hwnas.config import RunConfig, load_config, with_overrides
from hwnas.hardware.profile import (
    accuracy_figures,
    distinct_samples,
    fit_profile,
    measure_archs,
    reference_call,
    speed_here,
    time_profile,
)
from hwnas.progress import SilentProgress
from hwnas.run import CHECKPOINT, RUN_ID, run_job, train_job
from hwnas.store import Store

FAMILIES = {"mobilenet": None, "transformer": Path("examples/lm.yaml")}


def profile_family(name: str, config: RunConfig, out: Path, samples: int, rounds: int) -> dict:
    model = run.prepare(config)[1].eval()
    settings = config.latency.settings()
    started = time.perf_counter()
    timed = time_profile(model, settings, samples, rounds, config.seed, SilentProgress())
    seconds = time.perf_counter() - started
    profiles = {}
    for variant, drift_free in (("with_reference", True), ("without_reference", False)):
        profile = fit_profile(name, model, settings, timed, drift_free=drift_free)
        profile.save(out / f"profile-{variant}.json")
        profiles[variant] = profile
    reference = profiles["with_reference"].reference
    return {
        "profiles": profiles,
        "summary": {
            "finished": time.time(),
            "seconds": seconds,
            "layers": len(timed.catalogue),
            "samples": len(timed.archs),
            "reference": vars(reference),
            "cross_validated": {v: p.validation["predictor"] for v, p in profiles.items()},
        },
        "model": model,
        "fitted": frozenset(a.key for a in timed.archs),
    }


def check_family(made: dict, samples: int, rounds: int, seed: int) -> dict:
    model, profiles = made["model"], made["profiles"]
    archs = distinct_samples(model, samples, seed + 1, made["fitted"])
    settings = profiles["with_reference"].settings
    reference = reference_call(model, settings)
    speed = speed_here(profiles["with_reference"], reference)  # as latency.recalibrate does
    measured = measure_archs(model, archs, settings, SilentProgress(), "check", rounds,
                             seed + 1, reference=reference)  # fmt: skip
    figures = {}
    for variant, profile in profiles.items():
        predicted = profile.estimate(model, archs)[1]
        reference = profile.reference.ms
        figures[variant] = {
            "ms": accuracy_figures(measured.ms, predicted),
            "recalibrated_ms": accuracy_figures(measured.ms, predicted * speed),
            "relative": accuracy_figures(measured.relative, predicted / reference),
        }
    return {
        "minutes_after_profile": (time.time() - made["summary"]["finished"]) / 60,
        "samples": len(archs),
        "speed_drift": measured.reference_ms / profiles["with_reference"].reference.ms - 1,
        "recalibration_speed": speed,
        "figures": figures,
    }


class Neighbours:
    """``count`` processes that keep a core busy for ``period`` seconds, then rest as long,
    over and over: the VM's other tenants, on a clock, so a run sees the machine's speed
    step up and down by tens of percent within minutes as it does on a shared host."""

    def __init__(self, count: int, period: float) -> None:
        self.processes = [
            multiprocessing.Process(target=_neighbour, args=(period,), daemon=True)
            for _ in range(count)
        ]

    def __enter__(self) -> Neighbours:
        for process in self.processes:
            process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for process in self.processes:
            process.terminate()


def _neighbour(period: float) -> None:
    while True:
        busy_until = time.monotonic() + period
        while time.monotonic() < busy_until:
            pass
        time.sleep(period)


def search_spread(name: str, config: RunConfig, out: Path, budget: int, epochs: int) -> dict:
    """One brief training, then two identical measured searches per latency metric."""
    trained = out / "train"
    train_job(with_overrides(config, {"train.epochs": epochs}), trained)
    runs: dict[str, list[dict]] = {}
    for metric in ("latency_ms", "latency_relative"):
        quality = run.plan_run(config).objectives[0]
        objectives = [f"{quality.name}:{quality.direction}", f"{metric}:min"]
        for attempt in (1, 2):
            folder = out / f"search-{metric}-{attempt}"
            folder.mkdir(parents=True)
            for part in trained.glob(f"{CHECKPOINT}*"):
                shutil.copy2(part, folder / part.name)
            settings = with_overrides(config, {"train.epochs": epochs, "search.budget": budget,
                                               "search.objectives": objectives})  # fmt: skip
            summary = run_job(settings, folder)
            runs.setdefault(metric, []).append(
                {"front": [f["key"] for f in summary["front"]], "all": _evaluated(folder),
                 "seconds": summary["time_seconds"]["search"]}
            )  # fmt: skip
    result = {}
    for metric, (first, second) in runs.items():
        common = sorted(set(first["all"]) & set(second["all"]))
        moved = {
            m: _spread([first["all"][k][m] for k in common], [second["all"][k][m] for k in common])
            for m in ("latency_ms", "latency_relative")
        }
        a, b = set(first["front"]), set(second["front"])
        result[f"minimising_{metric}"] = {
            "archs_in_both": len(common),
            "moved_between_runs": moved,
            "front_sizes": [len(a), len(b)],
            "front_shared": len(a & b) / len(a | b),
            "search_seconds": [first["seconds"], second["seconds"]],
        }
    return result


def _evaluated(folder: Path) -> dict[str, dict[str, float]]:
    """Every arch the run evaluated, with its metrics, from the run's store."""
    with Store(folder / "run.sqlite") as store:
        return {e.arch_key: e.metrics for e in store.evaluations(RUN_ID) if e.metrics}


def _spread(first: list[float], second: list[float]) -> dict[str, float]:
    a, b = np.asarray(first), np.asarray(second)
    moved = np.abs(b - a) / a
    return {"median": float(np.median(moved)), "p90": float(np.quantile(moved, 0.9)),
            "max": float(moved.max())}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench14-drift"))
    parser.add_argument("--families", default=",".join(FAMILIES))
    parser.add_argument("--samples", type=int, default=200, help="fitting sub-networks")
    parser.add_argument("--check", type=int, default=100, help="held-out sub-networks")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget", type=int, default=40, help="search budget; 0: no search")
    parser.add_argument("--epochs", type=int, default=1, help="training before the searches")
    parser.add_argument(
        "--neighbours",
        type=int,
        default=0,
        help="busy processes switching on and off (0: only the machine's own)",
    )
    parser.add_argument("--period", type=float, default=45, help="their seconds on, then off")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.out.exists():
        parser.error(f"--out {args.out} exists; pick another folder or delete it")
    families = args.families.split(",")
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        parser.error(f"--families: unknown {unknown[0]!r}; choose from {', '.join(FAMILIES)}")
    configs = {f: load_config(FAMILIES[f]) for f in families}
    results: dict = {"started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                     "load_average": os.getloadavg(), "families": {}}  # fmt: skip
    results["neighbours"] = {"count": args.neighbours, "period_seconds": args.period}
    with Neighbours(args.neighbours, args.period) if args.neighbours else contextlib.nullcontext():
        measure_families(args, families, configs, results)
    results["load_average_end"] = os.getloadavg()
    (args.out / "results.json").write_text(json.dumps(results, indent=1))


def measure_families(args: argparse.Namespace, families: list[str], configs: dict,
                     results: dict) -> None:  # fmt: skip
    made = {}
    for family in families:
        (args.out / family).mkdir(parents=True)
        made[family] = profile_family(family, configs[family], args.out / family,
                                      args.samples, args.rounds)  # fmt: skip
        results["families"][family] = {"profile": made[family]["summary"]}
        print(family, json.dumps(made[family]["summary"], indent=1), flush=True)
    for family in families:
        checked = check_family(made[family], args.check, args.rounds, configs[family].seed)
        results["families"][family]["check"] = checked
        print(family, json.dumps(checked, indent=1), flush=True)
    if args.budget:
        for family in families:
            spread = search_spread(family, configs[family], args.out / family, args.budget,
                                   args.epochs)  # fmt: skip
            results["families"][family]["search"] = spread
            print(family, json.dumps(spread, indent=1), flush=True)


if __name__ == "__main__":
    main()
