"""Analytic cost of an arch: multiply-accumulates, parameters and fp32 size; no model built."""

from __future__ import annotations

from collections.abc import Callable

from hwnas.evaluate.context import EvaluationContext, EvaluationPlan
from hwnas.families.base import Cost
from hwnas.space import Arch


class CostEvaluator:
    metrics = ("macs", "params", "size_bytes")

    def __init__(self, cost: Callable[[Arch], Cost]) -> None:
        """``cost`` gives an arch's (MACs, parameters) in one walk: ``Family.cost``."""
        self.cost = cost

    @classmethod
    def metric_names(cls, plan: EvaluationPlan) -> tuple[str, ...]:
        return cls.metrics

    @classmethod
    def create(cls, context: EvaluationContext) -> CostEvaluator:
        return cls(context.model.cost)

    def evaluate(self, arch: Arch) -> dict[str, float]:
        macs, params = self.cost(arch)
        return {"macs": float(macs), "params": float(params), "size_bytes": 4.0 * params}
