"""Per-layer latency lookup table: measure each layer once, estimate any arch by summing.

Each layer is timed as its own tiny model, so each timing also holds the runtime's fixed
cost of one call (feeding inputs, fetching outputs; ~5 us for ONNX Runtime here, as much as
a small layer). The table measures that cost on a one-op model and counts it once per
network instead of once per layer: without this the sum overestimates small networks by
half.

Layers are timed in several rounds, each in a fresh random order, and the median round
kept (``time_rounds``): a burst of load on a shared machine then spoils one round of a few
layers instead of every timing of one layer. A profile times them with its sub-networks and
a reference, so the table is in milliseconds at the reference's speed (``profile``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from hwnas.families.base import Layer
from hwnas.hardware.measure import prepare
from hwnas.hardware.settings import LatencySettings


class MissingLayer(KeyError):
    """The table has no entry for a layer: it was built for another space."""


@dataclass(frozen=True)
class LatencyTable:
    overhead_ms: float
    entries: Mapping[str, float] = field(default_factory=dict)

    def predict(self, layers: Sequence[Layer]) -> float:
        """Estimated latency (ms) of a network running ``layers`` in sequence."""
        total = self.overhead_ms
        for layer in layers:
            try:
                total += self.entries[layer.key] - self.overhead_ms
            except KeyError:
                raise MissingLayer(layer.key) from None
        return total


def table_calls(
    layers: Sequence[Layer], make_module: Callable[[Layer], torch.nn.Module],
    settings: LatencySettings,
) -> list[Callable[[], object]]:  # fmt: skip
    """Each layer as its own model, ready to time, then the one-op model that measures the
    runtime's cost of a call (on the network's input: where a whole network pays it)."""
    batch = settings.batch_size
    calls = [prepare(make_module(layer), layer.example(batch), settings) for layer in layers]
    first = layers[0].input_shape
    calls.append(prepare(torch.nn.ReLU(), torch.randn(batch, *first), settings))
    return calls


def table_from_timings(
    layers: Sequence[Layer], timings: np.ndarray
) -> tuple[LatencyTable, dict[str, float]]:
    """The table from the ``table_calls`` timed in rounds (shape (rounds, layers + 1)), and
    its noise figures: how far a layer's rounds stray from their median."""
    medians = np.median(timings, axis=0)
    deviation = np.median(np.abs(timings - medians) / medians, axis=0)[:-1]
    # A layer's timing holds the call overhead, so the overhead is at most the cheapest
    # layer's: on a noisy machine with few rounds the one-op model can time slower than a
    # tiny layer, and a negative layer cost would let a sum fall to zero or below.
    overhead = min(float(medians[-1]), float(medians[:-1].min()))
    table = LatencyTable(
        overhead,
        {layer.key: float(ms) for layer, ms in zip(layers, medians[:-1], strict=True)},
    )
    noise = {
        "rounds": int(len(timings)),
        "layer_round_deviation_median": float(np.median(deviation)),
        "layer_round_deviation_max": float(np.max(deviation)),
    }
    return table, noise
