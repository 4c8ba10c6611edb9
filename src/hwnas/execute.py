"""Executors run (evaluator, arch) jobs and hand back outcomes as they complete.

They never decide anything: the study owns the budget, the store and the searcher. The serial
executor is the default; pools and Dask will implement the same ``run`` method.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from hwnas.evaluate.base import Evaluator, InvalidArch
from hwnas.space import Arch


@dataclass(frozen=True)
class Outcome:
    arch: Arch
    metrics: dict[str, float] | None
    error: str | None
    started_at: float
    finished_at: float

    @property
    def wall_time_s(self) -> float:
        return self.finished_at - self.started_at


class SerialExecutor:
    """Evaluates in this process, one arch after another."""

    def run(self, evaluator: Evaluator, archs: Sequence[Arch]) -> Iterator[Outcome]:
        for arch in archs:
            started = time.time()
            try:
                metrics, error = evaluator.evaluate(arch), None
            except InvalidArch as exc:
                metrics, error = None, str(exc) or "invalid arch"
            yield Outcome(arch, metrics, error, started, time.time())
