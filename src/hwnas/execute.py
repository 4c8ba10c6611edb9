"""Executors run (evaluator, arch) jobs and hand back outcomes as they complete.

They never decide anything: the study owns the budget, the store, the retries and the
searcher. The serial executor is the default; pools and Dask will implement the same
``run`` method. An evaluation that raises is an outcome, not the end of the run: an
``InvalidArch`` is final (the arch cannot be scored), any other exception a ``failed``
attempt the study may retry. An ``HwnasError`` (bad input, a damaged file) and interrupts
still end the run, since retrying cannot mend them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from hwnas.errors import HwnasError, one_line
from hwnas.evaluate.base import Evaluator, InvalidArch
from hwnas.space import Arch


@dataclass(frozen=True)
class Outcome:
    arch: Arch
    metrics: dict[str, float] | None
    error: str | None
    started_at: float
    finished_at: float
    failed: bool = False  # raised something other than InvalidArch: worth another attempt

    @property
    def wall_time_s(self) -> float:
        return self.finished_at - self.started_at


class SerialExecutor:
    """Evaluates in this process, one arch after another."""

    def run(
        self, evaluator: Evaluator, archs: Sequence[Arch],
        on_start: Callable[[Arch], None] | None = None,
    ) -> Iterator[Outcome]:  # fmt: skip
        """Evaluate ``archs`` in order; ``on_start(arch)`` is called as each one starts."""
        for arch in archs:
            if on_start is not None:
                on_start(arch)
            started, failed = time.time(), False
            try:
                metrics, error = evaluator.evaluate(arch), None
            except InvalidArch as exc:
                metrics, error = None, str(exc) or "invalid arch"
            except HwnasError:
                raise
            except Exception as exc:  # noqa: BLE001 - recorded, retried, never lost
                metrics, error, failed = None, f"{type(exc).__name__}: {one_line(exc)}", True
            yield Outcome(arch, metrics, error, started, time.time(), failed)
