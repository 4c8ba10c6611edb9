"""The study loop: ask the searcher, evaluate, store each result as it arrives, tell.

The study is the only place that knows the space, the searcher, the evaluator and the store.
Nothing evaluated is lost, because each result is committed before the next evaluation
starts. A resumed study is exact: it runs the same loop again from a searcher made afresh
with the same seed, and every arch the searcher asks for that the store already holds is
answered from the store instead of evaluated. A deterministic searcher (all of hwnas's are,
for a seed) then asks exactly what it asked before, holds the same random state and pending
proposals at the point of the kill, and the run ends with the uninterrupted run's
evaluations in the same order, wherever it was killed, however often.

Every attempt at an evaluation is a job in the store (running, then done or failed, with
the worker and the error). An evaluation that raises is tried again up to ``retries`` more
times, then stored with its error and told to the searcher as unscored, so one bad arch or
a flaky device never ends a run; ``FAILING_IN_A_ROW`` archs failing every attempt in a row
do end it, since then the evaluator is broken, not the archs.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hwnas.errors import HwnasError
from hwnas.evaluate.base import Evaluator
from hwnas.execute import Outcome, SerialExecutor
from hwnas.pareto import Objective
from hwnas.progress import Progress, SilentProgress
from hwnas.search.base import Searcher
from hwnas.space import Space
from hwnas.store import Evaluation, Store

FAILING_IN_A_ROW = 5


@dataclass
class Study:
    space: Space
    evaluator: Evaluator
    objectives: Sequence[Objective]
    searcher: Searcher
    store: Store
    run_id: str
    budget: int
    config: Mapping[str, Any] = field(default_factory=dict)
    executor: SerialExecutor = field(default_factory=SerialExecutor)
    progress: Progress = field(default_factory=SilentProgress)
    batch_size: int | None = None
    retries: int = 2
    worker: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    searcher_seconds: float = 0.0
    proposed: int = 0
    _attempts: dict[str, int] = field(default_factory=dict, repr=False)
    _failing: int = field(default=0, repr=False)

    def optimize(self) -> list[Evaluation]:
        """Run until ``budget`` unique archs are stored (or the space is exhausted)."""
        self.store.open_run(self.run_id, {**self.config, "space": self.space.describe()})
        stored = {e.arch_key: e for e in self.store.evaluations(self.run_id)}
        self._attempts = self.store.attempts(self.run_id)
        count = 0
        task = self.progress.task(self.run_id, self.budget)
        while count < self.budget:
            batch = self.batch_size or self.searcher.batch_size
            started = time.perf_counter()
            archs = self.searcher.ask(min(batch, self.budget - count))
            self.searcher_seconds += time.perf_counter() - started
            if not archs:
                break
            self.proposed += len(archs)
            fresh = [a for a in archs if a.key not in stored]
            if fresh and len(stored) > len(archs) - len(fresh):  # left the stored path
                asked = {a.key for a in archs}
                unasked = [e for key, e in stored.items() if key not in asked]
                count += self._replay_unasked(unasked, stored, task)
            outcomes = {o.arch.key: o.metrics for o in self._evaluate(fresh, task)}
            results = [stored.pop(a.key).metrics if a.key in stored else outcomes[a.key]
                       for a in archs]  # fmt: skip
            task.advance(len(archs) - len(fresh))
            count += len(archs)
            self._tell(archs, results)
        task.close()
        return self.store.evaluations(self.run_id)

    def _evaluate(self, archs: Sequence, task: Any) -> list[Outcome]:
        """Evaluate ``archs``, retrying failed attempts, committing each final outcome as
        it arrives."""
        outcomes, pending = [], list(archs)
        while pending:
            again = []
            for outcome in self.executor.run(self.evaluator, pending, on_start=self._started):
                key, attempt = outcome.arch.key, self._attempts[outcome.arch.key]
                state = "failed" if outcome.failed else "done"
                self.store.job(self.run_id, key, attempt, state, self.worker, outcome.error)
                if outcome.failed and attempt <= self.retries:
                    again.append(outcome.arch)
                    continue
                self._final(outcome, attempt)
                outcomes.append(outcome)
                task.advance(1)
            pending = again
        return outcomes

    def _started(self, arch: Any) -> None:
        self._attempts[arch.key] = self._attempts.get(arch.key, 0) + 1
        self.store.job(self.run_id, arch.key, self._attempts[arch.key], "running", self.worker)

    def _final(self, outcome: Outcome, attempt: int) -> None:
        error = outcome.error
        if outcome.failed:
            error = f"failed {attempt} time(s), last: {error}"
        self.store.record(
            self.run_id,
            outcome.arch.key,
            outcome.arch.to_dict(),
            outcome.metrics,
            wall_time_s=outcome.wall_time_s,
            started_at=outcome.started_at,
            finished_at=outcome.finished_at,
            error=error,
        )
        self._failing = self._failing + 1 if outcome.failed else 0
        if self._failing >= FAILING_IN_A_ROW:
            raise HwnasError(f"the last {FAILING_IN_A_ROW} archs failed every attempt, so the "
                             f"evaluator is broken; the last error: {outcome.error}")  # fmt: skip

    def _replay_unasked(self, unasked: Sequence[Evaluation], stored: dict, task: Any) -> int:
        """Stored results a resumed searcher did not ask for again (it is not deterministic,
        or the store came from another run of the same config): told to it as they are, so
        nothing evaluated is lost or evaluated twice, though the run is no longer exact."""
        for e in unasked:
            del stored[e.arch_key]
        self._tell([self.space.make(e.arch) for e in unasked], [e.metrics for e in unasked])
        task.advance(len(unasked))
        return len(unasked)

    def _tell(self, archs: Sequence, metrics: Sequence) -> None:
        started = time.perf_counter()
        self.searcher.tell(archs, metrics)
        self.searcher_seconds += time.perf_counter() - started

    @property
    def seconds_per_candidate(self) -> float:
        return self.searcher_seconds / max(self.proposed, 1)
