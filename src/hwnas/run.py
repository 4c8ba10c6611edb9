"""The main job as a short pipeline: plan, prepare, train, search, export, report.

Scriptable as ``run_job(RunConfig(), Path("runs/x"))``; ``hwnas run`` is a thin face over it.
Everything a user can get wrong (config, data paths, an existing output folder, objectives
naming no metric, a family that cannot serve the task) is checked before anything is
written, and before the minutes of training start.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hwnas import __version__
from hwnas.config import RunConfig, validated
from hwnas.errors import HwnasError, KeyedError
from hwnas.evaluate.base import Evaluator
from hwnas.evaluate.context import EvaluationContext, EvaluationPlan
from hwnas.evaluate.latency import ProfiledLatency
from hwnas.evaluate.quality import recalibrate_batchnorm
from hwnas.evaluate.registry import create_evaluators, describe_metrics, metric_names
from hwnas.execute import Executor, Part, SerialExecutor, Workload, make_executor
from hwnas.execute.base import Built
from hwnas.export import export_subnet, write_model
from hwnas.families import build_family, family_type, load_checkpoint
from hwnas.families.base import Family
from hwnas.files import make_out, run_lock, write_atomic
from hwnas.instatune import DenseStart, config_for_dense, pretrained_network, start_from_dense
from hwnas.pareto import Objective, objective_matrix
from hwnas.precision import DeployedModel, PrecisionPolicy
from hwnas.progress import Progress, SilentProgress
from hwnas.results import front_of, knee_of, study_summary, write_results
from hwnas.search import SEARCHERS, make_searcher
from hwnas.search.base import Searcher
from hwnas.space import Arch, Space
from hwnas.store import Evaluation, Store
from hwnas.study import Study
from hwnas.tasks import load_task, task_type
from hwnas.tasks.base import Task
from hwnas.train.sandwich import SandwichTrainer, resolve_settings

RUN_ID = "main"
CHECKPOINT = "supernet.safetensors"


@dataclass(frozen=True)
class Plan:
    """A run as checked from its config alone: what it optimises, limits and records."""

    config: RunConfig
    task: type[Task]
    objectives: list[Objective]
    constraints: list[Objective]
    metrics: tuple[str, ...]


def evaluation_plan(config: RunConfig) -> EvaluationPlan:
    """What the evaluators of a run of ``config`` will be asked for: its metrics follow."""
    precision = bool(config.quantize.precisions)
    proxies = tuple(config.proxies.names)
    return EvaluationPlan(task_type(config.data.name), config.latency.source, precision, proxies)


def plan_run(config: RunConfig) -> Plan:
    """Check what the config alone can tell (no data read, nothing built)."""
    task = task_type(config.data.name)
    family_type(config.supernet.name)
    default = [task.default_objective, "latency_ms:min"]
    objectives = config.search.parsed_objectives(default)
    constraints = config.search.parsed_constraints(default)
    if config.search.searcher not in SEARCHERS:
        known = ", ".join(SEARCHERS)
        raise HwnasError(f"search.searcher: unknown {config.search.searcher!r}; choose {known}")
    known = metric_names(evaluation_plan(config))
    for what, items in (("objectives", objectives), ("constraints", constraints)):
        unknown = [o.name for o in items if o.name not in known]
        if unknown:
            raise HwnasError(
                f"search.{what}: no metric {unknown[0]!r}; recorded are {', '.join(known)}"
            )
    return Plan(config, task, objectives, constraints, known)


def prepare(config: RunConfig) -> tuple[Task, Family]:
    """``config``'s task (its data loaded) and its untrained super-network (nothing written)."""
    torch.manual_seed(config.seed)
    data = config.data
    try:
        task = load_task(data.name, data.path, config.seed, **data.options())
    except KeyedError as exc:  # a loader option's problem, said where the config sets it
        raise exc.under("data") from None
    model = build_family(config.supernet.name, config.supernet.overrides, task.spec)
    return task, model


