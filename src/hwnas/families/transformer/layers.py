"""The transformer as lookup-table layers: the embedding, one entry per block, the head.

Every block of an arch sees the same input shape (sequence x width), so a block's entry is
keyed by its width and settings alone and the catalogue is the product of the per-layer
options at each width: a few hundred entries for the default space.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from torch import nn

from hwnas.families.base import ArchLike, Layer
from hwnas.families.transformer.config import ArchLayer, TransformerConfig, arch_layers, arch_width

if TYPE_CHECKING:
    from hwnas.families.transformer.network import ElasticTransformer


def _embed(width: int, config: TransformerConfig) -> Layer:
    if config.input == "tokens":
        return Layer("embed", (("width", width),), (config.sequence,), "tokens")
    shape = (config.in_channels, config.image_size, config.image_size)
    return Layer("embed", (("width", width),), shape)


def _block(width: int, layer: ArchLayer, config: TransformerConfig) -> Layer:
    settings = (("width", width), ("heads", layer.heads), ("hidden", layer.hidden),
                ("attention", layer.attention), ("ffn", layer.feed_forward),
                ("top_k", layer.top_k))  # fmt: skip
    return Layer("block", settings, (config.sequence, width), part=f"l{layer.index}")


def _head(width: int, config: TransformerConfig) -> Layer:
    return Layer("head", (("width", width),), (config.sequence, width))


def schedule(arch: ArchLike, config: TransformerConfig) -> list[Layer]:
    width = arch_width(arch)
    blocks = [_block(width, layer, config) for layer in arch_layers(arch, config)]
    return [_embed(width, config), *blocks, _head(width, config)]


def catalogue(config: TransformerConfig) -> list[Layer]:
    """Every distinct layer of the space, width by width."""
    layers = []
    ffns = [(f, k) for f in config.feed_forwards for k in (config.moe_top_k if f == "moe" else [0])]
    for width in config.widths:
        layers += [_embed(width, config), _head(width, config)]
        for heads, ratio, attention, (ffn, k) in itertools.product(
            config.heads, config.mlp_ratios, config.attentions, ffns
        ):
            setting = ArchLayer(0, heads, width * ratio, attention, ffn, k)
            layers.append(_block(width, setting, config))
    return layers


def module(model: ElasticTransformer, layer: Layer) -> nn.Module:
    """A standalone module computing ``layer`` with the super-network's weights (the first
    layer's, for a block: timing does not depend on which layer's weights run)."""
    width = int(layer.get("width"))
    if layer.kind == "embed":
        return model.export_embed(width)
    if layer.kind == "head":
        return model.export_head(width)
    setting = ArchLayer(0, int(layer.get("heads")), int(layer.get("hidden")),
                        str(layer.get("attention")), str(layer.get("ffn")),
                        int(layer.get("top_k")))  # fmt: skip
    return model.layers[0].export(width, setting)
