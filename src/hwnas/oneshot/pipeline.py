"""The one-shot job (``hwnas oneshot``): learn architecture weights, read sub-networks off
them, then the same evaluators, store and export as the main job.

DARTS and PC-DARTS (``hwnas.oneshot.search``) search the NAS-Bench-201 cell space and read
cells off by ``selections``; FBNet (``hwnas.oneshot.fbnet``) searches the MobileNet's
per-layer choices against a device profile's latency and reads off the most likely
sub-network and the most probable of its draws that the profile puts on the target. Each
derived sub-network is then trained alone, from freshly initialised weights, for
``oneshot.retrain_epochs`` (DARTS's protocol: the searched weights were shared by every
choice and are not the sub-network's), as the family's active sub-network, whose evaluators
then measure it (quality on the validation split, cost, latency as ``latency`` says) and
whose export writes it as ONNX with its test quality. With ``oneshot.table``, a cell is also
looked up in NAS-Bench-201: its accuracy there after 200 epochs and its latency on the
table's device. FBNet's result carries the latency it was asked for and the profile's
estimate beside the measured one.
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
from hwnas.hardware.profile import Profile, check_fits, load_profile
from hwnas.oneshot.fbnet import FBNetSearch, choice_probabilities, select_on_target, train_fbnet
from hwnas.oneshot.network import OneShotNB201
from hwnas.oneshot.search import (
    select_argmax,
    select_perturbation,
    train_architecture,
    weight_optimiser,
    weight_step,
)
from hwnas.progress import Progress, SilentProgress
from hwnas.run import export_chosen, prepare, run_evaluators
from hwnas.space import Arch
from hwnas.store import Store
from hwnas.tasks.base import Task

SUMMARY = "oneshot.json"


SEARCHES = {"darts": "nb201", "pc-darts": "nb201", "fbnet": "mobilenet"}
"""The family each method searches."""
SPACES = {"nb201": "the NAS-Bench-201 cell space", "mobilenet": "the MobileNet's per-layer choices"}


def check_oneshot(config: RunConfig, out: Path) -> TableBenchmark | Profile | None:
    """Everything the config and the output folder can tell before data loads: the family,
    the options that do not combine, an earlier run in ``out``, and the NAS-Bench-201 table
    or the device profile (read now; whether the profile fits the network is checked once
    it is built, still before training)."""
    settings = config.oneshot
    family = SEARCHES[settings.method]
    if config.supernet.name != family:
        raise HwnasError(f"supernet.name: oneshot.method {settings.method} searches "
                         f"{SPACES[family]}; set supernet.name: {family}")  # fmt: skip
    if config.quantize.precisions:
        raise HwnasError("quantize.precisions: a one-shot run exports float networks")
    if out.exists() and not out.is_dir():
        raise HwnasError(f"--out {out}: exists and is not a folder")
    if (out / SUMMARY).exists() or (out / "run.sqlite").exists():
        raise HwnasError(f"{out} already holds a run; pick another --out")
    if settings.method == "fbnet":
        return _check_fbnet(settings)
    if settings.profile is not None or settings.latency_target_ms is not None:
        raise HwnasError(f"oneshot.profile: oneshot.method {settings.method} has no latency "
                         "term; fbnet has")  # fmt: skip
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


def _check_fbnet(settings: OneShotConfig) -> Profile:
    if settings.table is not None:
        raise HwnasError("oneshot.table: a NAS-Bench-201 table; fbnet searches the MobileNet")
    if settings.profile is None or settings.latency_target_ms is None:
        missing = "profile" if settings.profile is None else "latency_target_ms"
        raise HwnasError(f"oneshot.{missing}: fbnet needs a device profile (hwnas profile "
                         "create) and the latency to aim at (latency_target_ms)")  # fmt: skip
    try:
        return load_profile(settings.profile)
    except HwnasError as exc:
        raise HwnasError(f"oneshot.profile: {exc}") from None


def train_alone(module: torch.nn.Module, task: Task, settings: OneShotConfig,
                seed: int) -> None:  # fmt: skip
    """Train one fixed network, in place: SGD with the search's settings, cosine schedule."""
    generator = torch.Generator().manual_seed(seed)
    epochs = settings.retrain_epochs
    parameters = list(module.parameters())
    optimiser = weight_optimiser(parameters, settings)
    steps = max(epochs * task.steps_per_epoch(settings.batch_size), 1)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    module.train()
    for _ in range(epochs):
        for inputs, targets in task.train_batches(settings.batch_size, generator):
            weight_step(optimiser, parameters, task.loss(module(inputs), targets))
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
    checked = check_oneshot(config, out)
    settings = config.oneshot
    task, family = prepare(config)  # seeds torch: the network below starts the same
    if settings.method == "fbnet":
        check_fits(checked, settings.profile, "mobilenet", family)
    make_out(out)
    started = time.perf_counter()
    if settings.method == "fbnet":
        archs, found = _search_fbnet(config, task, family, checked, progress)
    else:
        archs, found = _search_cells(config, task, family, progress)
    timings = {"search_and_selection": time.perf_counter() - started}
    derived: dict[str, Any] = {}
    table = checked if isinstance(checked, TableBenchmark) else None
    with Store(out / "run.sqlite") as store:
        for selection, arch in archs.items():
            started = time.perf_counter()
            derived[selection] = {**_retrain_and_export(config, task, family, arch, selection,
                                                        table, store, out),
                                  **found.pop(selection)}  # fmt: skip
            timings[f"retrain_and_export_{selection}"] = time.perf_counter() - started
    if settings.method == "fbnet":
        for result in derived.values():
            result["target_error_pct"] = 100 * (
                result["metrics"]["latency_ms"] / settings.latency_target_ms - 1
            )
    summary = {
        "command": command or "python: hwnas.oneshot.run_oneshot",
        "method": settings.method,
        "seed": config.seed,
        "derived": derived,
        **found,
        "time_seconds": timings,
        "settings": config.model_dump(mode="json"),
    }
    write_atomic(out / SUMMARY, json.dumps(summary, indent=2))
    return summary