def _check_out(out: Path, resume: bool, marker: str) -> None:
    """Refuse to overwrite a run (``marker`` exists) unless resuming, or to resume nothing."""
    if out.exists() and not out.is_dir():
        raise HwnasError(f"--out {out}: exists and is not a folder")
    started = (out / "run.sqlite").exists() or (out / CHECKPOINT).exists()
    if (out / marker).exists() and not resume:
        raise HwnasError(f"{out} already holds a run; pass --resume to continue it or pick --out")
    if resume and not started:
        raise HwnasError(f"--resume: {out} holds no run to resume")
    if (out / "run.sqlite").exists():  # a damaged store must not cost a training first
        with Store(out / "run.sqlite") as store:
            store.run_config(RUN_ID)
            store.evaluations(RUN_ID)


# -- train -------------------------------------------------------------------------------
def _trainer(
    config: RunConfig, task: Task, model: Family, start: DenseStart | None = None
) -> SandwichTrainer:
    """The trainer of ``config``; from a dense model (``start``), every sub-network is
    distilled from it from the first step (``teacher_only`` 0 unless the config says)."""
    train = config.train
    if start is not None and train.teacher_only is None:
        train = train.model_copy(update={"teacher_only": 0.0})
    settings = resolve_settings(train, type(model), type(task))
    identity = {**config.data.model_dump(mode="json"), **task.identity(),
                **(start.identity if start else {})}  # fmt: skip
    teacher = start.teacher if start else None
    return SandwichTrainer(model, task, settings, config.seed, identity, teacher)


def _train(trainer: SandwichTrainer, out: Path, progress: Progress) -> list:
    """Sandwich training with a checkpoint after every epoch.

    An existing checkpoint in ``out`` is continued (or reused, when complete): that is how
    ``--resume`` and ``hwnas train`` followed by ``hwnas run`` avoid training twice. One made
    with other settings is refused.
    """
    checkpoint = out / CHECKPOINT
    if checkpoint.exists():
        trainer.restore(checkpoint)
    history = trainer.fit(progress, checkpoint)
    if not checkpoint.exists():  # no epoch to train: the weights searched are written still,
        trainer.save(checkpoint)  # for workers to load
    trainer.model.eval()
    return history


def train_job(
    config: RunConfig, out: Path, resume: bool = False, progress: Progress | None = None
) -> dict:
    """``hwnas train``: only the super-network, written to ``out/supernet.safetensors``."""
    with run_lock(out):
        return _train_only(config, out, resume, progress)


def _train_only(config: RunConfig, out: Path, resume: bool, progress: Progress | None) -> dict:
    _check_out(out, resume, CHECKPOINT)
    started = time.perf_counter()
    task, model = prepare(config)
    trainer = _trainer(config, task, model)
    make_out(out)
    history = _train(trainer, out, progress or SilentProgress())
    return {"checkpoint": str(out / CHECKPOINT), "training": history,
            "seconds": time.perf_counter() - started}  # fmt: skip


# -- search ------------------------------------------------------------------------------
def _policy(config: RunConfig, model: Family, calibration: torch.Tensor) -> PrecisionPolicy | None:
    """The precision policy of a precision search (``quantize.precisions``), else None."""
    q = config.quantize
    if not q.precisions:
        return None
    return PrecisionPolicy(model, q.precisions, calibration[: q.calibration], q.awq,
                           q.block_size, q.fixed, batchnorm=calibration)  # fmt: skip


