"""The quantized model's size, measured on the model itself: its file and its weights."""

from __future__ import annotations

from collections.abc import Callable

from hwnas.evaluate.context import EvaluationContext, EvaluationPlan
from hwnas.metrics import Metric
from hwnas.precision import weight_summary
from hwnas.space import Arch


class QuantizedSize:
    """Recorded in precision searches only (``plan.precision``), where ``size_bytes`` and
    ``size_int8_bytes`` (arithmetic on the parameter count) are not what a device stores."""

    described = (
        Metric("model_bytes", "bytes", "the quantized ONNX file", integer=True),
        Metric("weight_bytes", "bytes", "its weights (int4 at half a byte)", integer=True),
    )
    metrics = tuple(m.name for m in described)

    def __init__(self, build: Callable[[Arch], object]) -> None:
        """``build(arch)`` is the quantized model (``hwnas.quantize.OnnxModule``)."""
        self.build = build

    @classmethod
    def describe(cls, plan: EvaluationPlan) -> tuple[Metric, ...]:
        return cls.described if plan.precision else ()

    @classmethod
    def create(cls, context: EvaluationContext) -> QuantizedSize | None:
        return cls(context.build) if context.precision else None

    def evaluate(self, arch: Arch) -> dict[str, float]:
        return weight_summary(self.build(arch).model)
