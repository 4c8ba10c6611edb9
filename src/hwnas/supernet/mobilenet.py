"""An elastic MobileNetV3-style super-network (Once-for-All style) for CPUs and small images.

Elastic dimensions: input resolution, depth per stage, and per block the depthwise kernel
size and the expand ratio. Stage widths are fixed, so block inputs and outputs never change
and only a block's hidden (expanded) channels are elastic.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn

from hwnas.errors import HwnasError
from hwnas.space import Arch, Space, Value, ordinal
from hwnas.supernet.elastic import (
    ElasticBatchNorm2d,
    ElasticDepthwiseConv,
    ElasticPointwiseConv,
    ElasticSqueezeExcite,
    reorder_,
)
from hwnas.supernet.static import MBConv, SubNet, activation, pool_and_classify, resize

_TUPLE_FIELDS = {
    "widths": int,
    "strides": int,
    "depths": int,
    "kernels": int,
    "expands": int,
    "resolutions": int,
    "se_stages": bool,
    "hswish_stages": bool,
}
_INT_FIELDS = (
    "in_channels",
    "num_classes",
    "stem_width",
    "stem_stride",
    "final_width",
    "se_reduction",
)
_CHOICE_FIELDS = ("depths", "kernels", "expands", "resolutions")


class BlockSpec(NamedTuple):
    """Where a block sits and the fixed shape of its input and output."""

    stage: int
    index: int
    in_channels: int
    out_channels: int
    stride: int
    se: bool
    hswish: bool


@dataclass(frozen=True)
class MobileNetConfig:
    """Shape of the super-network; the default is small enough to train on CPUs at 32x32.

    The stem's stride 2 and expand ratios up to 4 keep a sandwich step of the largest
    network under a second on one CPU thread at batch 64 (stride 1 and ratio 6: ~3 s).

    ``depths``, ``kernels``, ``expands`` and ``resolutions`` are the options of the search
    space (strictly increasing); the deepest depth is how many blocks each stage holds. SE and
    h-swish are on in the later stages, as in MobileNetV3, where feature maps are small and
    channels many.
    """

    in_channels: int = 3
    num_classes: int = 10
    stem_width: int = 16
    stem_stride: int = 2
    widths: tuple[int, ...] = (16, 24, 40, 64)
    strides: tuple[int, ...] = (1, 2, 2, 2)
    depths: tuple[int, ...] = (1, 2, 3, 4)
    kernels: tuple[int, ...] = (3, 5, 7)
    expands: tuple[int, ...] = (2, 3, 4)
    resolutions: tuple[int, ...] = (16, 20, 24, 28, 32)
    se_stages: tuple[bool, ...] = (False, False, True, True)
    hswish_stages: tuple[bool, ...] = (False, False, True, True)
    final_width: int = 128
    se_reduction: int = 4

    def __post_init__(self) -> None:
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if type(value) is not int or value < 1:
                raise HwnasError(f"config {name}: expected a positive int, got {value!r}")
        for name, kind in _TUPLE_FIELDS.items():
            value = getattr(self, name)
            ok = isinstance(value, tuple) and value and all(type(v) is kind for v in value)
            if not ok or (kind is int and min(value) < 1):
                what = "positive ints" if kind is int else "booleans"
                raise HwnasError(
                    f"config {name}: expected a non-empty list of {what}, got {value!r}"
                )
        for name in _CHOICE_FIELDS:
            value = getattr(self, name)
            if list(value) != sorted(set(value)):
                raise HwnasError(f"config {name}: options must be strictly increasing, got {value}")
        if any(k % 2 == 0 for k in self.kernels):
            raise HwnasError(f"config kernels: sizes must be odd, got {self.kernels}")
        n = len(self.widths)
        for name in ("strides", "se_stages", "hswish_stages"):
            if len(getattr(self, name)) != n:
                raise HwnasError(f"config {name}: needs one entry per stage ({n}, as widths)")
        for spec in self.blocks():
            if spec.se and spec.in_channels * min(self.expands) < self.se_reduction:
                raise HwnasError(
                    f"config se_reduction: {self.se_reduction} leaves no SE channels in stage "
                    f"{spec.stage}"
                )

    @property
    def max_depth(self) -> int:
        return max(self.depths)

    def blocks(self) -> Iterator[BlockSpec]:
        """Every block of the super-network (at the deepest depth), stage by stage."""
        in_channels = self.stem_width
        for i, (width, stride) in enumerate(zip(self.widths, self.strides, strict=True)):
            for j in range(self.max_depth):
                yield BlockSpec(
                    i,
                    j,
                    in_channels,
                    width,
                    stride if j == 0 else 1,
                    self.se_stages[i],
                    self.hswish_stages[i],
                )
                in_channels = width

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (tuples become lists), stored in checkpoints and run records."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> MobileNetConfig:
        """Inverse of ``to_dict``; an unknown key is a one-line ``HwnasError``."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise HwnasError(
                f"mobilenet config has no key {unknown[0]!r} (known: {', '.join(sorted(fields))})"
            )
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


