"""Memory a sub-network needs to run: peak activations (SRAM) and int8 weights (flash)."""

from __future__ import annotations

from hwnas.evaluate.context import EvaluationContext, EvaluationPlan
from hwnas.families.base import Family
from hwnas.families.memory import peak_live
from hwnas.metrics import Metric
from hwnas.space import Arch


class MemoryEvaluator:
    """Analytic, like ``CostEvaluator``: the peak of live tensors over the family's op
    schedule (fp32, batch 1) and its int8 weight bytes."""

    described = (
        Metric("peak_memory_kb", "KiB", "peak of live fp32 activations, batch 1"),
        Metric("size_int8_bytes", "bytes", "weights at one byte per parameter", integer=True),
    )
    metrics = tuple(m.name for m in described)

    def __init__(self, family: Family) -> None:
        self.family = family

    @classmethod
    def describe(cls, plan: EvaluationPlan) -> tuple[Metric, ...]:
        return cls.described

    @classmethod
    def create(cls, context: EvaluationContext) -> MemoryEvaluator:
        return cls(context.model)

    def evaluate(self, arch: Arch) -> dict[str, float]:
        return {
            "peak_memory_kb": peak_live(self.family.op_schedule(arch)).bytes / 1024,
            "size_int8_bytes": float(self.family.weight_bytes(arch)["int8"]),
        }