def run_evaluators(
    config: RunConfig, task: Task, model: Family, calibration: torch.Tensor,
    policy: PrecisionPolicy | None,
) -> Built:  # fmt: skip
    """Every registered evaluator taking part in this run, and the space of the archs they
    take (with precisions, in a precision search): in the driver and on each worker alike.
    Accuracy and latency look at the same arch back to back, so the recalibrated (or
    quantized) sub-network is cached for one."""

    @functools.lru_cache(maxsize=1)
    def calibrated(arch: Arch) -> torch.nn.Module:
        return _calibrated(model, arch, calibration)

    context = EvaluationContext(
        task=task,
        model=model,
        family=config.supernet.name,
        build=policy.evaluated if policy else calibrated,
        latency_source=config.latency.source,
        latency=config.latency.settings(),
        policy=policy,
        proxies=config.proxies,
        seed=config.seed,
        latency_rounds=config.latency.rounds,
        recalibrate=config.latency.recalibrate,
    )
    return Built(policy.space if policy else model.space(), create_evaluators(context))


def parts(config: RunConfig, evaluators: Sequence[str]) -> tuple[Part, ...]:
    """How each arch's evaluation is split into jobs: one, unless latency is timed on a
    named device, whose workers then take the latency jobs and nothing else."""
    device = config.latency.device
    if device is None or "latency" not in evaluators:
        return (Part(tuple(evaluators)),)
    anywhere = tuple(name for name in evaluators if name != "latency")
    return (Part(anywhere), Part(("latency",), device))


def workload(config: RunConfig, out: Path, dense: Path | None) -> Workload:
    """What a worker needs to rebuild this run's evaluators (``worker_evaluators``)."""
    context = {"config": config.model_dump(mode="json"), "checkpoint": str(out / CHECKPOINT),
               "dense": None if dense is None else str(dense)}  # fmt: skip
    return Workload("run", context)


def worker_evaluators(context: Mapping[str, Any]) -> Built:
    """A run's evaluators rebuilt on a worker: the task's data read, the super-network
    built as the driver built it and loaded from the run's checkpoint (whose header check
    refuses weights of another space), the calibration inputs drawn with the same seed."""
    torch.set_num_threads(1)  # a worker is one of several on its machine
    config = validated(dict(context["config"]))
    task, model = prepare(config)
    dense = context.get("dense")
    if dense is not None and Path(dense).is_dir():  # the network of a pretrained folder
        model = pretrained_network(Path(dense), model, config.supernet.overrides)
    load_checkpoint(context["checkpoint"], model)
    model.eval()
    calibration = task.calibration_inputs(config.search.calibration_images, config.seed)
    return run_evaluators(config, task, model, calibration, _policy(config, model, calibration))


def _executor(config: RunConfig, here: Built, out: Path, dense: Path | None) -> Executor:
    run = config.execution
    if not run.parallel:
        return SerialExecutor(here.space, here.evaluators)
    return make_executor(workload(config, out, dense), run.workers, run.scheduler, run.pool,
                         run.in_flight)  # fmt: skip


def _search(
    plan: Plan, space: Space, executor: Executor, evaluators: Sequence[str],
    searcher: Searcher, latency: Evaluator, out: Path, progress: Progress,
) -> tuple[Study, list[Evaluation], dict[str, dict[str, int]]]:  # fmt: skip
    """The search; with its study and evaluations, the jobs each worker did, by part."""
    config = plan.config
    with Store(out / "run.sqlite") as store:
        study = Study(
            space=space,
            executor=executor,
            parts=parts(config, evaluators),
            tell_order=config.execution.tell_order,
            objectives=plan.objectives,
            searcher=searcher,
            store=store,
            run_id=RUN_ID,
            budget=config.search.budget,
            retries=config.search.retries,
            config={**config.identity(), "latency_from": latency.identity()},
            progress=progress,
        )
        return study, study.optimize(), store.jobs_done_by_worker(RUN_ID)


# -- export ------------------------------------------------------------------------------
def _chosen(plan: Plan, front: list[Evaluation]) -> dict[str, Evaluation]:
    """The knee and the best sub-network of each objective, by label."""
    F = objective_matrix([e.metrics for e in front], plan.objectives)
    quality = plan.task.default_objective.partition(":")[0]
    chosen = {"knee": knee_of(front, plan.objectives)}
    for i, o in enumerate(plan.objectives):
        label = {quality: "most_accurate", "latency_ms": "fastest"}.get(o.name, f"best_{o.name}")
        chosen[label] = front[int(np.argmin(F[:, i]))]
    return chosen


