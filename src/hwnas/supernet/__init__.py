"""Elastic super-networks: train once, then extract and cost any sub-network of a space.

``SUPERNETS`` maps a name (as a run config spells it) to the config class and the network
class, so new families plug in without the callers changing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from hwnas.errors import HwnasError
from hwnas.supernet.checkpoint import load_checkpoint, optimizer_path, save_checkpoint
from hwnas.supernet.cost import Cost, cost, macs, params
from hwnas.supernet.mobilenet import ElasticMobileNet, MobileNetConfig, build_space
from hwnas.supernet.static import SubNet, resize


class SupernetEntry(NamedTuple):
    config: type[MobileNetConfig]
    model: type[ElasticMobileNet]


SUPERNETS: dict[str, SupernetEntry] = {
    "mobilenet": SupernetEntry(MobileNetConfig, ElasticMobileNet),
}


def build_supernet(
    name: str,
    config_overrides: Mapping[str, Any] | None,
    in_channels: int,
    num_classes: int,
) -> ElasticMobileNet:
    """Build super-network ``name`` for a dataset, with its default config updated by overrides.

    ``in_channels`` and ``num_classes`` come from the dataset, so overrides may not set them.
    """
    if name not in SUPERNETS:
        raise HwnasError(f"unknown super-network {name!r} (known: {', '.join(sorted(SUPERNETS))})")
    entry = SUPERNETS[name]
    overrides = dict(config_overrides or {})
    for key in ("in_channels", "num_classes"):
        if key in overrides:
            raise HwnasError(f"{name} config: {key!r} is set by the dataset, not by overrides")
    defaults = entry.config().to_dict()
    values = {**defaults, **overrides, "in_channels": in_channels, "num_classes": num_classes}
    return entry.model(entry.config.from_dict(values))


__all__ = [
    "SUPERNETS",
    "Cost",
    "ElasticMobileNet",
    "MobileNetConfig",
    "SubNet",
    "SupernetEntry",
    "build_space",
    "build_supernet",
    "cost",
    "load_checkpoint",
    "macs",
    "optimizer_path",
    "params",
    "resize",
    "save_checkpoint",
]
