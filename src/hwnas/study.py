"""The study loop: ask the searcher, evaluate, store each result as it arrives, tell.

The study is the only place that knows the space, the searcher, the evaluator and the store.
Resume works by replaying the store through ``tell``; nothing already stored is evaluated
again, and nothing evaluated is lost, because each result is committed before the next
evaluation starts.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hwnas.evaluate.base import Evaluator
from hwnas.execute import SerialExecutor
from hwnas.pareto import Objective
from hwnas.progress import Progress, SilentProgress
from hwnas.search.base import Searcher
from hwnas.space import Space
from hwnas.store import Evaluation, Store


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
    searcher_seconds: float = 0.0
    proposed: int = 0

    def optimize(self) -> list[Evaluation]:
        """Run until ``budget`` unique archs are stored (or the space is exhausted)."""
        self.store.open_run(self.run_id, {**self.config, "space": self.space.describe()})
        done = self.store.evaluations(self.run_id)
        if done:
            self._tell([self.space.make(e.arch) for e in done], [e.metrics for e in done])
        count = len(done)
        task = self.progress.task(self.run_id, self.budget)
        task.advance(count)
        while count < self.budget:
            batch = self.batch_size or self.searcher.batch_size
            started = time.perf_counter()
            archs = self.searcher.ask(min(batch, self.budget - count))
            self.searcher_seconds += time.perf_counter() - started
            self.proposed += len(archs)
            if not archs:
                break
            results = []
            for outcome in self.executor.run(self.evaluator, archs):
                self.store.record(
                    self.run_id,
                    outcome.arch.key,
                    outcome.arch.to_dict(),
                    outcome.metrics,
                    wall_time_s=outcome.wall_time_s,
                    started_at=outcome.started_at,
                    finished_at=outcome.finished_at,
                    error=outcome.error,
                )
                results.append(outcome.metrics)
                task.advance(1)
            count += len(archs)
            self._tell(archs, results)
        task.close()
        return self.store.evaluations(self.run_id)

    def _tell(self, archs: Sequence, metrics: Sequence) -> None:
        started = time.perf_counter()
        self.searcher.tell(archs, metrics)
        self.searcher_seconds += time.perf_counter() - started

    @property
    def seconds_per_candidate(self) -> float:
        return self.searcher_seconds / max(self.proposed, 1)
