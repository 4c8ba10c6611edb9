"""The main job: train the super-network, search its sub-networks, export the chosen ones.

Scriptable as ``run_job(RunConfig(), Path("runs/x"))``; ``hwnas run`` is a thin face over it.
Everything a user can get wrong (config, data paths, an existing output folder) is checked
before anything is written.
"""

from __future__ import annotations

import csv
import functools
import json
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from hwnas.config import RunConfig
from hwnas.errors import HwnasError
from hwnas.evaluate.accuracy import AccuracyEvaluator
from hwnas.evaluate.combined import Combined
from hwnas.evaluate.cost import CostEvaluator
from hwnas.evaluate.latency import MeasuredLatency, ProfiledLatency, latency_evaluator
from hwnas.evaluate.memory import MemoryEvaluator
from hwnas.export import export_subnet
from hwnas.files import make_out, write_atomic
from hwnas.pareto import Objective, feasible_mask, knee_index, objective_matrix, pareto_mask
from hwnas.progress import Progress, SilentProgress
from hwnas.report.html import write_report
from hwnas.search import SEARCHERS, make_searcher
from hwnas.store import Evaluation, Store
from hwnas.study import Study
from hwnas.supernet import build_supernet, cost
from hwnas.supernet.memory import parameter_bytes, peak_activation_bytes
from hwnas.supernet.train import SandwichTrainer, TrainSettings

RUN_ID = "main"
CHECKPOINT = "supernet.safetensors"


def metric_names(config: RunConfig) -> tuple[str, ...]:
    """Every metric a run with ``config`` records: what objectives and constraints may name."""
    latency = MeasuredLatency if config.latency.source == "measured" else ProfiledLatency
    return (
        AccuracyEvaluator.metrics
        + CostEvaluator.metrics
        + MemoryEvaluator.metrics
        + latency.metrics
    )


def _check_out(out: Path, resume: bool, marker: str) -> None:
    """Refuse to overwrite a run (``marker`` exists) unless resuming, or to resume nothing."""
    if out.exists() and not out.is_dir():
        raise HwnasError(f"--out {out}: exists and is not a folder")
    started = (out / "run.sqlite").exists() or (out / CHECKPOINT).exists()
    if (out / marker).exists() and not resume:
        raise HwnasError(f"{out} already holds a run; pass --resume to continue it or pick --out")
    if resume and not started:
        raise HwnasError(f"--resume: {out} holds no run to resume")


def front_of(
    evaluations: list[Evaluation], objectives: list[Objective], constraints: list[Objective] = ()
) -> list[Evaluation]:
    """Valid evaluations within every limit that no other such evaluation dominates."""
    valid = [e for e in evaluations if e.metrics is not None]
    ok = feasible_mask([e.metrics for e in valid], [*objectives, *constraints]) if valid else []
    feasible = [e for e, keep in zip(valid, ok, strict=True) if keep]
    if not feasible:
        return []
    mask = pareto_mask(objective_matrix([e.metrics for e in feasible], objectives))
    return [e for e, on in zip(feasible, mask, strict=True) if on]


def prepare(config: RunConfig) -> tuple:
    """``config``'s data and its untrained super-network (nothing written)."""
    from hwnas.data import load_dataset

    torch.manual_seed(config.seed)
    data = load_dataset(
        config.data.name, config.data.path, seed=config.seed, image_size=config.data.image_size
    )
    model = build_supernet(
        config.supernet.name, config.supernet.overrides, data.in_channels, data.num_classes
    )
    return data, model


def _train(config: RunConfig, data, model, out: Path, progress: Progress) -> list:
    """Sandwich training with a checkpoint after every epoch.

    An existing checkpoint in ``out`` is continued (or reused, when complete): that is how
    ``--resume`` and ``hwnas train`` followed by ``hwnas run`` avoid training twice. One made
    with other settings is refused.
    """
    train_x, train_y = data.train.tensors
    trainer = SandwichTrainer(
        model, train_x, train_y, TrainSettings(**config.train.model_dump()), seed=config.seed,
        augment=data.augment, data=config.data.model_dump(mode="json"),
    )  # fmt: skip
    checkpoint = out / CHECKPOINT
    if checkpoint.exists():
        trainer.restore(checkpoint)
    history = trainer.fit(progress, checkpoint)
    model.eval()
    return history


def train_job(
    config: RunConfig, out: Path, resume: bool = False, progress: Progress | None = None
) -> dict:
    """``hwnas train``: only the super-network, written to ``out/supernet.safetensors``."""
    _check_out(out, resume, CHECKPOINT)
    started = time.perf_counter()
    data, model = prepare(config)
    make_out(out)
    history = _train(config, data, model, out, progress or SilentProgress())
    return {"checkpoint": str(out / CHECKPOINT), "training": history,
            "seconds": time.perf_counter() - started}  # fmt: skip