class ArchBlock(NamedTuple):
    """A block an arch runs: where it sits, and its kernel size and hidden channels."""

    spec: BlockSpec
    kernel: int
    hidden: int


def arch_blocks(arch: Mapping[str, Value | None], config: MobileNetConfig) -> Iterator[ArchBlock]:
    """The blocks ``arch`` runs, in order: the one walk that cost, memory and latency
    tables all build on, so they cannot disagree about which blocks exist."""
    for spec in config.blocks():
        if spec.index < int(arch[f"s{spec.stage}.depth"]):
            key = f"s{spec.stage}.b{spec.index}"
            yield ArchBlock(
                spec, int(arch[f"{key}.kernel"]), spec.in_channels * int(arch[f"{key}.expand"])
            )


def out_size(size: int, stride: int) -> int:
    """Spatial size after an odd-kernel conv padded by kernel // 2."""
    return (size - 1) // stride + 1


def build_space(config: MobileNetConfig) -> Space:
    """Choices ``resolution``, ``s{i}.depth``, ``s{i}.b{j}.kernel`` and ``s{i}.b{j}.expand``.

    Block j's choices exist only when the stage is deeper than j, so archs that differ only in
    the blocks a shallow stage skips canonicalise to the same key.
    """
    choices = [ordinal("resolution", config.resolutions)]
    for i in range(len(config.widths)):
        depth = f"s{i}.depth"
        choices.append(ordinal(depth, config.depths))
        for j in range(config.max_depth):
            deeper = [d for d in config.depths if d > j]
            cond: dict[str, Any] = {} if j < min(config.depths) else {"when": depth, "in_": deeper}
            choices.append(ordinal(f"s{i}.b{j}.kernel", config.kernels, **cond))
            choices.append(ordinal(f"s{i}.b{j}.expand", config.expands, **cond))
    return Space(choices, name="mobilenet")


class ElasticMBConv(nn.Module):
    """Inverted residual block with elastic kernel size and expand ratio."""

    def __init__(self, spec: BlockSpec, config: MobileNetConfig) -> None:
        super().__init__()
        self.spec = spec
        hidden = spec.in_channels * max(config.expands)
        self.expand = ElasticPointwiseConv(spec.in_channels, hidden)
        self.expand_bn = ElasticBatchNorm2d(hidden)
        self.depthwise = ElasticDepthwiseConv(hidden, config.kernels, spec.stride)
        self.depthwise_bn = ElasticBatchNorm2d(hidden)
        self.se = ElasticSqueezeExcite(hidden, config.se_reduction) if spec.se else None
        self.project = ElasticPointwiseConv(hidden, spec.out_channels)
        self.project_bn = ElasticBatchNorm2d(spec.out_channels)
        self.act = activation(spec.hswish)
        self.residual = spec.stride == 1 and spec.in_channels == spec.out_channels
        self.kernel = max(config.kernels)
        self.expand_ratio = max(config.expands)

    @property
    def hidden(self) -> int:
        return self.spec.in_channels * self.expand_ratio

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.expand_bn(self.expand(x, self.hidden)))
        y = self.act(self.depthwise_bn(self.depthwise(y, self.kernel)))
        if self.se is not None:
            y = self.se(y)
        y = self.project_bn(self.project(y, self.spec.out_channels))
        return x + y if self.residual else y

    def export(self, kernel: int | None = None, expand: int | None = None) -> MBConv:
        """A plain ``MBConv`` with copied weights: the active form, or the one with ``kernel``
        and ``expand`` ratio (what a latency table times, without changing the active arch)."""
        kernel = self.kernel if kernel is None else kernel
        h = self.spec.in_channels * (self.expand_ratio if expand is None else expand)
        spec = self.spec
        return MBConv(
            nn.Sequential(
                self.expand.export(spec.in_channels, h),
                self.expand_bn.export(h),
                activation(spec.hswish),
            ),
            nn.Sequential(
                self.depthwise.export(h, kernel),
                self.depthwise_bn.export(h),
                activation(spec.hswish),
            ),
            self.se.export(h) if self.se is not None else None,
            nn.Sequential(
                self.project.export(h, spec.out_channels),
                self.project_bn.export(spec.out_channels),
            ),
            self.residual,
        )

    def importance(self) -> torch.Tensor:
        """L1 norm of each hidden channel's expand weights."""
        return self.expand.weight.detach().abs().sum(dim=(1, 2, 3))

    def sort_channels(self) -> None:
        """Reorder hidden channels by descending importance without changing the function."""
        perm = torch.argsort(self.importance(), descending=True, stable=True)
        reorder_(self.expand.weight, perm, 0)
        for bn in (self.expand_bn, self.depthwise_bn):
            for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
                reorder_(t, perm, 0)
        reorder_(self.depthwise.weight, perm, 0)
        if self.se is not None:
            reorder_(self.se.reduce_weight, perm, 1)
            reorder_(self.se.expand_weight, perm, 0)
            reorder_(self.se.expand_bias, perm, 0)
        reorder_(self.project.weight, perm, 1)


