"""The LLaMA-style decoder as lookup-table layers: the embedding, one entry per decoder
layer, the head.

The width is fixed, so every decoder layer sees the same input (context x width) and its
entry is keyed by the key/value heads and neurons it keeps: the catalogue is their product,
a few dozen entries however deep the model.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from torch import nn

from hwnas.families.base import ArchLike, Layer
from hwnas.families.llama.config import ArchLayer, LlamaConfig, arch_layers

if TYPE_CHECKING:
    from hwnas.families.llama.network import ElasticLlama


def _embed(config: LlamaConfig) -> Layer:
    return Layer("embed", (("width", config.hidden_size),), (config.context,), "tokens")


def _block(layer: ArchLayer, config: LlamaConfig) -> Layer:
    settings = (("width", config.hidden_size), ("kv_heads", layer.kv_heads),
                ("heads", layer.heads), ("hidden", layer.hidden))  # fmt: skip
    return Layer("decoder", settings, (config.context, config.hidden_size),
                 part=f"l{layer.index}")  # fmt: skip


def _head(config: LlamaConfig) -> Layer:
    return Layer("head", (("width", config.hidden_size),), (config.context, config.hidden_size))


def schedule(arch: ArchLike, config: LlamaConfig) -> list[Layer]:
    blocks = [_block(layer, config) for layer in arch_layers(arch, config)]
    return [_embed(config), *blocks, _head(config)]


def catalogue(config: LlamaConfig) -> list[Layer]:
    blocks = [_block(ArchLayer(0, kv, kv * config.group, hidden), config)
              for kv, hidden in itertools.product(config.kv_head_options,
                                                  config.intermediate_sizes)]  # fmt: skip
    return [_embed(config), *blocks, _head(config)]


def module(model: ElasticLlama, layer: Layer) -> nn.Module:
    """A standalone module computing ``layer`` with the super-network's weights (the first
    layer's, for a decoder layer: timing does not depend on which layer's weights run)."""
    if layer.kind == "embed":
        return model.export_embed()
    if layer.kind == "head":
        return model.export_head()
    setting = ArchLayer(0, int(layer.get("kv_heads")), int(layer.get("heads")),
                        int(layer.get("hidden")))  # fmt: skip
    return model.layers[0].export(setting)
