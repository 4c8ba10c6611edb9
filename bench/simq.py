"""Joint search of architecture and per-layer precision (SimQ-NAS) against the usual recipe.

    .venv/bin/python bench/simq.py --config examples/simq.yaml --out runs/bench-simq

On one trained super-network (trained once, reused by every variant) and at equal numbers of
evaluations, with LINAS:

- ``joint``: the config's ``quantize.precisions`` (architecture and policy searched
  together; quality, latency and weights measured on each quantized model);
- ``fp32``: the same search with every layer fp32 (the config's objectives, with
  ``weight_bytes`` read as fp32 ``size_bytes``);
- ``fp32 then int8``: the fp32 search's front, every layer then quantized to INT8 and
  measured the same way (what most users do).

Latency is timed again at the end for every front member of every variant, in interleaved
rounds, so the machine's drift between the searches cannot favour one. Hypervolume of each
variant's front, in (quality, latency) and in (quality, weight bytes), with every objective
scaled to the range of all variants' points together and the reference point at the worst of
them. Prints JSON and writes it to ``OUT/simq.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from hwnas.config import load_config, with_overrides
from hwnas.hardware.measure import prepare as timed_call
from hwnas.hardware.measure import time_rounds
from hwnas.pareto import Objective, hypervolume, objective_matrix, pareto_mask
from hwnas.precision import PrecisionPolicy, strip_policy, weight_summary
from hwnas.run import CHECKPOINT, _trainer, prepare, run_job, train_job


def front(points: list[dict], objectives: list[Objective]) -> list[dict]:
    mask = pareto_mask(objective_matrix([p["metrics"] for p in points], objectives))
    return [p for p, keep in zip(points, mask, strict=True) if keep]


def scaled_hypervolumes(fronts: dict[str, list[dict]], objectives: list[Objective]) -> dict:
    """Each variant's hypervolume with objectives scaled by all variants' points together."""
    everything = [p for f in fronts.values() for p in f]
    F = objective_matrix([p["metrics"] for p in everything], objectives)
    low, high = F.min(axis=0), F.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    out = {}
    for name, points in fronts.items():
        own = front(points, objectives)
        G = (objective_matrix([p["metrics"] for p in own], objectives) - low) / span
        out[name] = {"hypervolume": hypervolume(G, np.ones(len(objectives))),
                     "front": len(own)}  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=Path("examples/simq.yaml"))
    parser.add_argument("--out", type=Path, default=Path("runs/bench-simq"))
    parser.add_argument("--rounds", type=int, default=5, help="latency re-timing rounds")
    args = parser.parse_args()
    config = load_config(args.config)
    quality = config.search.objectives[0] if config.search.objectives else None
    started = time.perf_counter()
    trained = args.out / "train"
    if not (trained / CHECKPOINT).exists():
        train_job(config, trained)
    runs = {}
    fp32 = with_overrides(config, {"quantize.precisions": [], "search.objectives": [
        o.replace("weight_bytes", "size_bytes") for o in config.search.objectives or []
    ] or None})  # fmt: skip
    for name, variant in (("joint", config), ("fp32", fp32)):
        out = args.out / name
        if not (out / "summary.json").exists():
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            shutil.copy(trained / CHECKPOINT, out / CHECKPOINT)
            shutil.copy(trained / (CHECKPOINT + ".optim"), out / (CHECKPOINT + ".optim"))
            run_job(variant, out, resume=True)
        runs[name] = json.loads((out / "summary.json").read_text())

    task, model = prepare(config)
    trainer = _trainer(config, task, model)
    trainer.restore(trained / CHECKPOINT)
    model.eval()
    calibration = task.calibration_inputs(config.search.calibration_images, config.seed)
    q = config.quantize
    joint = PrecisionPolicy(model, q.precisions, calibration[: q.calibration], q.awq,
                            q.block_size, q.fixed, batchnorm=calibration)  # fmt: skip
    int8 = PrecisionPolicy(model, ["int8"], calibration[: q.calibration], q.awq, q.block_size,
                           batchnorm=calibration)  # fmt: skip
    fp32_only = PrecisionPolicy(model, ["fp32"], calibration[: q.calibration],
                                batchnorm=calibration)  # fmt: skip
    members = []  # (variant, arch of a policy space, policy)
    for entry in runs["joint"]["front"]:
        members.append(("joint", joint.space.make(entry["arch"]), joint))
    for entry in runs["fp32"]["front"]:
        plain = strip_policy(entry["arch"])
        members.append(("fp32", fp32_only.space.make(plain), fp32_only))
        members.append(("fp32 then int8", int8.space.make(plain), int8))
    settings = config.latency.settings()
    example = model.example_input(settings.batch_size)
    points = []
    for variant, arch, policy in members:
        onnx = policy.evaluated(arch)
        metrics = {**task.quality(onnx, "val"), **weight_summary(onnx.model)}
        points.append({"variant": variant, "label": policy.label(arch), "metrics": metrics,
                       "model": onnx})  # fmt: skip
    calls = [timed_call(p.pop("model"), example, settings) for p in points]
    timings = time_rounds(calls, settings, args.rounds).ms
    for p, ms in zip(points, np.median(timings, axis=0), strict=True):
        p["metrics"]["latency_ms"] = float(ms)

    quality_name = (quality or task.default_objective).partition(":")[0]
    direction = "max" if quality_name.endswith("accuracy") else "min"
    by_variant = {v: [p for p in points if p["variant"] == v]
                  for v in ("joint", "fp32", "fp32 then int8")}  # fmt: skip
    planes = {
        "quality_vs_latency": [Objective(quality_name, direction), Objective("latency_ms")],
        "quality_vs_weight_bytes": [Objective(quality_name, direction),
                                    Objective("weight_bytes")],
    }  # fmt: skip
    result = {
        "config": str(args.config),
        "budget": config.search.budget,
        "evaluations": {name: run["evaluations"] for name, run in runs.items()},
        "hypervolume": {
            plane: scaled_hypervolumes(by_variant, objectives)
            for plane, objectives in planes.items()
        },  # fmt: skip
        "points": points,
        "seconds": time.perf_counter() - started,
        "torch_threads": torch.get_num_threads(),
    }
    (args.out / "simq.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "points"}, indent=1))
    for p in points:
        m = p["metrics"]
        print(f"{p['variant']:>15}  {p['label']:<48} {quality_name} {m[quality_name]:.3f}  "
              f"{m['latency_ms']:.3f} ms  {m['weight_bytes'] / 1e3:.1f} kB")  # fmt: skip


if __name__ == "__main__":
    main()
