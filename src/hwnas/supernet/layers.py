"""A sub-network as a sequence of layers: what a latency lookup table is keyed by.

FBNet and Once-for-All estimate a network's latency as the sum of its layers' latencies,
each measured once per configuration and input shape. A ``Layer`` names exactly that: its
kind, the settings that change its cost, and the shape it receives. Two archs that share a
layer (same block settings at the same input shape) share one table entry, so the table
covers the space with a few hundred measurements where the space has ~1e16 archs.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

from hwnas.space import Arch, Value
from hwnas.supernet.mobilenet import ElasticMobileNet, arch_blocks, out_size
from hwnas.supernet.static import pool_and_classify, resize


@dataclass(frozen=True)
class Layer:
    kind: str  # resize, stem, mbconv or head
    settings: tuple[tuple[str, int], ...]
    input_shape: tuple[int, int, int]  # channels, height, width (batch excluded)

    @property
    def key(self) -> str:
        """e.g. ``mbconv(in=16,out=24,stride=2,se=0,hswish=0,kernel=5,expand=3)@16x16x16``."""
        settings = ",".join(f"{k}={v}" for k, v in self.settings)
        return f"{self.kind}({settings})@{'x'.join(map(str, self.input_shape))}"

    def get(self, name: str) -> int:
        return dict(self.settings)[name]


class _Resize(nn.Module):
    def __init__(self, resolution: int) -> None:
        super().__init__()
        self.resolution = resolution

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resize(x, self.resolution)


class _Head(nn.Module):
    def __init__(self, head: nn.Module, classifier: nn.Linear) -> None:
        super().__init__()
        self.head = head
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pool_and_classify(self.head(x), self.classifier)


def schedule(
    model: ElasticMobileNet, arch: Arch | Mapping[str, Value | None], input_size: int
) -> list[Layer]:
    """The layers ``arch`` runs, in order, for square inputs of ``input_size`` pixels."""
    config = model.config
    resolution = int(arch["resolution"])
    layers = []
    if resolution != input_size:
        layers.append(
            Layer("resize", (("to", resolution),), (config.in_channels, input_size, input_size))
        )
    layers.append(Layer("stem", (), (config.in_channels, resolution, resolution)))
    size = out_size(resolution, config.stem_stride)
    for spec, kernel, hidden in arch_blocks(arch, config):
        settings = (
            ("in", spec.in_channels),
            ("out", spec.out_channels),
            ("stride", spec.stride),
            ("se", int(spec.se)),
            ("hswish", int(spec.hswish)),
            ("kernel", kernel),
            ("expand", hidden // spec.in_channels),
        )
        layers.append(Layer("mbconv", settings, (spec.in_channels, size, size)))
        size = out_size(size, spec.stride)
    layers.append(Layer("head", (), (config.widths[-1], size, size)))
    return layers


def catalogue(model: ElasticMobileNet, input_size: int) -> list[Layer]:
    """Every distinct layer any arch of the space can run: what a lookup table must hold.

    Spatial sizes depend only on the resolution (depth never changes them), so the largest
    depth at each resolution, with every kernel and expand ratio at every block, covers all.
    """
    config = model.config
    seen: dict[str, Layer] = {}
    for resolution, kernel, expand in itertools.product(
        config.resolutions, config.kernels, config.expands
    ):
        arch = {"resolution": resolution}
        for spec in config.blocks():
            arch[f"s{spec.stage}.depth"] = config.max_depth
            arch[f"s{spec.stage}.b{spec.index}.kernel"] = kernel
            arch[f"s{spec.stage}.b{spec.index}.expand"] = expand
        for layer in schedule(model, arch, input_size):
            seen.setdefault(layer.key, layer)
    return list(seen.values())


def module(model: ElasticMobileNet, layer: Layer) -> nn.Module:
    """A standalone module computing ``layer`` with the super-network's weights."""
    if layer.kind == "resize":
        return _Resize(layer.get("to"))
    if layer.kind == "stem":
        return model.stem
    if layer.kind == "head":
        return _Head(model.head, model.classifier)
    spec = dict(layer.settings)
    for block in itertools.chain.from_iterable(model.stages):
        s = block.spec
        if (s.in_channels, s.out_channels, s.stride, int(s.se), int(s.hswish)) == (
            spec["in"], spec["out"], spec["stride"], spec["se"], spec["hswish"]
        ):  # fmt: skip
            return block.export(spec["kernel"], spec["expand"])
    raise ValueError(f"no block of this super-network computes {layer.key}")
