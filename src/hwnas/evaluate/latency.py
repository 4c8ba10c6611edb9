"""Latency as a metric: measured here, or estimated from a device profile.

Both report ``latency_ms``, so objectives and constraints read the same whichever source a
run uses; each adds the figure that says how far to trust it (the measurement's spread, or
the lookup table's raw sum next to the corrected prediction), and each says where its
numbers come from (``provenance``, for reports) and what they depend on (``identity``: a
resumed run must not mix two sources' numbers).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hwnas.errors import HwnasError
from hwnas.evaluate.context import EvaluationContext, EvaluationPlan
from hwnas.families.base import Family
from hwnas.hardware.measure import comparable, environment, prepare, time_rounds
from hwnas.hardware.profile import (
    Profile,
    check_fits,
    load_profile,
    measure_archs,
    reference_call,
    same_device,
    speed_here,
)
from hwnas.hardware.settings import LatencySettings
from hwnas.metrics import Metric
from hwnas.precision import PrecisionPolicy
from hwnas.progress import SilentProgress
from hwnas.space import Arch

RELATIVE = Metric(
    "latency_relative", "x reference",
    "latency over the reference's (the largest sub-network, fp32) timed beside it: what the "
    "machine's drift does not move",
)  # fmt: skip


class MeasuredLatency:
    """Measures the standalone sub-network that ``build`` returns for an arch, in ``rounds``
    rounds, with the reference timed before and after each."""

    described = (
        Metric("latency_ms", "ms", "median latency measured here"),
        RELATIVE,
        Metric("latency_reference_ms", "ms", "the reference's median latency beside it"),
        Metric("latency_iqr_ms", "ms", "interquartile range of the timed runs"),
        Metric("latency_runs", "runs", "timed runs behind the median", integer=True),
    )
    metrics = tuple(m.name for m in described)

    def __init__(
        self,
        build: Callable[[Arch], torch.nn.Module],
        example: torch.Tensor,
        settings: LatencySettings | None = None,
        reference: Callable[[], Callable[[], object]] | None = None,
        rounds: int = 3,
    ) -> None:
        """``example`` is the input timed, batch included (``Family.example_input``);
        ``reference`` makes the reference's call (``reference_call``), when first needed."""
        self.build = build
        self.settings = settings or LatencySettings()
        self.example = example
        self.make_reference = reference
        self.rounds = rounds

    @cached_property
    def _reference(self) -> Callable[[], object]:
        return self.make_reference()

    def evaluate(self, arch: Arch) -> dict[str, float]:
        call = prepare(self.build(arch), self.example, self.settings)
        timings = time_rounds([call], self.settings, self.rounds, reference=self._reference)
        return {
            "latency_ms": float(np.median(timings.ms)),
            "latency_relative": float(np.median(timings.relative)),
            "latency_reference_ms": timings.reference_median_ms,
            "latency_iqr_ms": float(np.median(timings.iqr_ms)),
            "latency_runs": float(timings.runs.sum()),
        }

    def provenance(self) -> dict[str, Any]:
        return {"source": "measured", "device": environment(self.settings),
                "settings": self.settings.model_dump(), "rounds": self.rounds}  # fmt: skip

    def identity(self) -> dict[str, Any]:
        return comparable(environment(self.settings))


class ProfiledLatency:
    """Latency on a profiled device, with no access to it: microseconds per arch. With a
    precision ``policy``, of each arch's quantized model, from the profile's layers at each
    precision. With ``speed`` (``speed_here``: recalibrated), milliseconds at this machine's
    speed now instead of the profile's."""

    described = (
        Metric("latency_ms", "ms", "latency on the profiled device, predicted"),
        RELATIVE,
        Metric("latency_table_ms", "ms", "sum of the profile's per-layer lookup table"),
    )
    metrics = tuple(m.name for m in described)

    def __init__(
        self, profile: Profile, model: Family, source: str = "profile",
        policy: PrecisionPolicy | None = None, speed: float | None = None,
    ) -> None:  # fmt: skip
        self.profile = profile
        self.model = model
        self.source = source
        self.policy = policy
        self.speed = speed
        self.scale = 1.0 if speed is None else speed

    def evaluate(self, arch: Arch) -> dict[str, float]:
        table_ms, predicted = self.profile.estimate(self.model, [arch], self.policy)
        return {
            "latency_ms": float(predicted[0]) * self.scale,
            "latency_relative": float(predicted[0]) / self.profile.reference.ms,
            "latency_table_ms": float(table_ms[0]) * self.scale,
        }

    def provenance(self) -> dict[str, Any]:
        p = self.profile
        return {"source": self.source, "device": p.device, "settings": p.settings.model_dump(),
                "validation": p.validation, "reference": vars(p.reference),
                "recalibrated_speed": self.speed}  # fmt: skip

    def identity(self) -> dict[str, Any]:
        p = self.profile
        return {"profile": p.fingerprint, "created": p.created, "device": p.device,
                "recalibrated": self.speed is not None}  # fmt: skip

    def measure_here(self, archs: Sequence[Arch]) -> list[dict[str, Any]]:
        """``archs`` timed on this machine with the profile's settings (interleaved rounds
        with the reference, as the profile was made) next to their estimates: on the
        profiled device the two must agree, relative to the reference whatever the drift;
        on another machine, the gap is the devices'."""
        measured = measure_archs(self.model, archs, self.profile.settings, SilentProgress(),
                                 "exported", rounds=5, policy=self.policy)  # fmt: skip
        here = same_device(self.profile.device, environment(self.profile.settings))
        estimates = [self.evaluate(arch) for arch in archs]
        return [
            {
                "measured_latency_ms_here": float(ms),
                "measured_latency_relative_here": float(relative),
                "profile_latency_ms": e["latency_ms"],
                "profile_latency_relative": e["latency_relative"],
                "profile_error": e["latency_ms"] / float(ms) - 1,
                "profile_error_relative": e["latency_relative"] / float(relative) - 1,
                "profiled_device_is_this_one": here,
            }  # fmt: skip
            for ms, relative, e in zip(measured.ms, measured.relative, estimates, strict=True)
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
                                   settings, lambda: reference_call(model, settings),
                                   context.latency_rounds)  # fmt: skip
        path = Path(context.latency_source.removeprefix("profile:"))
        profile = load_profile(path)
        check_fits(profile, path, context.family, model, context.policy)
        speed = None
        if context.recalibrate:
            here = environment(profile.settings)
            if not same_device(profile.device, here):
                there = profile.device
                raise HwnasError(
                    f"latency.recalibrate: profile {path} was made on {there.get('cpu')!r} "
                    f"({there.get('runtime')}), this machine is {here['cpu']!r} "
                    f"({here['runtime']}); its reference says how fast the profiled machine "
                    "runs, not this one"
                )
            speed = speed_here(profile, reference_call(model, profile.settings))
        return ProfiledLatency(profile, model, context.latency_source, context.policy, speed)
