"""The one-shot job (``hwnas oneshot``): learn architecture weights, read cells off them, then
the same evaluators, store and export as the main job.

Each derived cell's network is trained alone from its initial weights for
``oneshot.retrain_epochs`` (DARTS's protocol: the searched weights were shared by every
operation and are not the cell's), written back into the ``nb201`` family, whose evaluators
then measure it (quality on the validation split, cost, latency as ``latency`` says) and
whose export writes it as ONNX with its test quality. With ``oneshot.table``, the cell is
also looked up in NAS-Bench-201: its accuracy there after 200 epochs and its latency on the
table's device, which is the check the issue asks of every derived cell.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from hwnas.benchmarks.nb201 import load_nb201
from hwnas.benchmarks.table import TableBenchmark
from hwnas.config import OneShotConfig, RunConfig
from hwnas.errors import HwnasError
from hwnas.families.base import Family
from hwnas.families.nb201.cell import short_label
from hwnas.files import make_out, run_lock, write_atomic
from hwnas.oneshot.network import OneShotNB201
from hwnas.oneshot.search import select_argmax, select_perturbation, train_architecture
from hwnas.progress import Progress, SilentProgress
from hwnas.run import export_chosen, prepare, run_evaluators
from hwnas.store import Store
from hwnas.tasks.base import Task

SUMMARY = "oneshot.json"


def check_oneshot(config: RunConfig, out: Path) -> TableBenchmark | None:
    """Everything the config and the output folder can tell before data loads: the family,
    the options that do not combine, an earlier run in ``out``, and the table (read now)."""
    settings = config.oneshot
    if config.supernet.name != "nb201":
        raise HwnasError(f"supernet.name: oneshot.method {settings.method} searches the "
                         "NAS-Bench-201 cell space; set supernet.name: nb201")  # fmt: skip
    if config.quantize.precisions:
        raise HwnasError("quantize.precisions: a one-shot run exports float networks")
    if out.exists() and not out.is_dir():
        raise HwnasError(f"--out {out}: exists and is not a folder")
    if (out / SUMMARY).exists() or (out / "run.sqlite").exists():
        raise HwnasError(f"{out} already holds a run; pick another --out")
    channels = config.supernet.overrides.get("channels", 16)
    if settings.method == "pc-darts" and channels % settings.partial_channels:
        raise HwnasError(f"oneshot.partial_channels: {settings.partial_channels} does not "
                         f"divide supernet channels {channels}")  # fmt: skip
    if settings.table is None:
        return None
    try:
        return load_nb201(settings.table, settings.table_dataset, settings.table_device)
    except HwnasError as exc:
        raise HwnasError(f"oneshot.table: {exc}") from None


def train_alone(module: torch.nn.Module, task: Task, settings: OneShotConfig,
                seed: int) -> None:  # fmt: skip
    """Train one fixed network, in place: SGD with the search's settings, cosine schedule."""
    generator = torch.Generator().manual_seed(seed)
    epochs = settings.retrain_epochs
    optimiser = torch.optim.SGD(module.parameters(), settings.learning_rate,
                                momentum=settings.momentum,
                                weight_decay=settings.weight_decay)  # fmt: skip
    steps = max(epochs * task.steps_per_epoch(settings.batch_size), 1)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    module.train()
    for _ in range(epochs):
        for inputs, targets in task.train_batches(settings.batch_size, generator):
            optimiser.zero_grad(set_to_none=True)
            task.loss(module(inputs), targets).backward()
            torch.nn.utils.clip_grad_norm_(module.parameters(), 5.0)
            optimiser.step()
            schedule.step()
    module.eval()


def run_oneshot(
    config: RunConfig, out: Path, progress: Progress | None = None, command: str | None = None
) -> dict[str, Any]:
    """Search, derive, retrain, evaluate and export; returns what ``out/oneshot.json`` holds.
    One process at a time holds ``out``."""
    with run_lock(out):
        return _oneshot(config, out, progress or SilentProgress(), command)


def _oneshot(config: RunConfig, out: Path, progress: Progress, command: str | None) -> dict:
    table = check_oneshot(config, out)
    settings = config.oneshot
    task, family = prepare(config)  # seeds torch: the network below starts the same
    pc = settings.method == "pc-darts"
    network = OneShotNB201(family.config, settings.partial_channels if pc else 1, pc)
    make_out(out)
    started = time.perf_counter()
    history = train_architecture(network, task, settings, config.seed, progress)
    timings = {"search": time.perf_counter() - started}
    cells, perturbation = {}, None
    started = time.perf_counter()
    for selection in settings.selections:
        if selection == "argmax":
            cells[selection] = select_argmax(network)
        else:
            cells[selection], perturbation = select_perturbation(network, task, settings,
                                                                 config.seed, progress)  # fmt: skip
    timings["selection"] = time.perf_counter() - started
    derived: dict[str, Any] = {}
    with Store(out / "run.sqlite") as store:
        for selection, ops in cells.items():
            started = time.perf_counter()
            derived[selection] = _retrain_and_export(config, task, family, ops, selection,
                                                     table, store, out)  # fmt: skip
            timings[f"retrain_and_export_{selection}"] = time.perf_counter() - started
    summary = {
        "command": command or "python: hwnas.oneshot.run_oneshot",
        "method": settings.method,
        "seed": config.seed,
        "derived": derived,
        "perturbation_drops": perturbation,
        "history": history,
        "time_seconds": timings,
        "settings": config.model_dump(mode="json"),
    }
    write_atomic(out / SUMMARY, json.dumps(summary, indent=2))
    return summary


def _retrain_and_export(config: RunConfig, task: Task, family: Family, ops: dict[str, str],
                        selection: str, table: TableBenchmark | None, store: Store,
                        out: Path) -> dict[str, Any]:  # fmt: skip
    """Retrain ``ops``'s network alone, measure it with the run's evaluators, look it up
    in the table, store and export it."""
    arch = family.space().make(ops)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        fresh = type(family).from_config(family.config.to_dict())
    module = fresh.extract(arch)
    train_alone(module, task, config.oneshot, config.seed)
    fresh.load_state_dict(module.state_dict(), strict=False)
    fresh.eval()
    calibration = task.calibration_inputs(config.search.calibration_images, config.seed)
    built = run_evaluators(config, task, fresh, calibration, None)
    started = time.time()
    metrics: dict[str, float] = {}
    for evaluator in built.evaluators.values():
        metrics.update(evaluator.evaluate(arch))
    looked_up = {}
    if table is not None:
        looked_up = {f"table_{k}": v for k, v in table.evaluate(arch).items()}
    evaluation = store.record(f"oneshot/{selection}", arch.key, arch.to_dict(),
                              {**metrics, **looked_up}, wall_time_s=time.time() - started,
                              started_at=started, finished_at=time.time())  # fmt: skip
    exported = export_chosen({selection: evaluation}, config, task, fresh, calibration,
                      built.evaluators["latency"], None, out)[selection]  # fmt: skip
    return {"cell": short_label(ops), "ops": ops, "skip_connections": sum(
        op == "skip_connect" for op in ops.values()), "metrics": evaluation.metrics,
        "exported": exported}  # fmt: skip
