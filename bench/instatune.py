"""InstaTune from a dense model against the alternatives (issue 11, point 4), on one config.

    .venv/bin/python bench/instatune.py --config examples/lm.yaml --out runs/bench-instatune \
        --dense-epochs 4 --tune-epochs 3 --scratch-epochs 5

- ``instatune``: ``hwnas train --dense`` for ``--dense-epochs`` (the largest network alone),
  then ``hwnas instatune`` fine-tuning for ``--tune-epochs`` and the config's search.
- ``scratch``: ``hwnas run`` training the super-network from scratch for ``--scratch-epochs``,
  chosen so that its training compute matches the two steps above (the measured seconds of
  each are reported next to it), and the same search.
- ``pruned``: the dense model sorted by the same importance, cut at fixed ratios without
  search or fine-tuning (every layer at one heads and one feed-forward ratio, full depth and
  width, then narrower widths and shallower depths): Minitron's width pruning.

Every point of the three is evaluated again on the validation split and timed again in
interleaved rounds at the end, so the machine's drift between the steps cannot favour one.
Hypervolume of each in (quality, latency) and (quality, parameters), every objective scaled
by all points together; and for each pruned model, whether an InstaTune front member is at
least as good and no larger. Prints JSON and writes ``OUT/instatune.json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import time
from pathlib import Path

import numpy as np

from hwnas.config import load_config, with_overrides
from hwnas.families import load_checkpoint
from hwnas.hardware.measure import prepare as timed_call
from hwnas.hardware.measure import time_rounds
from hwnas.instatune import start_from_dense
from hwnas.pareto import Objective
from hwnas.run import CHECKPOINT, prepare, run_job, train_job
from simq import scaled_hypervolumes


def _stage(out: Path, job) -> dict:
    """Run ``job`` once into ``out`` (a rerun of the benchmark reuses finished steps)."""
    done = out / "step.json"
    if done.exists():
        return json.loads(done.read_text())
    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    result = job(out)
    record = {"seconds": time.perf_counter() - started, "result": result}
    done.write_text(json.dumps(record, indent=1, default=str))
    return record


def _uniform_archs(space, width_choices: int = 2, depth_choices: int = 2) -> list[dict]:
    """Every layer at one heads count and one feed-forward ratio; the largest widths and
    depths: fixed-ratio pruning with no search."""
    options = {c.name: c.options for c in space.choices}
    heads = options["l0.heads"]
    ratios = options["l0.mlp_ratio"]
    archs = []
    widths = options["width"][-width_choices:]
    depths = options["depth"][-depth_choices:]
    for h, r, w, d in itertools.product(heads, ratios, widths, depths):
        values = {"width": w, "depth": d}
        for c in space.choices:
            if c.name.startswith("l"):
                kind = c.name.rsplit(".", 1)[-1]
                values[c.name] = {"heads": h, "mlp_ratio": r}.get(kind, c.options[0])
        archs.append(space.make(values))
    return archs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=Path("examples/lm.yaml"))
    parser.add_argument("--out", type=Path, default=Path("runs/bench-instatune"))
    parser.add_argument("--dense-epochs", type=int, default=4)
    parser.add_argument("--tune-epochs", type=int, default=3)
    parser.add_argument("--scratch-epochs", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=5, help="latency re-timing rounds")
    args = parser.parse_args()
    config = load_config(args.config)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    dense_config = with_overrides(config, {"train.dense": True, "train.epochs": args.dense_epochs})
    dense = _stage(args.out / "dense", lambda out: train_job(dense_config, out))
    checkpoint = args.out / "dense" / CHECKPOINT
    tune_config = with_overrides(config, {"train.epochs": args.tune_epochs})
    tuned = _stage(args.out / "instatune",
                   lambda out: run_job(tune_config, out, dense=checkpoint))  # fmt: skip
    scratch_config = with_overrides(config, {"train.epochs": args.scratch_epochs})
    scratch = _stage(args.out / "scratch", lambda out: run_job(scratch_config, out))

    task, model = prepare(config)
    calibration = task.calibration_inputs(config.search.calibration_images, config.seed)
    start_from_dense(checkpoint, model, task, calibration)  # sorted, not fine-tuned
    members = [("pruned", model, arch) for arch in _uniform_archs(model.space())]
    for name, summary in (("instatune", tuned), ("scratch", scratch)):
        net = prepare(config)[1]
        load_checkpoint(args.out / name / CHECKPOINT, net)
        net.eval()
        members += [(name, net, net.space().make(f["arch"])) for f in summary["result"]["front"]]

    quality = (config.search.objectives or [task.default_objective])[0].partition(":")[0]
    settings = config.latency.settings()
    points, calls = [], []
    for variant, net, arch in members:
        module = net.extract(arch).eval()
        metrics = task.quality(module, "val")
        metrics["params"] = float(net.cost(arch).params)
        points.append({"variant": variant, "label": net.label(arch), "metrics": metrics})
        calls.append(timed_call(module, net.example_input(settings.batch_size), settings))
    timings = time_rounds(calls, settings, args.rounds)
    for p, ms in zip(points, np.median(timings, axis=0), strict=True):
        p["metrics"]["latency_ms"] = float(ms)

    direction = "max" if quality.endswith("accuracy") else "min"
    by_variant = {v: [p for p in points if p["variant"] == v]
                  for v in ("instatune", "scratch", "pruned")}  # fmt: skip
    planes = {
        "quality_vs_latency": [Objective(quality, direction), Objective("latency_ms")],
        "quality_vs_params": [Objective(quality, direction), Objective("params")],
    }
    sign = 1 if direction == "min" else -1
    dominated = [
        any(sign * t["metrics"][quality] <= sign * p["metrics"][quality]
            and t["metrics"]["params"] <= p["metrics"]["params"]
            for t in by_variant["instatune"])
        for p in by_variant["pruned"]
    ]  # fmt: skip
    result = {
        "config": str(args.config),
        "epochs": {
            "dense": args.dense_epochs,
            "instatune": args.tune_epochs,
            "scratch": args.scratch_epochs,
        },
        "training_seconds": {
            "dense": sum(r["seconds"] for r in dense["result"]["training"]),
            "instatune": sum(r["seconds"] for r in tuned["result"]["training"]),
            "scratch": sum(r["seconds"] for r in scratch["result"]["training"]),
        },
        "dense_val_metrics": tuned["result"]["instatune"]["dense_val_metrics"],
        "hypervolume": {
            plane: scaled_hypervolumes(by_variant, objectives)
            for plane, objectives in planes.items()
        },  # fmt: skip
        "pruned_dominated_by_instatune": f"{sum(dominated)} of {len(dominated)}",
        "points": points,
        "seconds": time.perf_counter() - started,
    }
    (args.out / "instatune.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k != "points"}, indent=1))
    for p in sorted(points, key=lambda p: (p["variant"], p["metrics"]["params"])):
        m = p["metrics"]
        print(
            f"{p['variant']:>10} {p['label']:<40} {quality} {m[quality]:.4f} "
            f"{m['latency_ms']:.3f} ms {m['params'] / 1e3:.0f}k params"
        )


if __name__ == "__main__":
    main()
