"""The executor contract: jobs go in as data, outcomes come back as they complete.

An executor never decides anything: the study owns the budget, the store, the retries and
the searcher, and keeps ``slots`` archs in evaluation; ``submit`` hands the executor a job,
``completed`` blocks until at least one has finished and returns every finished one, in
no promised order. A ``Job`` is plain data (an arch, the names of the evaluators to run on
it, the device they need, the attempt), so it can cross to another process or machine;
there the evaluators are rebuilt from a ``Workload`` (a registry name and JSON-able
context, such as a run's config and checkpoint path) once per process and kept.

An evaluation that raises is an outcome, not the end of the run: an ``InvalidArch`` is final
(the arch cannot be scored), any other exception a ``failed`` attempt the study may retry,
and so is a worker lost mid-job. In this process an ``HwnasError`` (bad input, a damaged
file) still ends the run, since retrying cannot mend it; on a remote worker it is a failed
attempt, whose message says what that worker lacks.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from hwnas.errors import HwnasError, one_line
from hwnas.evaluate.base import Evaluator, InvalidArch
from hwnas.space import Space


def worker_name() -> str:
    """How the store names the process that ran a job: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Part:
    """Evaluators run together on an arch as one job, and the device they must run on
    (``None``: any worker). A run measuring latency on a named device evaluates each arch as
    two parts, quality anywhere and latency there; otherwise as one."""

    evaluators: tuple[str, ...]
    device: str | None = None

    @property
    def name(self) -> str:
        return "+".join(self.evaluators)


SINGLE_PART = Part(("evaluator",))
"""The one part of a study given a single evaluator (a table, a user's function)."""


@dataclass(frozen=True)
class Job:
    arch_key: str
    arch: dict[str, Any]
    part: Part
    attempt: int

    @property
    def id(self) -> str:
        return f"{self.arch_key}/{self.part.name}/{self.attempt}"


@dataclass(frozen=True)
class Outcome:
    job: Job
    metrics: dict[str, float] | None
    error: str | None
    started_at: float
    finished_at: float
    worker: str
    failed: bool = False  # raised something other than InvalidArch: worth another attempt

    @property
    def wall_time_s(self) -> float:
        return self.finished_at - self.started_at


class Executor(Protocol):
    """Runs jobs; see the module docstring for the contract."""

    slots: int
    """How many archs the study keeps in evaluation at once (each a job per part): the
    number of workers, unless told otherwise."""

    def submit(self, job: Job) -> None:
        """Queue ``job``; it may start at once or when a slot frees."""
        ...

    def completed(self, on_start: Callable[[Job], None] | None = None) -> list[Outcome]:
        """Block until at least one submitted job has finished; return every finished one.
        ``on_start(job)`` is called as a job starts where the executor can see it (the
        serial executor; remote ones record only submission and completion)."""
        ...

    def close(self) -> None:
        """Release the workers; jobs still running are abandoned."""
        ...


# -- what runs on a worker ---------------------------------------------------------------
@dataclass(frozen=True)
class Built:
    """A workload as built on a worker: the space its archs come from, and its evaluators."""

    space: Space
    evaluators: Mapping[str, Evaluator]


@dataclass(frozen=True)
class Workload:
    """How a worker rebuilds a run's evaluators: ``kind`` names a builder in ``WORKLOADS``
    (or is ``module:function``, importable on the worker), ``context`` is what it needs
    (JSON-able: a config, paths that must be valid on every worker)."""

    kind: str
    context: Mapping[str, Any] = field(default_factory=dict)

    @property
    def digest(self) -> str:
        text = json.dumps([self.kind, self.context], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


WORKLOADS: dict[str, str] = {
    "run": "hwnas.run:worker_evaluators",
    "nb201": "hwnas.benchmarks.nb201:worker_evaluators",
}
"""Builders of evaluators on a worker, by name, as ``module:function`` so a worker imports
only the one it needs. A builder takes the context and returns a ``Built``."""

_BUILT: dict[str, Built] = {}


def built(workload: Workload) -> Built:
    """``workload`` built in this process, the first time it is asked for (a super-network
    loaded from its checkpoint, a table parsed) and kept for every later job."""
    if workload.digest not in _BUILT:
        target = WORKLOADS.get(workload.kind, workload.kind)
        module, _, name = target.partition(":")
        try:
            builder = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError, ValueError):
            raise HwnasError(f"workload {workload.kind!r}: no builder {target!r}") from None
        _BUILT.clear()  # one run's workload at a time: a worker serves one run
        _BUILT[workload.digest] = builder(workload.context)
    return _BUILT[workload.digest]


def perform(job: Job, where: Built, *, remote: bool) -> Outcome:
    """Run ``job``'s evaluators on its arch here: the one place an evaluation's exceptions
    are sorted into final (``InvalidArch``), failed (retry) and fatal (``HwnasError`` in this
    process) outcomes."""
    started, failed, worker = time.time(), False, worker_name()
    try:
        arch = where.space.make(job.arch)
        metrics: dict[str, float] | None = {}
        for name in job.part.evaluators:
            if name not in where.evaluators:
                raise HwnasError(f"job {job.id}: the workload has no evaluator {name!r} "
                                 f"(it has {', '.join(where.evaluators)})")  # fmt: skip
            metrics.update(where.evaluators[name].evaluate(arch))
        error = None
    except InvalidArch as exc:
        metrics, error = None, str(exc) or "invalid arch"
    except HwnasError as exc:
        if not remote:
            raise
        metrics, error, failed = None, f"on {worker}: {one_line(exc)}", True
    except Exception as exc:  # noqa: BLE001 - recorded, retried, never lost
        metrics, error, failed = None, f"{type(exc).__name__}: {one_line(exc)}", True
    return Outcome(job, metrics, error, started, time.time(), worker, failed)


def perform_remote(workload: Workload, job: Job) -> Outcome:
    """A job on a worker process: its workload built (once) there, a failure to build it a
    failed outcome that names the worker."""
    try:
        where = built(workload)
    except Exception as exc:  # noqa: BLE001 - e.g. a data path missing on this worker
        now = time.time()
        error = f"on {worker_name()}: cannot build workload {workload.kind!r}: {one_line(exc)}"
        return Outcome(job, None, error, now, now, worker_name(), failed=True)
    return perform(job, where, remote=True)


def lost(job: Job, reason: str) -> Outcome:
    """The outcome of a job whose worker died under it: failed, so it is tried again."""
    now = time.time()
    return Outcome(job, None, f"worker lost: {reason}", now, now, "?", failed=True)
