"""An elastic MobileNetV3-style super-network (Once-for-All style) for CPUs and small images.

Elastic dimensions: input resolution, depth per stage, and per block the depthwise kernel
size and the expand ratio. Stage widths are fixed, so block inputs and outputs never change
and only a block's hidden (expanded) channels are elastic.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator

import torch
from torch import nn

from hwnas.families.base import ArchLike, Cost, Family, Layer, Op, Phase, SquareImageClassifier
from hwnas.families.mobilenet import layers
from hwnas.families.mobilenet.config import BlockSpec, MobileNetConfig, build_space
from hwnas.families.mobilenet.cost import cost
from hwnas.families.mobilenet.elastic import (
    ElasticBatchNorm2d,
    ElasticDepthwiseConv,
    ElasticPointwiseConv,
    ElasticSqueezeExcite,
    reorder_,
)
from hwnas.families.mobilenet.memory import mobilenet_schedule, parameter_bytes
from hwnas.families.mobilenet.static import MBConv, SubNet, activation, pool_and_classify, resize
from hwnas.precision import QuantizableLayer
from hwnas.space import Arch, Space


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

    def hidden_activations(self, x: torch.Tensor) -> torch.Tensor:
        """The hidden channels after the depthwise convolution: what the projection reads."""
        y = self.act(self.expand_bn(self.expand(x, self.hidden)))
        return self.act(self.depthwise_bn(self.depthwise(y, self.kernel)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.hidden_activations(x)
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

    def sort_channels(self, score: torch.Tensor | None = None) -> None:
        """Reorder hidden channels by descending ``score`` (default: ``importance``) without
        changing the function."""
        score = self.importance() if score is None else score
        perm = torch.argsort(score, descending=True, stable=True)
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


class ElasticMobileNet(nn.Module, SquareImageClassifier, Family):
    """The super-network. ``set_active`` picks a sub-network; ``forward`` runs it.

    ``forward`` resizes its input to the active arch's resolution, as the standalone module
    from ``extract`` does, so both take the same input.
    """

    name = "mobilenet"
    config_class = MobileNetConfig
    training_defaults = {"optimizer": "sgd", "learning_rate": 0.05, "weight_decay": 3e-5,
                         "warmup": 0.0, "grad_clip": 5.0, "teacher_only": 0.0,
                         "distillation": 1.0}  # fmt: skip
    small_overrides = {"widths": (8, 12, 16, 16), "depths": (1, 2), "kernels": (3, 5),
                       "expands": (1, 2), "resolutions": (12, 16), "final_width": 16,
                       "stem_width": 8}  # fmt: skip

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
        self.active = self.teacher_arch()
        self.set_active(self.active)

    # -- building ------------------------------------------------------------------------
    def space(self) -> Space:
        return self._space

    # -- training ------------------------------------------------------------------------
    def teacher_arch(self) -> Arch:
        """The largest network: every choice is ordinal, so its last option is the biggest."""
        return self._space.make({c.name: c.options[-1] for c in self._space.choices})

    def smallest_arch(self) -> Arch:
        return self._space.make({c.name: c.options[0] for c in self._space.choices})

    def label(self, arch: ArchLike) -> str:
        """Resolution, depth per stage, mean kernel and expand ratio: ``r32 d3-1-4-2 k5.2
        e3.1``."""
        values = self.canonical(arch).to_dict()
        depths = [v for n, v in values.items() if n.endswith(".depth")]
        kernels = [v for n, v in values.items() if n.endswith(".kernel") and v is not None]
        expands = [v for n, v in values.items() if n.endswith(".expand") and v is not None]
        resolution = values["resolution"]
        kernel, expand = sum(kernels) / len(kernels), sum(expands) / len(expands)
        return f"r{resolution} d{'-'.join(map(str, depths))} k{kernel:.1f} e{expand:.1f}"

    def deployed_shape(self, arch: ArchLike) -> tuple[int, int, int]:
        """The arch's own resolution: fed at it, the sub-network skips its input resize."""
        resolution = self.canonical(arch).to_dict()["resolution"]
        return self.config.in_channels, resolution, resolution

    def to_deployed(self, arch: ArchLike, x: torch.Tensor) -> torch.Tensor:
        return resize(x, int(self.canonical(arch)["resolution"]))

    def quantizable_layers(self) -> list[QuantizableLayer]:
        """The stem, every block (while its stage is deep enough) and the head with the
        classifier; all convolutional, so int8 or fp32."""
        c = self.config
        layers = [QuantizableLayer("stem")]
        for i in range(len(c.widths)):
            for j in range(c.max_depth):
                deeper = tuple(d for d in c.depths if d > j)
                when = None if j < min(c.depths) else f"s{i}.depth"
                layers.append(QuantizableLayer(f"s{i}.b{j}", when=when, in_=deeper if when else ()))
        return [*layers, QuantizableLayer("head")]

    def quantizable_modules(self, arch: ArchLike) -> dict[str, tuple[str, ...]]:
        arch = self.canonical(arch)
        modules = {"stem": ("stem",)}
        blocks = (f"s{i}.b{j}" for i in range(len(self.config.widths))
                  for j in range(int(arch[f"s{i}.depth"])))  # fmt: skip
        modules.update({name: (f"blocks.{k}",) for k, name in enumerate(blocks)})
        return {**modules, "head": ("head", "classifier")}

    def phases(self) -> tuple[Phase, ...]:
        """Once-for-All's order: the full network, then elastic kernel, depth, and last the
        expand ratio (with resolution), for which hidden channels are sorted first."""
        names = self._space.names
        kernel = frozenset(n for n in names if n.endswith(".kernel"))
        depth = kernel | {n for n in names if n.endswith(".depth")}
        return (
            Phase("full", frozenset()),
            Phase("kernel", kernel),
            Phase("depth", depth),
            Phase("expand", frozenset(names), sort_first=True),
        )

    def set_active(self, arch: ArchLike) -> Arch:
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

    def sort_by_importance(self, inputs: torch.Tensor | None = None) -> None:
        """Put every block's most important hidden channels first (function unchanged).

        Narrower blocks use the first channels, so after sorting they keep the ones that
        matter most: OFA does this before training smaller expand ratios, by the expand
        weights' norms. With calibration ``inputs``, by each channel's mean activation on
        them in the largest network (Minitron's activation-based importance). Depth keeps
        each stage's first blocks (OFA's rule) either way.
        """
        if inputs is None:
            for block in itertools.chain.from_iterable(self.stages):
                block.sort_channels()
            return
        previous, was_training = self.active, self.training
        self.set_active(self.teacher_arch())
        self.eval()
        with torch.no_grad():
            x = self.stem(resize(inputs, self.active["resolution"]))
            for block in self.active_blocks():
                block.sort_channels(block.hidden_activations(x).abs().mean(dim=(0, 2, 3)))
                x = block(x)
        self.train(was_training)
        self.set_active(previous)

    # -- evaluating ----------------------------------------------------------------------
    def extract(self, arch: ArchLike) -> SubNet:
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

    def cost(self, arch: ArchLike) -> Cost:
        return cost(arch, self.config)

    def op_schedule(self, arch: ArchLike) -> list[Op]:
        return mobilenet_schedule(arch, self.config, self.config.input_size)

    def weight_bytes(self, arch: ArchLike) -> dict[str, int]:
        return parameter_bytes(arch, self.config)

    # -- latency tables ------------------------------------------------------------------
    def layer_schedule(self, arch: ArchLike) -> list[Layer]:
        return layers.schedule(self.config, arch, self.config.input_size)

    def layer_catalogue(self) -> list[Layer]:
        return layers.catalogue(self.config, self.config.input_size)

    def layer_module(self, layer: Layer) -> nn.Module:
        return layers.module(self, layer)

    def layer_modules(self, arch: ArchLike) -> list[nn.Module]:
        return layers.modules(self, self.canonical(arch))
