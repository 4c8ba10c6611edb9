"""Latency-profile figures for docs/benchmarks.md (issue 4), on this machine.

1. ``hwnas profile create`` on the default super-network: wall time, layers in the table.
2. ``hwnas profile check`` on fresh random sub-networks (held out from the fit): share
   within +/-10%, MAPE and Kendall tau, for the lookup table and for the predictor.
3. Repeatability: the same sub-networks measured twice, in two separate passes; the median
   relative difference between the passes (single timings, and medians of 5 rounds).
4. A search with ``--latency profile:FILE`` (the main job, reusing a trained checkpoint when
   one is given): every front member is then measured here and compared with its estimate.

    python bench/latency_profile.py --out runs/bench-latency \
        [--checkpoint runs/demo/supernet.safetensors]

With ``--config`` of a precision search (``quantize.precisions``: examples/simq.yaml,
examples/simq-lm.yaml) the profile holds each layer at every precision, the check's
sub-networks are quantized models, and its figures are also given per kind of policy (all
fp32, all int8, all int4, mixed); ``--repeat 0`` skips step 3.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from hwnas import run
from hwnas.config import RunConfig, load_config, with_overrides
from hwnas.families import optimizer_path
from hwnas.hardware.measure import prepare, time_rounds
from hwnas.hardware.profile import accuracy_figures, load_profile, measure_archs
from hwnas.hardware.settings import LatencySettings
from hwnas.profiling import check_job, profile_job
from hwnas.progress import SilentProgress
from hwnas.run import CHECKPOINT, run_job


def repeatability(samples: int, seed: int, rounds: int) -> dict:
    """The same sub-networks measured twice: by one timing each (as a search measures), and
    by the median of ``rounds`` interleaved rounds (as a profile and its check do)."""
    model = run.prepare(RunConfig())[1].eval()
    rng = np.random.default_rng(seed)
    archs = [model.space().sample(rng) for _ in range(samples)]
    example = model.example_input(1)
    settings = LatencySettings()
    calls = [prepare(model.extract(a), example, settings) for a in archs]
    single = time_rounds(calls, settings, 2, seed).ms
    pooled = [np.median(time_rounds(calls, settings, rounds, seed + i).ms, axis=0)
              for i in (1, 2)]  # fmt: skip
    return {
        "samples": samples,
        "single_timing": _differences(single[0], single[1]),
        f"median_of_{rounds}_rounds": _differences(*pooled),
    }


def _differences(first: np.ndarray, second: np.ndarray) -> dict:
    difference = np.abs(second - first) / first
    return {
        "median_relative_difference": float(np.median(difference)),
        "p90_relative_difference": float(np.quantile(difference, 0.9)),
        "max_relative_difference": float(difference.max()),
    }


def by_policy(checked: dict) -> dict:
    """The check's figures for each kind of policy: all at one precision, or mixed."""
    groups: dict[str, list[dict]] = {}
    for arch in checked["archs"]:
        kinds = list(arch.get("precisions", {"fp32": 1}))
        groups.setdefault(f"all {kinds[0]}" if len(kinds) == 1 else "mixed", []).append(arch)
    return {
        name: {
            "table": accuracy_figures(*_columns(archs, "table_ms")),
            "predictor": accuracy_figures(*_columns(archs, "predicted_ms")),
        }
        for name, archs in sorted(groups.items())
    }


def _columns(archs: list[dict], estimate: str) -> tuple[np.ndarray, np.ndarray]:
    return np.array([a["measured_ms"] for a in archs]), np.array([a[estimate] for a in archs])


def profiled_search(base: RunConfig, profile: Path, out: Path, checkpoint: Path | None) -> dict:
    """The main job with latency from the profile; the front measured here afterwards
    (the quantized models, in a precision search)."""
    config = with_overrides(base, {"latency.source": f"profile:{profile}"})
    if checkpoint is not None:
        out.mkdir(parents=True)
        shutil.copy(checkpoint, out / CHECKPOINT)
        shutil.copy(optimizer_path(checkpoint), optimizer_path(out / CHECKPOINT))
    started = time.perf_counter()
    summary = run_job(config, out, resume=checkpoint is not None)
    loaded = load_profile(profile)
    model = run.prepare(config)[1].eval()
    policy = loaded.policy(model) if config.quantize.precisions else None
    space = policy.space if policy else model.space()
    archs = [space.make(f["arch"]) for f in summary["front"]]
    measured = measure_archs(model, archs, loaded.settings, SilentProgress(), "front", rounds=5,
                             policy=policy).ms  # fmt: skip
    predicted = np.array([f["metrics"]["latency_ms"] for f in summary["front"]])
    return {
        "seconds": time.perf_counter() - started,
        "time_seconds": summary["time_seconds"],
        "front": accuracy_figures(measured, predicted),
        "front_points": [
            {"key": f["key"], "predicted_ms": float(p), "measured_ms": float(m)}
            for f, p, m in zip(summary["front"], predicted, measured, strict=True)
        ],
        "exported": summary["exported"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/bench-latency"))
    parser.add_argument("--samples", type=int, default=200, help="fitting sub-networks")
    parser.add_argument("--check", type=int, default=200, help="held-out sub-networks")
    parser.add_argument("--repeat", type=int, default=50, help="sub-networks measured twice")
    parser.add_argument("--config", type=Path, help="run config (default: the main job's)")
    parser.add_argument("--checkpoint", type=Path, help="trained super-network to search")
    parser.add_argument("--skip-search", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.out.exists():
        parser.error(f"--out {args.out} exists; pick another folder or delete it")
    args.out.mkdir(parents=True)
    profile = args.out / "profile.json"
    config = load_config(args.config)
    results: dict = {}
    built = profile_job(config, profile, samples=args.samples)
    results["profile"] = {k: built[k] for k in ("seconds", "layers", "precisions", "validation",
                                                "device")}  # fmt: skip
    print(json.dumps(results["profile"], indent=1), flush=True)
    checked = check_job(profile, args.check, args.out / "check")
    keys = (
        "samples",
        "table",
        "predictor",
        "predictor_recalibrated",
        "predictor_relative",
        "speed_drift",
        "seconds",
    )
    results["check"] = {k: checked[k] for k in keys if k in checked}
    results["check"]["by_policy"] = by_policy(checked)
    print(json.dumps(results["check"], indent=1), flush=True)
    if args.repeat:
        results["repeatability"] = repeatability(args.repeat, seed=7, rounds=5)
        print(json.dumps(results["repeatability"], indent=1), flush=True)
    if not args.skip_search:
        results["search"] = profiled_search(config, profile, args.out / "search",
                                            args.checkpoint)  # fmt: skip
        print(json.dumps({k: results["search"][k] for k in ("seconds", "front")}, indent=1))
    (args.out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
