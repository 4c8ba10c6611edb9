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


def _uniform_archs(space, width_choices: int = 2, depth_choices: int = 2) -> list:
    """Every layer at one value of each per-layer numeric choice (heads, feed-forward ratio),
    the other per-layer choices at their first option, the last ``width_choices`` widths and
    ``depth_choices`` depths: fixed-ratio pruning with no search, for any family whose layer
    choices are named ``l<i>.<kind>``."""
    layered = [c for c in space.choices if c.name.startswith("l0.") and c.condition is None]
    swept = {c.name[3:]: c.options for c in layered
             if all(isinstance(o, int | float) for o in c.options)}  # fmt: skip
    kept = {"width": width_choices, "depth": depth_choices}
    shared = {c.name: c.options[-kept[c.name] :] for c in space.choices if c.name in kept}
    archs = {}
    for combination in itertools.product(*swept.values(), *shared.values()):
        layer_values = dict(zip(swept, combination[: len(swept)], strict=True))
        values = dict(zip(shared, combination[len(swept) :], strict=True))
        for c in space.choices:
            if c.name.startswith("l") and "." in c.name:
                values[c.name] = layer_values.get(c.name.split(".", 1)[1], c.options[0])
        arch = space.make(values)
        archs[arch.key] = arch
    return list(archs.values())


def _claim(points: list[dict], quality: str, sign: int, size: float = 1.5,
           speed: float = 1.3, loss: float = 0.02) -> dict:  # fmt: skip
    """The LLaMA-NAS claim: InstaTune's sub-networks against the dense model, each as
    parameters and latency ratios and the relative change in quality; which ones are at least
    ``size`` times smaller and ``speed`` times faster, worse by at most ``loss`` (``sign``:
    1 where lower quality values are better, -1 where higher ones are)."""
    dense = next(p["metrics"] for p in points if p["variant"] == "dense")
    rows = []
    for p in points:
        if p["variant"] != "instatune":
            continue
        m = p["metrics"]
        rows.append({
            "label": p["label"],
            "smaller": dense["params"] / m["params"],
            "faster": dense["latency_ms"] / m["latency_ms"],
            "quality_change": m[quality] / dense[quality] - 1,
        })  # fmt: skip
    meets = [r for r in rows if r["smaller"] >= size and r["faster"] >= speed
             and sign * r["quality_change"] <= loss]  # fmt: skip
    return {"criterion": f">= {size}x smaller, >= {speed}x faster, quality within {loss:.0%}",
            "dense": dense, "members": rows, "meeting": meets}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=Path("examples/lm.yaml"))
    parser.add_argument("--out", type=Path, default=Path("runs/bench-instatune"))
    parser.add_argument("--dense-epochs", type=int, default=4)
    parser.add_argument("--tune-epochs", type=int, default=3)
    parser.add_argument("--scratch-epochs", type=int, default=5)
    parser.add_argument(
        "--no-scratch",
        action="store_true",
        help="skip training from scratch (the LLaMA-NAS claim needs none)",
    )
    parser.add_argument(
        "--tune-set",
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="a setting of the fine-tuning only, e.g. train.learning_rate=5e-4",
    )
    parser.add_argument("--rounds", type=int, default=5, help="latency re-timing rounds")
    args = parser.parse_args()
    tune_settings = {k: json.loads(v) for k, _, v in (s.partition("=") for s in args.tune_set)}
    config = load_config(args.config)
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    dense_config = with_overrides(config, {"train.dense": True, "train.epochs": args.dense_epochs})
    dense = _stage(args.out / "dense", lambda out: train_job(dense_config, out))
    checkpoint = args.out / "dense" / CHECKPOINT
    tune_config = with_overrides(config, {"train.epochs": args.tune_epochs, **tune_settings})
    tuned = _stage(args.out / "instatune",
                   lambda out: run_job(tune_config, out, dense=checkpoint))  # fmt: skip
    scratch_config = with_overrides(config, {"train.epochs": args.scratch_epochs})
    runs = {"instatune": tuned}
    if not args.no_scratch:
        runs["scratch"] = _stage(args.out / "scratch", lambda out: run_job(scratch_config, out))

    task, model = prepare(config)
    calibration = task.calibration_inputs(config.search.calibration_images, config.seed)
    start_from_dense(checkpoint, model, task, calibration)  # sorted, not fine-tuned
    members = [("dense", model, model.teacher_arch())]
    members += [("pruned", model, arch) for arch in _uniform_archs(model.space())]
    for name, summary in runs.items():
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
    timings = time_rounds(calls, settings, args.rounds).ms
    for p, ms in zip(points, np.median(timings, axis=0), strict=True):
        p["metrics"]["latency_ms"] = float(ms)

    direction = "max" if quality.endswith("accuracy") else "min"
    by_variant = {v: [p for p in points if p["variant"] == v] for v in (*runs, "pruned")}
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
            "scratch": None if args.no_scratch else args.scratch_epochs,
        },
        "training_seconds": {
            "dense": sum(r["seconds"] for r in dense["result"]["training"]),
            **{
                name: sum(r["seconds"] for r in run["result"]["training"])
                for name, run in runs.items()
            },
        },  # fmt: skip
        "dense_val_metrics": tuned["result"]["instatune"]["dense_val_metrics"],
        "hypervolume": {
            plane: scaled_hypervolumes(by_variant, objectives)
            for plane, objectives in planes.items()
        },  # fmt: skip
        "pruned_dominated_by_instatune": f"{sum(dominated)} of {len(dominated)}",
        "llama_nas_claim": _claim(points, quality, sign),
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
