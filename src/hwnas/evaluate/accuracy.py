"""Top-1 accuracy of a sub-network with inherited weights, after batch-norm recalibration.

Running statistics in a super-network are shared by every sub-network and fit none of them,
so each extracted sub-network re-estimates them on a fixed calibration subset first.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from hwnas.space import Arch


@torch.no_grad()
def recalibrate_batchnorm(module: nn.Module, images: torch.Tensor, batch_size: int = 256) -> None:
    """Replace running statistics with exact averages over ``images``."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the calibration batches
    module.train()
    for start in range(0, len(images), batch_size):
        module(images[start : start + batch_size])
    module.eval()


@torch.no_grad()
def top1(module: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size=512) -> float:
    module.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = module(images[start : start + batch_size])
        correct += int((logits.argmax(1) == labels[start : start + batch_size]).sum())
    return 100.0 * correct / max(len(labels), 1)


class AccuracyEvaluator:
    """Validation top-1 (%) of ``build(arch)`` after recalibrating it on ``calibration``."""

    metrics = ("accuracy",)

    def __init__(
        self,
        build: Callable[[Arch], nn.Module],
        calibration: torch.Tensor,
        images: torch.Tensor,
        labels: torch.Tensor,
    ) -> None:
        self.build = build
        self.calibration = calibration
        self.images = images
        self.labels = labels

    def evaluate(self, arch: Arch) -> dict[str, float]:
        module = self.build(arch)
        recalibrate_batchnorm(module, self.calibration)
        return {"accuracy": top1(module, self.images, self.labels)}
