"""The MobileNet as a sequence of lookup-table layers: resize, stem, one per block, head.

Two archs that share a block's settings at the same input shape share one table entry, so
~260 timings cover the default space's ~1e16 archs.
"""

from __future__ import annotations

import copy
import itertools
from typing import TYPE_CHECKING

import torch
from torch import nn

from hwnas.families.base import ArchLike, Layer
from hwnas.families.mobilenet.config import MobileNetConfig, arch_blocks, out_size
from hwnas.families.mobilenet.static import pool_and_classify, resize

if TYPE_CHECKING:
    from hwnas.families.mobilenet.network import ElasticMobileNet


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


def schedule(config: MobileNetConfig, arch: ArchLike, input_size: int) -> list[Layer]:
    """The layers ``arch`` runs, in order, for square inputs of ``input_size`` pixels."""
    resolution = int(arch["resolution"])
    layers = []
    if resolution != input_size:
        layers.append(
            Layer("resize", (("to", resolution),), (config.in_channels, input_size, input_size))
        )
    layers.append(Layer("stem", (), (config.in_channels, resolution, resolution), part="stem"))
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
        part = f"s{spec.stage}.b{spec.index}"
        layers.append(Layer("mbconv", settings, (spec.in_channels, size, size), part=part))
        size = out_size(size, spec.stride)
    layers.append(Layer("head", (), (config.widths[-1], size, size), part="head"))
    return layers


def catalogue(config: MobileNetConfig, input_size: int) -> list[Layer]:
    """Every distinct layer any arch of the space can run.

    Spatial sizes depend only on the resolution (depth never changes them), so the largest
    depth at each resolution, with every kernel and expand ratio at every block, covers all.
    """
    seen: dict[str, Layer] = {}
    for resolution, kernel, expand in itertools.product(
        config.resolutions, config.kernels, config.expands
    ):
        arch = {"resolution": resolution}
        for spec in config.blocks():
            arch[f"s{spec.stage}.depth"] = config.max_depth
            arch[f"s{spec.stage}.b{spec.index}.kernel"] = kernel
            arch[f"s{spec.stage}.b{spec.index}.expand"] = expand
        for layer in schedule(config, arch, input_size):
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


def modules(model: ElasticMobileNet, arch: ArchLike) -> list[nn.Module]:
    """The modules of ``schedule(arch)`` with the weights of ``arch``'s own blocks."""
    config = model.config
    resolution = int(arch["resolution"])
    out: list[nn.Module] = [] if resolution == config.input_size else [_Resize(resolution)]
    out.append(copy.deepcopy(model.stem))
    for spec, kernel, hidden in arch_blocks(arch, config):
        block = model.stages[spec.stage][spec.index]
        out.append(block.export(kernel, hidden // spec.in_channels))
    out.append(_Head(copy.deepcopy(model.head), copy.deepcopy(model.classifier)))
    return out
