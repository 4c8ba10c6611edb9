"""The study loop: ask the searcher, hand jobs to an executor, store each result as it
arrives, tell.

The study is the only place that knows the space, the searcher, the executor and the store.
Nothing evaluated is lost: each arch's result is committed the moment its last job
completes. The executor's ``slots`` jobs are kept in flight: the searcher is asked again as
soon as fewer archs than that are waiting to be told, so a batch searcher's next batch
starts while the last of its previous one are still being evaluated.

Results are told in the order they were asked (``tell_order="asked"``, the default): one
that finishes early waits for those asked before it. When the searcher is asked, and what
it has been told by then, then depend on the results alone, never on which worker was
faster, so a run with a seed is reproducible for a given number of slots, and exactly
resumable. ``tell_order="arrival"`` tells each result the moment it arrives: no slot waits
on a slow evaluation, but the searcher's path then depends on timing.

A resumed study is exact: it runs the same loop again from a searcher made afresh with the
same seed, and every arch the searcher asks for that the store already holds is answered
from the store instead of evaluated. A deterministic searcher (all of hwnas's are, for a
seed) then asks exactly what it asked before, and the run ends with the uninterrupted run's
evaluations in the same order, wherever it was killed, however often.

An arch is evaluated as one job per ``Part`` (quality anywhere, latency on its device). Each
attempt at a job is recorded in the store as it changes (pending, running, done or failed,
with the worker and the error). A failed job is tried again up to ``retries`` more times,
then its arch is stored with the error and told to the searcher as unscored, so one bad arch
or a flaky device never ends a run; ``FAILING_IN_A_ROW`` archs failing every attempt in a
row do end it, since then the evaluator is broken, not the archs.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from hwnas.errors import HwnasError
from hwnas.evaluate.base import Evaluator
from hwnas.execute import SINGLE_PART, Executor, Job, Outcome, Part, SerialExecutor, worker_name
from hwnas.pareto import Objective
from hwnas.progress import Progress, SilentProgress
from hwnas.search.base import Metrics, Searcher
from hwnas.space import Arch, Space
from hwnas.store import Evaluation, Store

FAILING_IN_A_ROW = 5


@dataclass
class _Open:
    """An arch being evaluated: the parts still out, and what the finished ones gave."""

    arch: Arch
    waiting: set[str]
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    failed: bool = False
    started_at: float = float("inf")
    finished_at: float = 0.0


@dataclass
class Study:
    """``evaluator``: evaluate in this process; or ``executor`` and the ``parts`` each arch's
    evaluation is split into, naming the executor's evaluators."""

    space: Space
    objectives: Sequence[Objective]
    searcher: Searcher
    store: Store
    run_id: str
    budget: int
    evaluator: Evaluator | None = None
    config: Mapping[str, Any] = field(default_factory=dict)
    executor: Executor | None = None
    parts: Sequence[Part] = (SINGLE_PART,)
    tell_order: Literal["asked", "arrival"] = "asked"
    progress: Progress = field(default_factory=SilentProgress)
    batch_size: int | None = None
    retries: int = 2
    searcher_seconds: float = 0.0
    proposed: int = 0

    def __post_init__(self) -> None:
        if (self.executor is None) == (self.evaluator is None):
            raise ValueError("a study needs an evaluator or an executor, not both")
        if self.executor is None:
            self.executor = SerialExecutor(self.space, {SINGLE_PART.name: self.evaluator})
            self.parts = (SINGLE_PART,)
        if self.tell_order not in ("asked", "arrival"):
            raise ValueError(f"tell_order {self.tell_order!r}: asked or arrival")

    def optimize(self) -> list[Evaluation]:
        """Run until ``budget`` unique archs are stored (or the space is exhausted)."""
        self.store.open_run(self.run_id, {**self.config, "space": self.space.describe()})
        self._stored = {e.arch_key: e for e in self.store.evaluations(self.run_id)}
        self._unasked, self._holes, self._asked = set(self._stored), 0, set()
        self._attempts = self.store.attempts(self.run_id)
        self._failing, self._failed = 0, {}  # in told order: not timing, decides the end
        self._queue: deque[Arch] = deque()  # asked, not yet submitted
        self._untold: deque[str] = deque()  # asked, not yet told, in asked order
        self._ready: dict[str, tuple[Arch, Metrics]] = {}  # finished, not yet told
        self._open: dict[str, _Open] = {}
        self._task = self.progress.task(self.run_id, self.budget)
        asked, exhausted = 0, False
        executor = self.executor
        while True:
            # Asked only here: at the start and right after a tell, never because a result
            # happened to arrive early (in asked order, what has been told decides).
            while not exhausted and asked < self.budget and len(self._untold) < executor.slots:
                archs, replayed = self._ask(self.budget - asked)
                exhausted = not archs
                asked += len(archs) + replayed
            while self._queue and len(self._open) < executor.slots:
                self._submit(self._queue.popleft())
            if self._tell_ready():
                continue
            if not self._open:
                if self._queue or (not exhausted and asked < self.budget):
                    continue
                break
            for outcome in executor.completed(on_start=self._started):
                self._finished(outcome)
        self._task.close()
        return self.store.evaluations(self.run_id)

    # -- asking and telling ------------------------------------------------------------
    def _ask(self, left: int) -> tuple[list[Arch], int]:
        """Ask for up to ``left`` archs; with them, how many stored results were told
        without being asked (``_replay_unasked``).

        A resumed run follows the stored path while the archs it asks for are stored, but
        for the few that were in flight at the kill: at most ``slots - 1`` of them can have
        been asked before a stored one (all in flight together with it). More fresh archs
        asked while stored ones wait means the searcher has left the stored path."""
        batch = self.batch_size or self.searcher.batch_size
        started = time.perf_counter()
        archs = self.searcher.ask(min(batch, left))
        self.searcher_seconds += time.perf_counter() - started
        self.proposed += len(archs)
        replayed = 0
        archs = [a for a in archs if a.key not in self._asked]  # a searcher's repeat: dropped
        self._asked.update(a.key for a in archs)
        for arch in archs:
            self._unasked.discard(arch.key)
            if arch.key not in self._stored and self._unasked:
                self._holes += 1
        if self._holes >= self.executor.slots and self._unasked:  # left the stored path
            replayed = self._replay_unasked([self._stored[k] for k in self._unasked])
        self._queue.extend(archs)
        self._untold.extend(a.key for a in archs)
        return archs, replayed

    def _tell_ready(self) -> bool:
        """Tell the searcher one result that may be told now (the next in asked order, or
        the first to arrive); whether there was one. One at a time, each followed by the
        chance to ask: then when the searcher is asked never depends on how many results
        happened to finish together."""
        if self.tell_order == "arrival" and self._ready:
            key = next(iter(self._ready))
            self._untold.remove(key)
        elif self._untold and self._untold[0] in self._ready:
            key = self._untold.popleft()
        else:
            return False
        arch, metrics = self._ready.pop(key)
        self._tell([arch], [metrics])
        self._failing = self._failing + 1 if key in self._failed else 0
        if self._failing >= FAILING_IN_A_ROW:
            raise HwnasError(
                f"the last {FAILING_IN_A_ROW} archs failed every attempt, so the evaluator is "
                f"broken; the last error: {self._failed[key]}"
            )
        return True

    def _tell(self, archs: Sequence[Arch], metrics: Sequence[Metrics]) -> None:
        started = time.perf_counter()
        self.searcher.tell(archs, metrics)
        self.searcher_seconds += time.perf_counter() - started

    def _replay_unasked(self, unasked: Sequence[Evaluation]) -> int:
        """Stored results a resumed searcher did not ask for again (it is not deterministic,
        the store came from another run of the same config, or from a run with another
        number of slots or told by arrival): told to it as they are, so nothing evaluated
        is lost or evaluated twice, though the run is no longer exact."""
        for e in unasked:
            del self._stored[e.arch_key]
        self._unasked.clear()
        self._tell([self.space.make(e.arch) for e in unasked], [e.metrics for e in unasked])
        self._task.advance(len(unasked))
        return len(unasked)

    # -- jobs ------------------------------------------------------------------------------
    def _submit(self, arch: Arch) -> None:
        if arch.key in self._stored:  # a resumed run: answered from the store
            self._ready[arch.key] = (arch, self._stored.pop(arch.key).metrics)
            self._task.advance(1)
            return
        self._open[arch.key] = _Open(arch, {p.name for p in self.parts})
        for part in self.parts:
            self._submit_job(arch, part)

    def _submit_job(self, arch: Arch, part: Part) -> None:
        attempt = self._attempts.get((arch.key, part.name), 0) + 1
        self._attempts[(arch.key, part.name)] = attempt
        self.store.job(self.run_id, arch.key, part.name, attempt, "pending", "")
        self.executor.submit(Job(arch.key, arch.to_dict(), part, attempt))

    def _started(self, job: Job) -> None:
        self.store.job(self.run_id, job.arch_key, job.part.name, job.attempt, "running",
                       worker_name())  # fmt: skip

    def _finished(self, outcome: Outcome) -> None:
        with self.store.transaction():  # the job's state and its arch's record, or neither
            self._settle(outcome)

    def _settle(self, outcome: Outcome) -> None:
        job = outcome.job
        state = "failed" if outcome.failed else "done"
        self.store.job(self.run_id, job.arch_key, job.part.name, job.attempt, state,
                       outcome.worker, outcome.error)  # fmt: skip
        evaluation = self._open[job.arch_key]
        if outcome.failed and job.attempt <= self.retries:
            self._submit_job(evaluation.arch, job.part)
            return
        evaluation.waiting.discard(job.part.name)
        evaluation.started_at = min(evaluation.started_at, outcome.started_at)
        evaluation.finished_at = max(evaluation.finished_at, outcome.finished_at)
        if outcome.metrics is None:
            if outcome.failed:
                evaluation.failed = True
                evaluation.error = f"failed {job.attempt} time(s), last: {outcome.error}"
            evaluation.error = evaluation.error or outcome.error
        else:
            evaluation.metrics.update(outcome.metrics)
        if not evaluation.waiting:
            self._record(self._open.pop(job.arch_key))

    def _record(self, evaluation: _Open) -> None:
        arch = evaluation.arch
        metrics = None if evaluation.error is not None else evaluation.metrics
        self.store.record(
            self.run_id,
            arch.key,
            arch.to_dict(),
            metrics,
            wall_time_s=evaluation.finished_at - evaluation.started_at,
            started_at=evaluation.started_at,
            finished_at=evaluation.finished_at,
            error=evaluation.error,
        )
        self._ready[arch.key] = (arch, metrics)
        self._task.advance(1)
        if evaluation.failed:
            self._failed[arch.key] = evaluation.error

    @property
    def seconds_per_candidate(self) -> float:
        return self.searcher_seconds / max(self.proposed, 1)
