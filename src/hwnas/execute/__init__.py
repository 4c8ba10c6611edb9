"""Executors: where evaluations run (this process, local processes, a Dask cluster)."""

from __future__ import annotations

from hwnas.execute.base import (
    SINGLE_PART,
    WORKLOADS,
    Executor,
    Job,
    Outcome,
    Part,
    Workload,
    built,
    perform,
    worker_name,
)
from hwnas.execute.serial import SerialExecutor

__all__ = [
    "SINGLE_PART",
    "WORKLOADS",
    "Executor",
    "Job",
    "Outcome",
    "Part",
    "SerialExecutor",
    "Workload",
    "built",
    "perform",
    "make_executor",
    "worker_name",
]


def make_executor(
    workload: Workload, workers: int = 1, scheduler: str | None = None, kind: str = "process",
    in_flight: int | None = None,
) -> Executor:  # fmt: skip
    """A pool for ``workload``: Dask at ``scheduler`` when given, else ``workers`` local
    processes (``kind`` ``process``: the standard library's pool, ``dask``: a local Dask
    cluster)."""
    if scheduler is not None or kind == "dask":
        from hwnas.execute.dask import DaskExecutor

        return DaskExecutor(workload, scheduler, workers, in_flight)
    from hwnas.execute.pool import ProcessExecutor

    return ProcessExecutor(workload, workers, in_flight)