def run_job(
    config: RunConfig, out: Path, resume: bool = False, progress: Progress | None = None
) -> dict:
    progress = progress or SilentProgress()
    objectives = config.search.parsed_objectives()
    constraints = config.search.parsed_constraints()
    if config.search.searcher not in SEARCHERS:
        known = ", ".join(SEARCHERS)
        raise HwnasError(f"search.searcher: unknown {config.search.searcher!r}; choose {known}")
    known = metric_names(config)
    for what, items in (("objectives", objectives), ("constraints", constraints)):
        unknown = [o.name for o in items if o.name not in known]
        if unknown:
            raise HwnasError(
                f"search.{what}: no metric {unknown[0]!r}; recorded are {', '.join(known)}"
            )
    _check_out(out, resume, "run.sqlite")
    from hwnas.data import calibration_subset

    timings: dict[str, float] = {}
    started = time.perf_counter()
    data, model = prepare(config)
    space = model.space()
    input_shape = data.input_shape
    # accuracy and latency evaluate the same arch back to back: extract it once for both
    build = functools.lru_cache(maxsize=1)(model.extract)
    latency = latency_evaluator(
        config.latency.source, config.latency.settings(), config.supernet.name, model, build,
        input_shape,
    )  # fmt: skip
    try:
        searcher = make_searcher(
            config.search.searcher, space, objectives, config.seed, config.search.options,
            constraints=constraints,
        )  # fmt: skip
    except HwnasError as exc:
        raise HwnasError(f"search.options: {exc}") from None
    make_out(out)
    timings["data"] = time.perf_counter() - started

    started = time.perf_counter()
    history = _train(config, data, model, out, progress)
    timings["train"] = time.perf_counter() - started

    # -- search -----------------------------------------------------------------------
    started = time.perf_counter()
    val_x, val_y = data.val.tensors
    calibration = calibration_subset(data, config.search.calibration_images, config.seed)
    size = input_shape[-1]
    evaluator = Combined(
        [
            AccuracyEvaluator(build, calibration, val_x, val_y),
            CostEvaluator(lambda a: cost(a, model.config)),
            MemoryEvaluator(
                lambda a: peak_activation_bytes(a, model.config, size),
                lambda a: parameter_bytes(a, model.config)["int8"],
            ),
            latency,
        ]
    )
    with Store(out / "run.sqlite") as store:
        study = Study(
            space=space,
            evaluator=evaluator,
            objectives=objectives,
            searcher=searcher,
            store=store,
            run_id=RUN_ID,
            budget=config.search.budget,
            config={**config.model_dump(mode="json"), "latency_from": latency.identity()},
            progress=progress,
        )
        evaluations = study.optimize()
    timings["search"] = time.perf_counter() - started

    # -- export -----------------------------------------------------------------------
    started = time.perf_counter()
    front = front_of(evaluations, objectives, constraints)
    if not front:
        raise HwnasError("no evaluated sub-network meets the constraints; relax search.constraints")
    F = objective_matrix([e.metrics for e in front], objectives)
    knee = front[knee_index(F)]
    chosen = {"knee": knee}
    for o in objectives:
        best = int(np.argmin(F[:, objectives.index(o)]))
        label = {"accuracy": "most_accurate", "latency_ms": "fastest"}.get(o.name, f"best_{o.name}")
        chosen[label] = front[best]
    exported = {}
    for label, e in chosen.items():
        arch = space.make(e.arch)
        diff = export_subnet(
            _calibrated(model, arch, calibration), arch, input_shape,
            out / "models" / f"{label}.onnx", e.metrics,
        )  # fmt: skip
        exported[label] = {"key": e.arch_key, "onnx": f"models/{label}.onnx", "max_abs_diff": diff}
    if isinstance(latency, ProfiledLatency):
        archs = [space.make(e.arch) for e in chosen.values()]
        estimates = [e.metrics["latency_ms"] for e in chosen.values()]
        for label, here in zip(
            chosen, latency.measure_here(archs, estimates, input_shape), strict=True
        ):
            exported[label].update(here)
    timings["export"] = time.perf_counter() - started

    summary = {
        "front": [{"key": e.arch_key, "arch": e.arch, "metrics": e.metrics} for e in front],
        "knee": knee.arch_key,
        "exported": exported,
        "evaluations": len(evaluations),
        "settings": config.model_dump(mode="json"),
        "objectives": [asdict(o) for o in objectives],
        "constraints": [asdict(c) for c in constraints],
        "latency": latency.provenance(),
        "training": history,
        "searcher_seconds_per_candidate": study.seconds_per_candidate,
        "time_seconds": {**timings, "total": sum(timings.values())},
    }
    write_atomic(out / "summary.json", json.dumps(summary, indent=2))
    _write_front_csv(out / "front.csv", front)
    write_report(
        out / "report.html",
        f"hwnas run: {config.data.name}, {config.search.searcher}",
        [{"key": e.arch_key, "metrics": e.metrics} for e in evaluations],
        [{"key": e.arch_key, "metrics": e.metrics} for e in front],
        knee.arch_key,
        objectives,
        {"config": json.dumps(config.model_dump(mode="json")), **summary["time_seconds"]},
        constraints,
    )
    return summary


def _calibrated(model, arch, calibration: torch.Tensor) -> torch.nn.Module:
    from hwnas.evaluate.accuracy import recalibrate_batchnorm

    module = model.extract(arch)
    recalibrate_batchnorm(module, calibration)
    return module


def _write_front_csv(path: Path, front: list[Evaluation]) -> None:
    names = list(front[0].metrics)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["key", *names, "arch"])
        for e in front:
            writer.writerow([e.arch_key, *(e.metrics[n] for n in names), json.dumps(e.arch)])
