"""Analytic cost of an arch: multiply-accumulates, parameters and fp32 size; no model built."""

from __future__ import annotations

from collections.abc import Callable

from hwnas.space import Arch


class CostEvaluator:
    metrics = ("macs", "params", "size_bytes")

    def __init__(self, cost: Callable[[Arch], tuple[int, int]]) -> None:
        """``cost`` gives an arch's (MACs, parameters) in one walk, e.g. ``supernet.cost``."""
        self.cost = cost

    def evaluate(self, arch: Arch) -> dict[str, float]:
        macs, params = self.cost(arch)
        return {"macs": float(macs), "params": float(params), "size_bytes": 4.0 * params}