class ElasticMobileNet(nn.Module):
    """The super-network. ``set_active`` picks a sub-network; ``forward`` runs it.

    ``forward`` resizes its input to the active arch's resolution, as the standalone module
    from ``extract`` does, so both take the same input.
    """

    def __init__(self, config: MobileNetConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or MobileNetConfig()
        self._space = build_space(config)
        self.stem = nn.Sequential(
            nn.Conv2d(config.in_channels, config.stem_width, 3, config.stem_stride, 1, bias=False),
            nn.BatchNorm2d(config.stem_width),
            nn.Hardswish(),
        )
        stages: list[list[ElasticMBConv]] = [[] for _ in config.widths]
        for spec in config.blocks():
            stages[spec.stage].append(ElasticMBConv(spec, config))
        self.stages = nn.ModuleList(nn.ModuleList(blocks) for blocks in stages)
        self.head = nn.Sequential(
            nn.Conv2d(config.widths[-1], config.final_width, 1, bias=False),
            nn.BatchNorm2d(config.final_width),
            nn.Hardswish(),
        )
        self.classifier = nn.Linear(config.final_width, config.num_classes)
        for m in (self.stem[0], self.head[0]):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
        self.active = self.largest_arch()
        self.set_active(self.active)

    def space(self) -> Space:
        return self._space

    def largest_arch(self) -> Arch:
        return self._space.make({c.name: c.options[-1] for c in self._space.choices})

    def smallest_arch(self) -> Arch:
        return self._space.make({c.name: c.options[0] for c in self._space.choices})

    def canonical(self, arch: Arch | Mapping[str, Value | None]) -> Arch:
        """Validate ``arch`` against this network's space and return its canonical form."""
        if isinstance(arch, Arch):
            if arch.names != self._space.names:
                raise HwnasError("arch does not belong to this super-network's space")
            arch = arch.to_dict()
        return self._space.make(arch)

    def set_active(self, arch: Arch | Mapping[str, Value | None]) -> Arch:
        """Select the sub-network that ``forward`` runs; returns the canonical arch."""
        arch = self.canonical(arch)
        for i, stage in enumerate(self.stages):
            for j, block in enumerate(stage[: arch[f"s{i}.depth"]]):
                block.kernel = arch[f"s{i}.b{j}.kernel"]
                block.expand_ratio = arch[f"s{i}.b{j}.expand"]
        self.active = arch
        return arch

    def active_blocks(self) -> Iterator[ElasticMBConv]:
        for i, stage in enumerate(self.stages):
            yield from stage[: self.active[f"s{i}.depth"]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Runs the active sub-network on ``x`` resized to its resolution, exactly as the
        extracted sub-network does, so training and evaluation see the same inputs."""
        x = self.stem(resize(x, self.active["resolution"]))
        for block in self.active_blocks():
            x = block(x)
        return pool_and_classify(self.head(x), self.classifier)

    def sort_channels(self) -> None:
        """Put every block's most important hidden channels first (function unchanged).

        Narrower blocks use the first channels, so after sorting they keep the ones that
        matter most: OFA does this before training smaller expand ratios.
        """
        for stage in self.stages:
            for block in stage:
                block.sort_channels()

    def extract(self, arch: Arch | Mapping[str, Value | None]) -> SubNet:
        """A standalone plain-torch copy of the sub-network ``arch``, in this module's mode."""
        previous = self.active
        arch = self.set_active(arch)
        try:
            with torch.no_grad():
                sub = SubNet(
                    int(arch["resolution"]),
                    copy.deepcopy(self.stem),
                    nn.Sequential(*(b.export() for b in self.active_blocks())),
                    copy.deepcopy(self.head),
                    copy.deepcopy(self.classifier),
                )
        finally:
            self.set_active(previous)
        return sub.train(self.training)
