"""Dask: workers on other machines and devices, or a local cluster.

Each job is one Dask task with a resource tag: a job for device NAME asks for the resource
``DEVICE_PREFIX + NAME``, held only by workers started with ``hwnas worker --device NAME``;
any other job asks for ``ANY_WORKER``, which such device workers lack, so a device measures
nothing but its own latency jobs, undisturbed. A worker lost mid-job is Dask's to
reschedule (``hwnas worker`` runs under a nanny, which restarts it); a job that kills
every worker it lands on (``KilledWorker``) comes back as a failed outcome for the study to
retry. Each attempt is its own task key, so a retry evaluates again.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from hwnas.errors import HwnasError, one_line
from hwnas.execute.base import Job, Outcome, Workload, lost, perform_remote, worker_name

DEVICE_PREFIX = "hwnas-device-"
ANY_WORKER = "hwnas-any"
CONNECT_TIMEOUT_S = 20
NO_WORKER_TIMEOUT_S = 120.0
CHECK_EVERY_S = 5.0


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
    (one thread each: a latency timing must have its core to itself). ``in_flight``: archs
    kept in evaluation at once; by default the local cluster's workers, or the general
    workers connected to the scheduler when the search starts (after training, so workers
    started meanwhile count; fixed then, so the run does not depend on when more join).

    A job that no connected worker can take (its device has no worker, or none is left)
    waits ``NO_WORKER_TIMEOUT_S`` for one to join, then ends the run in one line."""

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
        self._in_flight = workers if self._cluster and in_flight is None else in_flight
        self._unserved_since: dict[str, float] = {}

    @property
    def slots(self) -> int:
        if self._in_flight is None:
            self._in_flight = max(self._offered().get(ANY_WORKER, 0), 1)
        return self._in_flight

    def _offered(self) -> dict[str, int]:
        """How many connected workers offer each resource."""
        counts: dict[str, int] = {}
        for worker in self._client.scheduler_info(n_workers=-1)["workers"].values():
            for resource in worker.get("resources", {}):
                counts[resource] = counts.get(resource, 0) + 1
        return counts

    def _check_served(self) -> None:
        """Refuse to wait for ever on a resource no worker offers."""
        offered, now = self._offered(), time.time()
        needed = {DEVICE_PREFIX + j.part.device if j.part.device else ANY_WORKER
                  for j in self._running.values()}  # fmt: skip
        for resource in needed:
            if offered.get(resource):
                self._unserved_since.pop(resource, None)
                continue
            since = self._unserved_since.setdefault(resource, now)
            if now - since > NO_WORKER_TIMEOUT_S:
                who = (f"hwnas worker --device {resource.removeprefix(DEVICE_PREFIX)}"
                       if resource.startswith(DEVICE_PREFIX) else "hwnas worker")  # fmt: skip
                raise HwnasError(f"no worker of the scheduler takes these jobs for "
                                 f"{NO_WORKER_TIMEOUT_S:.0f} s: start {who}")  # fmt: skip

    def submit(self, job: Job) -> None:
        tag = DEVICE_PREFIX + job.part.device if job.part.device else ANY_WORKER
        future = self._client.submit(
            _perform, self.workload, job, resources={tag: 1}, pure=False,
            key=f"hwnas-{self.workload.digest}-{job.id}",
        )  # fmt: skip
        self._running[future] = job

    def completed(self, on_start: Callable[[Job], None] | None = None) -> list[Outcome]:
        while True:
            try:
                done, _ = self._distributed.wait(list(self._running), timeout=CHECK_EVERY_S,
                                                 return_when="FIRST_COMPLETED")  # fmt: skip
                break
            except TimeoutError:
                self._check_served()
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
        # Under a nanny, which restarts the worker when an evaluation kills it.
        async with distributed.Nanny(address, nthreads=1, name=label, death_timeout=60,
                                     resources=worker_resources(device)) as nanny:  # fmt: skip
            await nanny.finished()

    try:
        asyncio.run(run())
    except (OSError, TimeoutError) as exc:
        raise HwnasError(f"--scheduler {address}: cannot connect ({one_line(exc)})") from None
