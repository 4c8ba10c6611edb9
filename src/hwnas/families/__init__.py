"""Families of elastic super-networks: train once, then extract and cost any sub-network.

``FAMILIES`` maps the name a run config spells (``supernet.name``) to the family's class; a
new family is one module implementing ``Family`` plus one line here, and the tests that run
over ``FAMILIES`` hold it to the contract.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hwnas.errors import HwnasError
from hwnas.families.base import Cost, Family, Layer, Op, Phase
from hwnas.families.checkpoint import load_checkpoint, optimizer_path, save_checkpoint
from hwnas.families.llama import ElasticLlama, LlamaConfig, load_llama
from hwnas.families.mobilenet import ElasticMobileNet, MobileNetConfig
from hwnas.families.nb201 import NB201Config, NB201SuperNet
from hwnas.families.transformer import ElasticTransformer, TransformerConfig
from hwnas.tasks.base import TaskSpec

FAMILIES: dict[str, type[Family]] = {
    "mobilenet": ElasticMobileNet,
    "transformer": ElasticTransformer,
    "llama": ElasticLlama,
    "nb201": NB201SuperNet,
}


def family_type(name: str) -> type[Family]:
    try:
        return FAMILIES[name]
    except KeyError:
        known = ", ".join(sorted(FAMILIES))
        raise HwnasError(f"unknown super-network {name!r} (known: {known})") from None


def build_family(name: str, overrides: Mapping[str, Any] | None, spec: TaskSpec) -> Family:
    """Super-network ``name`` for a task: its default config updated by ``overrides``."""
    return family_type(name).for_task(overrides, spec)


def family_from_config(name: str, values: Mapping[str, Any]) -> Family:
    """Rebuild super-network ``name`` from a stored ``config.to_dict()``."""
    return family_type(name).from_config(values)


__all__ = [
    "FAMILIES",
    "Cost",
    "ElasticLlama",
    "ElasticMobileNet",
    "ElasticTransformer",
    "Family",
    "Layer",
    "LlamaConfig",
    "MobileNetConfig",
    "NB201Config",
    "NB201SuperNet",
    "Op",
    "Phase",
    "TransformerConfig",
    "build_family",
    "family_from_config",
    "family_type",
    "load_llama",
    "load_checkpoint",
    "optimizer_path",
    "save_checkpoint",
]
