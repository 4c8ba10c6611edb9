"""Analytic cost of an arch: multiply-accumulates, parameters and fp32 size; no model built."""

from __future__ import annotations

from collections.abc import Callable

from hwnas.evaluate.context import EvaluationContext, EvaluationPlan
from hwnas.families.base import Cost
from hwnas.metrics import Metric
from hwnas.space import Arch


class CostEvaluator:
    described = (
        Metric("macs", "MACs", "multiply-accumulates of one batch-1 inference", integer=True),
        Metric("params", "parameters", "parameters of the extracted sub-network", integer=True),
        Metric("size_bytes", "bytes", "fp32 weights (4 bytes per parameter)", integer=True),
    )
    metrics = tuple(m.name for m in described)

    def __init__(self, cost: Callable[[Arch], Cost]) -> None:
        """``cost`` gives an arch's (MACs, parameters) in one walk: ``Family.cost``."""
        self.cost = cost

    @classmethod
    def describe(cls, plan: EvaluationPlan) -> tuple[Metric, ...]:
        return cls.described

    @classmethod
    def create(cls, context: EvaluationContext) -> CostEvaluator:
        return cls(context.model.cost)

    def evaluate(self, arch: Arch) -> dict[str, float]:
        macs, params = self.cost(arch)
        return {"macs": float(macs), "params": float(params), "size_bytes": 4.0 * params}
