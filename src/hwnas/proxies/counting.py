"""Proxies that only count: parameters, floating-point operations and the weights' size.
Plain as they are, NAS-Bench-Suite-Zero found them hard to beat."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hwnas.proxies.base import ProxyBatch, per_layer_sum


def params(model: nn.Module, batch: ProxyBatch) -> float:
    return float(sum(p.numel() for p in model.parameters()))


def flops(model: nn.Module, batch: ProxyBatch) -> float:
    """Floating-point operations of one example's forward pass (two per multiply-add), as
    torch's operator-level counter sees them: convolutions and every matrix product,
    attention's included."""
    counter = FlopCounterMode(display=False)
    model.eval()  # one example has no batch statistics
    with counter, torch.no_grad():
        model(batch.inputs[:1])
    return float(counter.get_total_flops())


def l2_norm(model: nn.Module, batch: ProxyBatch) -> float:
    """Sum of each layer's weight norm."""
    return per_layer_sum(model, lambda layer: layer.weight.norm())