def _search_cells(config: RunConfig, task: Task, family: Family,
                  progress: Progress) -> tuple[dict[str, Arch], dict[str, Any]]:  # fmt: skip
    """DARTS or PC-DARTS: the cell of each selection, and per selection and for the summary
    what the search found besides."""
    settings = config.oneshot
    pc = settings.method == "pc-darts"
    network = OneShotNB201(family.config, settings.partial_channels if pc else 1, pc)
    history = train_architecture(network, task, settings, config.seed, progress)
    cells, perturbation = {}, None
    for selection in settings.selected:
        if selection == "argmax":
            cells[selection] = select_argmax(network)
        else:
            cells[selection], perturbation = select_perturbation(network, task, settings,
                                                                 config.seed, progress)  # fmt: skip
    found: dict[str, Any] = {selection: {
        "cell": short_label(ops), "ops": ops,
        "skip_connections": sum(op == "skip_connect" for op in ops.values()),
    } for selection, ops in cells.items()}  # fmt: skip
    found.update(perturbation_drops=perturbation, history=history)
    return {s: family.space().make(ops) for s, ops in cells.items()}, found


def _search_fbnet(config: RunConfig, task: Task, family: Family, profile: Profile,
                  progress: Progress) -> tuple[dict[str, Arch], dict[str, Any]]:  # fmt: skip
    """FBNet: the sub-network of each selection, with the latency asked for and what the
    profile estimates of it (beside which the evaluators' measured latency lands)."""
    settings = config.oneshot
    search = FBNetSearch(family)
    history = train_fbnet(search, task, settings, profile, config.seed, progress)
    target = settings.latency_target_ms
    archs, found = {}, {}
    for selection in settings.selected:
        drawn: dict[str, Any] = {}
        if selection == "argmax":
            archs[selection] = search.most_likely()
        else:
            archs[selection], drawn = select_on_target(search, profile, target,
                                                       settings.target_draws,
                                                       settings.target_tolerance,
                                                       config.seed)  # fmt: skip
        table_ms, estimate = profile.estimate(family, [archs[selection]])
        found[selection] = {
            "latency_target_ms": target, "profile_table_ms": float(table_ms[0]),
            "profile_estimate_ms": float(estimate[0]),
            "latency_target_relative": target / profile.reference.ms, **drawn,
        }  # fmt: skip
    found.update(probabilities=choice_probabilities(search), history=history)
    return archs, found


def _retrain_and_export(config: RunConfig, task: Task, family: Family, arch: Arch,
                        selection: str, table: TableBenchmark | None, store: Store,
                        out: Path) -> dict[str, Any]:  # fmt: skip
    """Train ``arch``'s sub-network alone from freshly initialised weights, measure it with
    the run's evaluators, look it up in the table, store and export it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        fresh = type(family).from_config(family.config.to_dict())
    fresh.set_active(arch)
    train_alone(fresh, task, config.oneshot, config.seed)
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
    return {"label": family.label(arch), "arch": arch.to_dict(), "metrics": evaluation.metrics,
            "exported": exported}  # fmt: skip
