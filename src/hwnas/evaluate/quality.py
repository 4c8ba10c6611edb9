"""Quality of a sub-network with inherited weights: the task's metrics (top-1, bits per byte),
after batch-norm recalibration where the family has batch norm.

Running statistics in a super-network are shared by every sub-network and fit none of them,
so each extracted sub-network re-estimates them on a fixed calibration subset first.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from hwnas.evaluate.context import EvaluationContext, EvaluationPlan
from hwnas.metrics import Metric
from hwnas.space import Arch
from hwnas.tasks.base import Task


@torch.no_grad()
def recalibrate_batchnorm(module: nn.Module, inputs: torch.Tensor, batch_size: int = 256) -> None:
    """Replace running statistics with exact averages over ``inputs`` (no-op without BN)."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration batches
    module.train()
    for start in range(0, len(inputs), batch_size):
        module(inputs[start : start + batch_size])
    module.eval()


class QualityEvaluator:
    """The task's quality metrics on the validation split, of the model ``build(arch)``
    (recalibrated, or quantized, by the pipeline: ``EvaluationContext.build``)."""

    def __init__(self, build: Callable[[Arch], nn.Module], task: Task) -> None:
        self.build = build
        self.task = task
        self.metrics = tuple(m.name for m in task.quality_metrics)

    @staticmethod
    def describe(plan: EvaluationPlan) -> tuple[Metric, ...]:
        return plan.task.quality_metrics

    @classmethod
    def create(cls, context: EvaluationContext) -> QualityEvaluator:
        return cls(context.build, context.task)

    def evaluate(self, arch: Arch) -> dict[str, float]:
        return self.task.quality(self.build(arch), "val")
