"""Dask: workers on other machines and devices, or a local cluster.

Each job is one Dask task with a resource tag: a job for device NAME asks for the resource
``DEVICE_PREFIX + NAME``, held only by workers started with ``hwnas worker --device NAME``;
any other job asks for ``ANY_WORKER``, which such device workers lack, so a device measures
nothing but its own latency jobs, undisturbed. A worker lost mid-job is Dask's to
reschedule; one that kills every worker it lands on (``KilledWorker``) comes back as a
failed outcome for the study to retry. Tasks are never cached (``pure=False``): a retry
evaluates again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from hwnas.errors import HwnasError, one_line
from hwnas.execute.base import Job, Outcome, Workload, lost, perform_remote, worker_name

DEVICE_PREFIX = "hwnas-device-"
ANY_WORKER = "hwnas-any"
CONNECT_TIMEOUT_S = 20


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise HwnasError(
            "Dask is not installed: pip install 'hwnas[dask]' (or 'dask[distributed]')"
        ) from None
    return distributed


def worker_resources(device: str | None) -> dict[str, float]:
    """What a worker offers: its device's latency jobs, or everything else."""
    return {DEVICE_PREFIX + device: 1} if device else {ANY_WORKER: 1}


def _perform(workload: Workload, job: Job) -> Outcome:
    """A job on a Dask worker, recorded under the worker's Dask name (``hwnas worker
    --name``; the scheduler's own for a local cluster's)."""
    outcome = perform_remote(workload, job)
    return dataclasses.replace(outcome, worker=str(_distributed().get_worker().name))


class DaskExecutor:
    """Jobs on the scheduler at ``address``, or on a local cluster of ``workers`` processes
    (one thread each: a latency timing must have its core to itself). ``in_flight``: jobs
    kept running at once; by default the local cluster's workers, or those connected to
    the scheduler when the run starts (fixed then, so the run does not depend on when
    workers join)."""

    def __init__(
        self, workload: Workload, address: str | None = None, workers: int = 1,
        in_flight: int | None = None,
    ) -> None:  # fmt: skip
        distributed = _distributed()
        self.workload = workload
        self._cluster = None
        try:
            if address is None:
                self._cluster = distributed.LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True,
                    resources=worker_resources(None), dashboard_address=None,
                )  # fmt: skip
                address = self._cluster.scheduler_address
            self._client = distributed.Client(address, timeout=f"{CONNECT_TIMEOUT_S}s")
        except (OSError, TimeoutError) as exc:
            self.close()
            raise HwnasError(f"scheduler {address}: cannot connect ({one_line(exc)})") from None
        self._distributed = distributed
        self._running: dict[Any, Job] = {}
        if in_flight is None:
            in_flight = workers if self._cluster else len(self._client.nthreads())
        self.slots = max(in_flight, 1)

    def submit(self, job: Job) -> None:
        tag = DEVICE_PREFIX + job.part.device if job.part.device else ANY_WORKER
        future = self._client.submit(
            _perform, self.workload, job, resources={tag: 1}, pure=False,
            key=f"hwnas-{self.workload.digest}-{job.id}",
        )  # fmt: skip
        self._running[future] = job

    def completed(self, on_start: Callable[[Job], None] | None = None) -> list[Outcome]:
        done, _ = self._distributed.wait(list(self._running), return_when="FIRST_COMPLETED")
        outcomes = []
        for future in done:
            job = self._running.pop(future)
            try:
                outcomes.append(future.result())
            except Exception as exc:  # noqa: BLE001 - KilledWorker, a worker that vanished
                outcomes.append(lost(job, f"{type(exc).__name__}: {one_line(exc)}"))
            future.release()
        return outcomes

    def close(self) -> None:
        for future in list(getattr(self, "_running", {})):
            future.cancel()
        if getattr(self, "_client", None) is not None:
            self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def serve(address: str, device: str | None = None, name: str | None = None) -> None:
    """``hwnas worker``: a one-thread Dask worker offering ``device``'s latency jobs (or all
    others), connected to ``address`` until stopped or the scheduler goes away."""
    import asyncio

    distributed = _distributed()
    label = name or f"{worker_name()}{'-' + device if device else ''}"

    async def run() -> None:
        async with distributed.Worker(address, nthreads=1, name=label, death_timeout=60,
                                      resources=worker_resources(device)) as worker:  # fmt: skip
            await worker.finished()

    try:
        asyncio.run(run())
    except (OSError, TimeoutError) as exc:
        raise HwnasError(f"--scheduler {address}: cannot connect ({one_line(exc)})") from None
