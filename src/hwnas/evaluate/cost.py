"""Analytic cost of an arch: multiply-accumulates, parameters and fp32 size; no model built."""

from __future__ import annotations

from collections.abc import Callable

from hwnas.space import Arch


class CostEvaluator:
    metrics = ("macs", "params", "size_bytes")

    def __init__(self, macs: Callable[[Arch], int], params: Callable[[Arch], int]) -> None:
        self.macs = macs
        self.params = params

    def evaluate(self, arch: Arch) -> dict[str, float]:
        params = self.params(arch)
        return {"macs": float(self.macs(arch)), "params": float(params), "size_bytes": 4.0 * params}
