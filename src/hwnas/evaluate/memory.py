"""Memory a sub-network needs to run: peak activations (SRAM) and int8 weights (flash)."""

from __future__ import annotations

from collections.abc import Callable

from hwnas.space import Arch


class MemoryEvaluator:
    """Analytic, like ``CostEvaluator``: ``peak_bytes`` and ``int8_bytes`` are per-arch
    functions of the model family (see ``hwnas.supernet.memory``)."""

    metrics = ("peak_memory_kb", "size_int8_bytes")

    def __init__(
        self, peak_bytes: Callable[[Arch], int], int8_bytes: Callable[[Arch], int]
    ) -> None:
        self.peak_bytes = peak_bytes
        self.int8_bytes = int8_bytes

    def evaluate(self, arch: Arch) -> dict[str, float]:
        return {
            "peak_memory_kb": self.peak_bytes(arch) / 1024,
            "size_int8_bytes": float(self.int8_bytes(arch)),
        }
