"""Latency as a metric: measured here, or estimated from a device profile.

Both report ``latency_ms``, so objectives and constraints read the same whichever source a
run uses; each adds the figure that says how far to trust it (the measurement's spread, or
the lookup table's raw sum next to the corrected prediction).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from hwnas.hardware.measure import measure
from hwnas.hardware.profile import Profile
from hwnas.hardware.settings import LatencySettings
from hwnas.space import Arch
from hwnas.supernet.mobilenet import ElasticMobileNet


class MeasuredLatency:
    """Measures the standalone sub-network that ``build`` returns for an arch."""

    metrics = ("latency_ms", "latency_iqr_ms", "latency_runs")

    def __init__(
        self,
        build: Callable[[Arch], torch.nn.Module],
        input_shape: tuple[int, ...],
        settings: LatencySettings | None = None,
    ) -> None:
        self.build = build
        self.settings = settings or LatencySettings()
        self.example = torch.randn(self.settings.batch_size, *input_shape)

    def evaluate(self, arch: Arch) -> dict[str, float]:
        timing = measure(self.build(arch), self.example, self.settings)
        return {
            "latency_ms": timing.median_ms,
            "latency_iqr_ms": timing.iqr_ms,
            "latency_runs": float(timing.runs),
        }


class ProfiledLatency:
    """Latency on a profiled device, with no access to it: microseconds per arch."""

    metrics = ("latency_ms", "latency_table_ms")

    def __init__(self, profile: Profile, model: ElasticMobileNet) -> None:
        self.profile = profile
        self.model = model

    def evaluate(self, arch: Arch) -> dict[str, float]:
        table_ms, predicted = self.profile.estimate(self.model, [arch])
        return {"latency_ms": float(predicted[0]), "latency_table_ms": float(table_ms[0])}
