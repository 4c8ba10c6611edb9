"""Latency as a metric: measured here, or estimated from a device profile.

Both report ``latency_ms``, so objectives and constraints read the same whichever source a
run uses; each adds the figure that says how far to trust it (the measurement's spread, or
the lookup table's raw sum next to the corrected prediction), and each says where its
numbers come from (``provenance``, for reports) and what they depend on (``identity``: a
resumed run must not mix two sources' numbers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from hwnas.evaluate.context import EvaluationContext, EvaluationPlan
from hwnas.families.base import Family
from hwnas.hardware.measure import comparable, environment, measure
from hwnas.hardware.profile import Profile, check_fits, load_profile, measure_archs, same_device
from hwnas.hardware.settings import LatencySettings
from hwnas.metrics import Metric
from hwnas.precision import PrecisionPolicy
from hwnas.progress import SilentProgress
from hwnas.space import Arch


class MeasuredLatency:
    """Measures the standalone sub-network that ``build`` returns for an arch."""

    described = (
        Metric("latency_ms", "ms", "median latency measured here"),
        Metric("latency_iqr_ms", "ms", "interquartile range of the timed runs"),
        Metric("latency_runs", "runs", "timed runs behind the median", integer=True),
    )
    metrics = tuple(m.name for m in described)

    def __init__(
        self,
        build: Callable[[Arch], torch.nn.Module],
        example: torch.Tensor,
        settings: LatencySettings | None = None,
    ) -> None:
        """``example`` is the input timed, batch included (``Family.example_input``)."""
        self.build = build
        self.settings = settings or LatencySettings()
        self.example = example

    def evaluate(self, arch: Arch) -> dict[str, float]:
        timing = measure(self.build(arch), self.example, self.settings)
        return {
            "latency_ms": timing.median_ms,
            "latency_iqr_ms": timing.iqr_ms,
            "latency_runs": float(timing.runs),
        }

    def provenance(self) -> dict[str, Any]:
        return {"source": "measured", "device": environment(self.settings),
                "settings": self.settings.model_dump()}  # fmt: skip

    def identity(self) -> dict[str, Any]:
        return comparable(environment(self.settings))


class ProfiledLatency:
    """Latency on a profiled device, with no access to it: microseconds per arch. With a
    precision ``policy``, of each arch's quantized model, from the profile's layers at each
    precision."""

    described = (
        Metric("latency_ms", "ms", "latency on the profiled device, predicted"),
        Metric("latency_table_ms", "ms", "sum of the profile's per-layer lookup table"),
    )
    metrics = tuple(m.name for m in described)

    def __init__(
        self, profile: Profile, model: Family, source: str = "profile",
        policy: PrecisionPolicy | None = None,
    ) -> None:  # fmt: skip
        self.profile = profile
        self.model = model
        self.source = source
        self.policy = policy

    def evaluate(self, arch: Arch) -> dict[str, float]:
        table_ms, predicted = self.profile.estimate(self.model, [arch], self.policy)
        return {"latency_ms": float(predicted[0]), "latency_table_ms": float(table_ms[0])}

    def provenance(self) -> dict[str, Any]:
        p = self.profile
        return {"source": self.source, "device": p.device, "settings": p.settings.model_dump(),
                "validation": p.validation}  # fmt: skip

    def identity(self) -> dict[str, Any]:
        p = self.profile
        return {"profile": p.fingerprint, "created": p.created, "device": p.device}

    def measure_here(
        self, archs: Sequence[Arch], estimates: Sequence[float]
    ) -> list[dict[str, Any]]:
        """``archs`` timed on this machine with the profile's settings (interleaved rounds,
        as the profile was made) next to their ``estimates``: on the profiled device the two
        must agree; on another machine, the gap is the devices'."""
        settings = self.profile.settings
        measured = measure_archs(self.model, archs, settings, SilentProgress(), "exported",
                                 rounds=5, policy=self.policy)  # fmt: skip
        here = same_device(self.profile.device, environment(settings))
        return [
            {
                "measured_latency_ms_here": float(ms),
                "profile_latency_ms": float(estimate),
                "profile_error": float(estimate) / float(ms) - 1,
                "profiled_device_is_this_one": here,
            }  # fmt: skip
            for ms, estimate in zip(measured, estimates, strict=True)
        ]


class Latency:
    """The registry's latency entry: measured here, or estimated from a device profile."""

    @staticmethod
    def describe(plan: EvaluationPlan) -> tuple[Metric, ...]:
        measured = plan.latency_source == "measured"
        return (MeasuredLatency if measured else ProfiledLatency).described

    @staticmethod
    def create(context: EvaluationContext) -> MeasuredLatency | ProfiledLatency:
        """``measured``, or ``profile:FILE`` checked to be made for this very network."""
        model, settings = context.model, context.latency
        if context.latency_source == "measured":
            return MeasuredLatency(context.build, model.example_input(settings.batch_size),
                                   settings)  # fmt: skip
        path = Path(context.latency_source.removeprefix("profile:"))
        profile = load_profile(path)
        check_fits(profile, path, context.family, model, context.policy)
        return ProfiledLatency(profile, model, context.latency_source, context.policy)
