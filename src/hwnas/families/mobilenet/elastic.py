"""Elastic layers: one set of weights, sliced at run time to serve every sub-network.

Once-for-All trains a single network whose smaller sub-networks share its weights. Each layer
here owns the weights of its largest form and takes its active size from the input (channels)
or an argument (output channels, kernel size), so the only state a network needs is which
arch is active. Each layer can ``export`` its active form as a plain torch module holding a
copy of the sliced weights: that is how a sub-network becomes a standalone model.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.families.mobilenet.static import SqueezeExcite


def _conv_init(weight: torch.Tensor) -> None:
    """He init on fan-out, as MobileNet implementations use for convolutions."""
    nn.init.kaiming_normal_(weight, mode="fan_out")


class ElasticPointwiseConv(nn.Module):
    """1x1 convolution without bias whose active in/out channels are the first ones."""

    def __init__(self, max_in: int, max_out: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_out, max_in, 1, 1))
        _conv_init(self.weight)

    def forward(self, x: torch.Tensor, out_channels: int) -> torch.Tensor:
        return F.conv2d(x, self.weight[:out_channels, : x.shape[1]])

    def export(self, in_channels: int, out_channels: int) -> nn.Conv2d:
        conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        with torch.no_grad():
            conv.weight.copy_(self.weight[:out_channels, :in_channels])
        return conv


class ElasticDepthwiseConv(nn.Module):
    """Depthwise convolution with elastic channels and kernel size.

    A smaller kernel is the centre of the next larger one passed through a learned linear map
    (OFA's kernel transformation, one matrix per step such as 7->5 and 5->3, shared across
    channels and initialised to the identity). Plain centre-cropping would force one weight to
    serve both as a kernel's centre and as a whole small kernel; the map lets them differ.
    """

    def __init__(self, max_channels: int, kernel_sizes: tuple[int, ...], stride: int) -> None:
        super().__init__()
        self.kernel_sizes = tuple(sorted(kernel_sizes, reverse=True))
        self.stride = stride
        big = self.kernel_sizes[0]
        self.weight = nn.Parameter(torch.empty(max_channels, 1, big, big))
        _conv_init(self.weight)
        steps = zip(self.kernel_sizes, self.kernel_sizes[1:], strict=False)
        self.transforms = nn.ParameterDict(
            {f"{a}to{b}": nn.Parameter(torch.eye(b * b)) for a, b in steps}
        )

    def active_weight(self, channels: int, kernel_size: int) -> torch.Tensor:
        """The kernel of the first ``channels`` channels at ``kernel_size``, transforms applied."""
        if kernel_size not in self.kernel_sizes:
            raise ValueError(f"kernel size {kernel_size} not in {self.kernel_sizes}")
        kernel = self.weight[:channels]
        for size, smaller in zip(self.kernel_sizes, self.kernel_sizes[1:], strict=False):
            if smaller < kernel_size:
                break
            start = (size - smaller) // 2
            centre = kernel[:, :, start : start + smaller, start : start + smaller]
            flat = F.linear(
                centre.reshape(channels, smaller * smaller), self.transforms[f"{size}to{smaller}"]
            )
            kernel = flat.reshape(channels, 1, smaller, smaller)
        return kernel

    def forward(self, x: torch.Tensor, kernel_size: int) -> torch.Tensor:
        channels = x.shape[1]
        weight = self.active_weight(channels, kernel_size)
        return F.conv2d(x, weight, None, self.stride, kernel_size // 2, 1, channels)

    def export(self, channels: int, kernel_size: int) -> nn.Conv2d:
        conv = nn.Conv2d(
            channels,
            channels,
            kernel_size,
            self.stride,
            kernel_size // 2,
            groups=channels,
            bias=False,
        )
        with torch.no_grad():
            conv.weight.copy_(self.active_weight(channels, kernel_size))
        return conv


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """Batch norm over the first C channels of its largest form (C taken from the input).

    Running statistics are sliced views, so a train-mode forward updates only the active
    channels' statistics in place, as OFA does.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        momentum = self.momentum if self.momentum is not None else 0.0
        if self.training:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                momentum = 1.0 / float(self.num_batches_tracked)
        return F.batch_norm(
            x,
            self.running_mean[:c],
            self.running_var[:c],
            self.weight[:c],
            self.bias[:c],
            self.training,
            momentum,
            self.eps,
        )

    def export(self, channels: int) -> nn.BatchNorm2d:
        bn = nn.BatchNorm2d(channels, eps=self.eps, momentum=self.momentum)
        with torch.no_grad():
            bn.weight.copy_(self.weight[:channels])
            bn.bias.copy_(self.bias[:channels])
            bn.running_mean.copy_(self.running_mean[:channels])
            bn.running_var.copy_(self.running_var[:channels])
            bn.num_batches_tracked.copy_(self.num_batches_tracked)
        return bn


class ElasticSqueezeExcite(nn.Module):
    """Squeeze-excite whose active width follows the input; the bottleneck is C // reduction."""

    def __init__(self, max_channels: int, reduction: int) -> None:
        super().__init__()
        self.reduction = reduction
        reduced = max_channels // reduction
        # Default Conv2d init, as the plain SqueezeExcite gets.
        reduce, expand = nn.Conv2d(max_channels, reduced, 1), nn.Conv2d(reduced, max_channels, 1)
        self.reduce_weight, self.reduce_bias = reduce.weight, reduce.bias
        self.expand_weight, self.expand_bias = expand.weight, expand.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        r = c // self.reduction
        s = F.adaptive_avg_pool2d(x, 1)
        s = F.relu(F.conv2d(s, self.reduce_weight[:r, :c], self.reduce_bias[:r]))
        return x * F.hardsigmoid(F.conv2d(s, self.expand_weight[:c, :r], self.expand_bias[:c]))

    def export(self, channels: int) -> SqueezeExcite:
        r = channels // self.reduction
        se = SqueezeExcite(channels, r)
        with torch.no_grad():
            se.reduce.weight.copy_(self.reduce_weight[:r, :channels])
            se.reduce.bias.copy_(self.reduce_bias[:r])
            se.expand.weight.copy_(self.expand_weight[:channels, :r])
            se.expand.bias.copy_(self.expand_bias[:channels])
        return se


def reorder_(tensor: torch.Tensor, perm: torch.Tensor, dim: int) -> None:
    """Permute ``tensor`` along ``dim`` in place (keeping its identity for optimizers)."""
    with torch.no_grad():
        tensor.copy_(tensor.index_select(dim, perm))
