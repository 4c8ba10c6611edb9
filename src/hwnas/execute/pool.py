"""Local worker processes: evaluations in parallel on this machine's cores.

Workers are started with ``spawn`` (a forked PyTorch process can hang in its thread pools)
and each builds the run's evaluators from the workload once, when it takes its first job:
seconds for a super-network read from its checkpoint, then every job reuses it. A worker
whose driver is killed ends within a second.

A worker that dies (killed, out of memory) breaks the whole pool, and the pool cannot say
which job killed it. So the jobs it held are not charged: they are run again one at a time,
each alone on a fresh pool, and only a job whose pool breaks while it runs alone comes back
as a failed outcome (``lost``), for the study to retry or give up on. An arch that kills
its worker costs its own attempts, never those of the jobs that ran beside it.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections import deque
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
    """``workers`` processes; ``in_flight`` archs kept in evaluation (default: one each)."""

    def __init__(self, workload: Workload, workers: int, in_flight: int | None = None) -> None:
        if workers < 1:
            raise HwnasError(f"a process pool needs at least one worker, not {workers}")
        self.workload, self.workers = workload, workers
        self.slots = in_flight or workers
        self._pool: ProcessPoolExecutor | None = None
        self._running: dict[Future, Job] = {}
        self._waiting: deque[Job] = deque()  # submitted, not yet handed to the pool
        self._suspects: deque[Job] = deque()  # were running when a pool broke: run alone

    def submit(self, job: Job) -> None:
        self._waiting.append(job)
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand jobs to the pool: a suspect only into an empty pool, and nothing beside it."""
        while True:
            suspect = bool(self._suspects)
            if suspect:
                if self._running:
                    return
                job = self._suspects.popleft()
            elif self._waiting and len(self._running) < self.workers:
                job = self._waiting.popleft()
            else:
                return
            self._running[self._pool_now().submit(perform_remote, self.workload, job)] = job
            if suspect:
                return

    def _pool_now(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_exit_with, initargs=(os.getpid(),),
            )  # fmt: skip
        return self._pool

    def completed(self, on_start: Callable[[Job], None] | None = None) -> list[Outcome]:
        outcomes: list[Outcome] = []
        while not outcomes:
            done, _ = wait(list(self._running), return_when=FIRST_COMPLETED)
            alone = len(self._running) == 1
            broken = []
            for future in done:
                job = self._running.pop(future)
                try:
                    outcomes.append(future.result())
                except BrokenProcessPool as exc:
                    broken.append((job, one_line(exc)))
                except Exception as exc:  # noqa: BLE001 - e.g. a result that did not pickle
                    outcomes.append(lost(job, f"{type(exc).__name__}: {one_line(exc)}"))
            if broken:  # the pool is dead, with every job it still held
                broken += [(job, "its pool broke") for job in self._running.values()]
                self._running.clear()
                self._pool.shutdown(wait=False)  # type: ignore[union-attr]
                self._pool = None
                if alone:  # it ran by itself: its death is its own
                    outcomes += [lost(job, reason) for job, reason in broken]
                else:
                    self._suspects.extend(job for job, _ in broken)
            self._dispatch()
        return outcomes

    def close(self) -> None:
        """Stop at once: queued jobs dropped, running ones abandoned to their workers, which
        exit after them (or within a second of this process's end)."""
        self._running.clear()
        self._waiting.clear()
        self._suspects.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
