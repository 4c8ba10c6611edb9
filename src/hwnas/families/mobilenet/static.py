"""Plain torch modules that an extracted sub-network is made of.

An extracted sub-network must run without any elastic logic (so it can be exported, quantised
or timed as an ordinary model), yet compute exactly what the super-network computes in that
mode. Both therefore share the pieces here: the input resize, the activations and the order
of operations in the head.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def resize(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Bilinearly resize a batch of images to ``resolution`` x ``resolution``.

    Elastic resolution is part of the arch; the super-network and the extracted sub-network
    both go through this one function, so their inputs are bit-identical.
    """
    if tuple(x.shape[-2:]) == (resolution, resolution):
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)


def activation(hswish: bool) -> nn.Module:
    """MobileNetV3 uses h-swish in later stages (where it pays for itself) and ReLU earlier."""
    return nn.Hardswish() if hswish else nn.ReLU()


def pool_and_classify(x: torch.Tensor, classifier: nn.Linear) -> torch.Tensor:
    """Global average pool then the linear classifier, shared so both paths pool identically."""
    return classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class SqueezeExcite(nn.Module):
    """Channel gating from globally pooled features (ReLU bottleneck, hard-sigmoid gate)."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.relu(self.reduce(F.adaptive_avg_pool2d(x, 1)))
        return x * F.hardsigmoid(self.expand(s))


class MBConv(nn.Module):
    """Inverted residual block: expand 1x1, depthwise kxk, optional SE, project 1x1."""

    def __init__(
        self,
        expand: nn.Sequential,
        depthwise: nn.Sequential,
        se: SqueezeExcite | None,
        project: nn.Sequential,
        residual: bool,
    ) -> None:
        super().__init__()
        self.expand = expand
        self.depthwise = depthwise
        self.se = se
        self.project = project
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.depthwise(self.expand(x))
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return x + y if self.residual else y


class SubNet(nn.Module):
    """A standalone sub-network: resize to its resolution, stem, blocks, head, classifier.

    It takes the same input as the super-network's caller (images at any size) because the
    resolution it was extracted for is part of it.
    """

    def __init__(
        self,
        resolution: int,
        stem: nn.Sequential,
        blocks: nn.Sequential,
        head: nn.Sequential,
        classifier: nn.Linear,
    ) -> None:
        super().__init__()
        self.resolution = resolution
        self.stem = stem
        self.blocks = blocks
        self.head = head
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.blocks(self.stem(resize(x, self.resolution))))
        return pool_and_classify(x, self.classifier)
