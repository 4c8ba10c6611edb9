"""Local worker processes: evaluations in parallel on this machine's cores.

Workers are started with ``spawn`` (a forked PyTorch process can hang in its thread pools)
and each builds the run's evaluators from the workload once, when it takes its first job:
seconds for a super-network read from its checkpoint, then every job reuses it. A worker
that dies (killed, out of memory) breaks the pool; the jobs it held come back as failed
outcomes, so the study retries them, and a fresh pool takes the next ones. A worker whose
driver is killed ends within a second.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

from hwnas.errors import HwnasError, one_line
from hwnas.execute.base import Job, Outcome, Workload, lost, perform_remote


def _exit_with(parent: int) -> None:
    """In each worker: end it when the driver is gone (killed with SIGKILL, its pool never
    shut down), instead of leaving it to hold its memory for ever."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="hwnas-parent-watch").start()


class ProcessExecutor:
    def __init__(self, workload: Workload, workers: int) -> None:
        if workers < 1:
            raise HwnasError(f"a process pool needs at least one worker, not {workers}")
        self.workload, self.slots = workload, workers
        self._pool: ProcessPoolExecutor | None = None
        self._running: dict[Future, Job] = {}

    def _fresh_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            context = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                self.slots, mp_context=context, initializer=_exit_with, initargs=(os.getpid(),)
            )
        return self._pool

    def submit(self, job: Job) -> None:
        try:
            future = self._fresh_pool().submit(perform_remote, self.workload, job)
        except BrokenProcessPool:  # broken by a death noticed since the last wait
            self._discard_pool()
            future = self._fresh_pool().submit(perform_remote, self.workload, job)
        self._running[future] = job

    def completed(self, on_start: Callable[[Job], None] | None = None) -> list[Outcome]:
        done, _ = wait(list(self._running), return_when=FIRST_COMPLETED)
        outcomes, broken = [], False
        for future in done:
            job = self._running.pop(future)
            try:
                outcomes.append(future.result())
            except BrokenProcessPool as exc:
                outcomes.append(lost(job, one_line(exc)))
                broken = True
        if broken:  # every job the broken pool still held is lost with it
            outcomes += [lost(job, "its pool broke") for job in self._running.values()]
            self._running.clear()
            self._discard_pool()
        return outcomes

    def _discard_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        self._running.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
