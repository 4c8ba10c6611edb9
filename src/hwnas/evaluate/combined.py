"""Several evaluators as one: metrics merged, each evaluator unaware of the others."""

from __future__ import annotations

from collections.abc import Sequence

from hwnas.evaluate.base import Evaluator
from hwnas.space import Arch


class Combined:
    def __init__(self, evaluators: Sequence[Evaluator]) -> None:
        self.evaluators = tuple(evaluators)
        self.metrics = tuple(m for e in self.evaluators for m in e.metrics)

    def evaluate(self, arch: Arch) -> dict[str, float]:
        out: dict[str, float] = {}
        for evaluator in self.evaluators:
            out.update(evaluator.evaluate(arch))
        return out
