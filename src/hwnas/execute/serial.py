"""The default executor: this process, one job after another, on the live evaluators."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping

from hwnas.evaluate.base import Evaluator
from hwnas.execute.base import Built, Job, Outcome, perform
from hwnas.space import Space


class SerialExecutor:
    """Runs each job in ``completed`` in submission order; the evaluators are the caller's
    own objects (a trained super-network in memory), so nothing is rebuilt."""

    slots = 1

    def __init__(self, space: Space, evaluators: Mapping[str, Evaluator]) -> None:
        self._here = Built(space, evaluators)
        self._queue: deque[Job] = deque()

    def submit(self, job: Job) -> None:
        self._queue.append(job)

    def completed(self, on_start: Callable[[Job], None] | None = None) -> list[Outcome]:
        job = self._queue.popleft()
        if on_start is not None:
            on_start(job)
        return [perform(job, self._here, remote=False)]

    def close(self) -> None:
        self._queue.clear()
