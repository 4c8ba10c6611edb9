"""Evaluators by name: what a run measures of every sub-network.

Each entry describes the metrics it records from the plan alone (so objectives and constraints
are checked against real names before any work) and makes its evaluator from the context.
A new evaluator is one file plus one line here.
"""

from __future__ import annotations

from typing import Protocol

from hwnas.evaluate.base import Evaluator
from hwnas.evaluate.context import EvaluationContext, EvaluationPlan
from hwnas.evaluate.cost import CostEvaluator
from hwnas.evaluate.latency import Latency
from hwnas.evaluate.memory import MemoryEvaluator
from hwnas.evaluate.proxy import ProxyEvaluator
from hwnas.evaluate.quality import QualityEvaluator
from hwnas.evaluate.size import QuantizedSize
from hwnas.metrics import Metric


class EvaluatorEntry(Protocol):
    def describe(self, plan: EvaluationPlan) -> tuple[Metric, ...]:
        """The metrics it records in runs of ``plan`` (none: it takes no part)."""
        ...

    def create(self, context: EvaluationContext) -> Evaluator | None:
        """Its evaluator for this run, or None where ``describe`` gives no metric."""
        ...


EVALUATORS: dict[str, EvaluatorEntry] = {
    "quality": QualityEvaluator,
    "cost": CostEvaluator,
    "memory": MemoryEvaluator,
    "latency": Latency,
    "quantized_size": QuantizedSize,
    "proxies": ProxyEvaluator,
}


def describe_metrics(plan: EvaluationPlan) -> dict[str, Metric]:
    """Every metric a run records, by name: the names objectives and constraints may use."""
    return {m.name: m for entry in EVALUATORS.values() for m in entry.describe(plan)}


def metric_names(plan: EvaluationPlan) -> tuple[str, ...]:
    return tuple(describe_metrics(plan))


def create_evaluators(context: EvaluationContext) -> dict[str, Evaluator]:
    """The registered evaluators that take part in this run, by name, in registry order."""
    made = {name: entry.create(context) for name, entry in EVALUATORS.items()}
    return {name: evaluator for name, evaluator in made.items() if evaluator is not None}