def export_chosen(
    chosen: dict[str, Evaluation], config: RunConfig, task: Task, model: Family,
    calibration: torch.Tensor, latency: Evaluator, policy: PrecisionPolicy | None, out: Path,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """ONNX files checked against PyTorch (or, quantized, against the quality the search
    measured), each with its quality on the test split (never seen by the search, which
    chose on the validation split) and its latency as a file."""
    space = policy.space if policy else model.space()
    label_of = policy.label if policy else model.label
    settings = config.latency.settings()
    exported = {}
    for label, e in chosen.items():
        arch = space.make(e.arch)
        module = _calibrated(model, arch, calibration)
        description = {
            "hwnas_version": __version__, "family": config.supernet.name,
            "label": label_of(arch), "key": e.arch_key, "arch": e.arch,
            "task": task.identity(), "preprocessing": task.preprocessing(),
            "metrics": e.metrics,
        }  # fmt: skip
        path = out / "models" / f"{label}.onnx"
        example = functools.partial(model.deployed_input, arch)
        if policy is None:
            test = task.quality(module, "test")
            description["test_metrics"] = test
            record = export_subnet(module, example, path, description, settings)
        else:
            payload = policy.deployed(module, arch)
            deployed = DeployedModel(payload, model, arch)
            checked = _agreement(task, deployed, e)
            test = task.quality(deployed, "test")
            description |= {"test_metrics": test, "precision": policy.policy(arch)}
            record = write_model(payload, example, path, description, settings, checked)
        files = {"onnx": f"models/{label}.onnx", "json": f"models/{label}.json"}
        exported[label] = {"key": e.arch_key, "label": description["label"],
                           "metrics": e.metrics, "test": test, **record, **files}  # fmt: skip
    for name, data in task.deployment_files().items():
        write_atomic(out / "models" / name, data)
    if isinstance(latency, ProfiledLatency):
        archs = [space.make(e.arch) for e in chosen.values()]
        for label, here in zip(chosen, latency.measure_here(archs), strict=True):
            exported[label].update(here)
    return exported


def _agreement(task: Task, deployed: DeployedModel, searched: Evaluation) -> dict[str, Any]:
    """The exported quantized model's validation quality against the search's: the same
    quantization of the same weights on the same calibration inputs, so they must agree
    (up to the order of float operations); a gap is a bug, never exported."""
    again = task.quality(deployed, "val")
    gaps = {name: abs(value - searched.metrics[name]) for name, value in again.items()}
    for name, gap in gaps.items():
        if gap > max(0.01 * abs(searched.metrics[name]), 1e-6):
            raise RuntimeError(f"exported {searched.arch_key}: validation {name} "
                               f"{again[name]:.4g} differs from the searched "
                               f"{searched.metrics[name]:.4g}")  # fmt: skip
    return {"validation_again": again, "validation_gap": gaps}


def _calibrated(model: Family, arch: Arch, calibration: torch.Tensor) -> torch.nn.Module:
    module = model.extract(arch)
    recalibrate_batchnorm(module, calibration)
    return module


# -- the whole job -----------------------------------------------------------------------
def run_job(
    config: RunConfig,
    out: Path,
    resume: bool = False,
    progress: Progress | None = None,
    command: str | None = None,
    dense: Path | None = None,
) -> dict:
    """Train, search, export and report; returns what ``summary.json`` holds. ``command``
    is recorded as how the run was started (the CLI passes its command line). ``dense``: a
    dense model's checkpoint to start from, made elastic while fine-tuned (InstaTune,
    ``hwnas.instatune``), instead of training the super-network from scratch. One process
    at a time holds ``out`` (``run_lock``)."""
    with run_lock(out):
        return _run(config, out, resume, progress or SilentProgress(), command, dense)


def _run(
    config: RunConfig, out: Path, resume: bool, progress: Progress, command: str | None,
    dense: Path | None,
) -> dict:  # fmt: skip
    if dense is not None:
        config = config_for_dense(config, dense)
    plan = plan_run(config)
    if dense is not None and config.train.dense:
        raise HwnasError("train.dense: a run from a dense model fine-tunes a super-network")
    _check_out(out, resume, "run.sqlite")
    timings: dict[str, float] = {}
    started = time.perf_counter()
    task, model = prepare(config)
    calibration = task.calibration_inputs(config.search.calibration_images, config.seed)
    start = None
    if dense is not None:
        start = start_from_dense(dense, model, task, calibration, config.supernet.overrides)
        model = start.model
    trainer = _trainer(config, task, model, start)
    policy = _policy(config, model, calibration)
    here = run_evaluators(config, task, model, calibration, policy)
    space, evaluators = here.space, here.evaluators
    label = policy.label if policy else model.label
    latency = evaluators["latency"]
    try:
        searcher = make_searcher(
            config.search.searcher, space, plan.objectives,
            config.seed if config.search.seed is None else config.search.seed,
            config.search.options, constraints=plan.constraints,
        )  # fmt: skip
    except HwnasError as exc:
        raise HwnasError(f"search.options: {exc}") from None
    executor = _executor(config, here, out, dense)  # a scheduler, reached now
    try:
        make_out(out)
        timings["data"] = time.perf_counter() - started

        started = time.perf_counter()
        history = _train(trainer, out, progress)
        timings["train"] = time.perf_counter() - started

        started = time.perf_counter()
        study, evaluations, by_worker = _search(plan, space, executor, list(evaluators),
                                                searcher, latency, out, progress)  # fmt: skip
        timings["search"] = time.perf_counter() - started
    finally:
        executor.close()

    started = time.perf_counter()
    front = front_of(evaluations, plan.objectives, plan.constraints)
    if not front:
        raise HwnasError("no evaluated sub-network meets the constraints; relax search.constraints")
    chosen = _chosen(plan, front)
    exported = export_chosen(chosen, config, task, model, calibration, latency, policy, out)
    timings["export"] = time.perf_counter() - started

    summary = {
        **study_summary(
            title=f"hwnas {'instatune' if start else 'run'}: {config.data.name}, "
            f"{config.supernet.name}, {config.search.searcher}",
            command=command or "python: hwnas.run.run_job",
            seed=config.seed,
            objectives=plan.objectives,
            constraints=plan.constraints,
            metrics=described_metrics(config),
            front=front,
            knee=chosen["knee"],
            evaluations=len(evaluations),
            label=label,
        ),
        "task": task.identity(),
        "splits": task.split_sizes(),
        "supernet": {"name": config.supernet.name, "config": model.config.to_dict()},
        "exported": exported,
        "latency": latency.provenance(),
        "training": history,
        **({"instatune": start.info} if start else {}),
        "time_seconds": {**timings, "total": sum(timings.values())},
        "searcher_seconds_per_candidate": study.seconds_per_candidate,
        "jobs_done_by_worker": by_worker,
        "settings": config.model_dump(mode="json"),
        "training_settings": trainer.settings.model_dump(mode="json"),
    }
    write_results(out, summary, evaluations, label)
    return summary


def described_metrics(config: RunConfig) -> dict[str, dict[str, Any]]:
    """Unit and meaning of every metric a run of ``config`` records (``hwnas metrics``, the
    summary); quality metrics are measured on the validation split."""
    plan = evaluation_plan(config)
    quality = {m.name for m in plan.task.quality_metrics}
    described = describe_metrics(plan)
    return {name: {**m.to_dict(), **({"split": "val"} if name in quality else {})}
            for name, m in described.items()}  # fmt: skip
