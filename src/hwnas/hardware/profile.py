"""Device profiles: one JSON file that carries a device's latency to machines without it.

``build_profile`` runs on the device (a Raspberry Pi, a phone-class board, this laptop): it
times every layer the super-network's space can produce (the lookup table), times a sample
of whole sub-networks, and fits the predictor that corrects the table's sum. ``hwnas run
--latency profile:FILE`` then estimates latency anywhere, with no access to the device.

A profile made for a precision search (``quantize.precisions`` in its config) also times
each quantizable layer at every precision (INT8 QDQ, INT4 weight-only for linear layers),
keyed ``<layer>:int8``, and fits its predictor on quantized sub-networks (all fp32, all
quantized and mixed policies), with each precision's share of the table's time as extra
features: Q/DQ pairs between layers and fused integer kernels are what summing misses there.

Everything a profile times (layers and sub-networks) is timed in one session, in rounds of
random order, with a reference (the family's largest sub-network) timed between every few
of them (``time_rounds``): each timing is divided by the reference's latency at its moment
and multiplied by the reference's median. A shared VM's speed moves by tens of percent
within minutes; this takes that out, so the table and the predictor are in milliseconds at
one speed, the reference's (``reference.ms``). ``--check`` and a run with
``latency.recalibrate`` time the reference again to compare or convert to today's speed.

The file says what it was made for (super-network config and input shape, precisions,
back-end, device, format version) and how good it is (cross-validated figures); loading
checks all of it, so a profile for another space or another hwnas format is refused in one
line, never used to produce wrong numbers quietly. Nothing in it is pickled.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    ValidationError,
    field_validator,
    model_validator,
)
from sklearn.model_selection import KFold

from hwnas.errors import HwnasError, first_invalid, one_line
from hwnas.families.base import ArchLike, Family, Layer
from hwnas.files import MiB, read_text_limited, write_atomic
from hwnas.hardware.measure import (
    RoundTimings,
    comparable,
    environment,
    prepare,
    time_rounds,
)
from hwnas.hardware.predictor import LatencyPredictor
from hwnas.hardware.settings import LatencySettings
from hwnas.hardware.table import LatencyTable, table_calls, table_from_timings
from hwnas.precision import PrecisionPolicy
from hwnas.predictors import quality
from hwnas.progress import Progress, SilentProgress
from hwnas.space import Arch

FORMAT = "hwnas-latency-profile"
VERSION = 2
MAX_PROFILE_BYTES = 64 * MiB
"""A profile of the default spaces is ~100 KiB (a few hundred table entries); 64 MiB leaves
room for spaces a hundred times larger and keeps a wrong file from exhausting memory."""
MAX_SAMPLES = 10_000
"""Sub-networks a profile may say it was fitted on: ``--check`` draws them again (up to 100
tries each) to hold them out, so the count bounds its work."""


def space_fingerprint(supernet: str, config: dict[str, Any], input_shape: Sequence[int]) -> str:
    """Identifies what a profile is valid for: the super-network and the input it is fed."""
    text = json.dumps([supernet, config, list(input_shape)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def accuracy_figures(measured: np.ndarray, estimated: np.ndarray) -> dict[str, float]:
    """The figures a latency estimate is judged by (nn-Meter's, plus rank agreement)."""
    error = np.abs(np.asarray(estimated) / np.asarray(measured) - 1)
    q = quality(measured, estimated)
    return {
        "within_10pct": float(np.mean(error <= 0.10)),
        "mape_pct": q.mape,
        "kendall_tau": q.kendall_tau,
        "n": int(len(measured)),
    }


# -- the file's schema: every field checked, NaN and infinity refused ------------------------
class _Strict(BaseModel):
    """JSON types as written: no ``"1.5"`` for a number, no ``true`` for 1."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


class _Supernet(_Strict):
    name: str
    config: dict[str, Any]
    input_shape: list[PositiveInt] = Field(min_length=1, max_length=8)
    fingerprint: str


class _Table(_Strict):
    overhead_ms: float = Field(ge=0)
    entries: dict[str, float] = Field(min_length=1)
    noise: dict[str, float]

    @field_validator("entries")
    @classmethod
    def _positive(cls, entries: dict[str, float]) -> dict[str, float]:
        bad = next((k for k, v in entries.items() if not v > 0), None)
        if bad is not None:
            raise ValueError(f"entry {bad!r} is not a positive time")
        return entries

    @model_validator(mode="after")
    def _overhead_within_entries(self) -> _Table:
        below = next((k for k, v in self.entries.items() if v < self.overhead_ms), None)
        if below is not None:
            raise ValueError(f"entry {below!r} is below overhead_ms, which every entry holds")
        return self


class _Predictor(_Strict):
    kind: Literal["ridge-log-ratio"]
    mean: list[float] = Field(max_length=100_000)
    scale: list[float] = Field(max_length=100_000)
    coef: list[float] = Field(max_length=100_000)
    intercept: float
    alpha: float = Field(ge=0)

    @field_validator("scale")
    @classmethod
    def _nonzero(cls, scale: list[float]) -> list[float]:
        if any(s == 0 for s in scale):
            raise ValueError("scale holds a zero")
        return scale

    @model_validator(mode="after")
    def _one_length(self) -> _Predictor:
        if not len(self.mean) == len(self.scale) == len(self.coef):
            raise ValueError("mean, scale and coef must have one entry per feature")
        return self


def _distinct(values: list[str]) -> list[str]:
    if len(set(values)) != len(values) or values[:1] != ["fp32"]:
        raise ValueError(f"{values}: fp32 first, each precision once")
    return values


class _Precision(_Strict):
    precisions: Annotated[list[Literal["fp32", "int8", "int4"]], AfterValidator(_distinct)]
    block_size: Literal[16, 32, 64, 128, 256]


class _Figures(_Strict):
    within_10pct: float = Field(ge=0, le=1)
    mape_pct: float = Field(ge=0)
    kendall_tau: float = Field(ge=-1, le=1)
    n: int = Field(ge=0, le=MAX_SAMPLES + 1)


class _Validation(_Strict):
    """How good the profile is, and what ``--check`` needs to hold its fitted archs out."""

    method: str
    seed: int = Field(ge=0, le=2**32 - 1)
    samples: int = Field(ge=0, le=MAX_SAMPLES)
    table: _Figures
    predictor: _Figures


class _Reference(_Strict):
    """The arch every timing was divided by, its median latency over the session, and how
    much the machine's speed moved meanwhile (its 90th over its 10th percentile, minus 1)."""

    arch: str = Field(min_length=1, max_length=10_000)
    ms: float = Field(gt=0)
    timings: int = Field(ge=1)
    spread: float = Field(ge=0)


class _ProfileFile(_Strict):
    format: Literal["hwnas-latency-profile"]
    version: int
    created: str
    hwnas_version: str
    supernet: _Supernet
    settings: LatencySettings
    device: dict[str, Any]
    table: _Table
    predictor: _Predictor
    reference: _Reference
    validation: _Validation
    precision: _Precision | None = None


@dataclass(frozen=True)
class ProfilePrecision:
    """The precisions a profile's table holds beyond fp32, and the INT4 block size it
    timed (a different block size is a different kernel)."""

    precisions: tuple[str, ...]
    block_size: int

    def policy(self, model: Family) -> PrecisionPolicy:
        """Every policy the profile covers, over ``model``'s space; calibrated on random
        inputs, since only the graph matters to time."""
        calibration = model.example_input(8, torch.Generator().manual_seed(0))
        return PrecisionPolicy(model, self.precisions, calibration, awq=False,
                               block_size=self.block_size)  # fmt: skip


@dataclass(frozen=True)
class ProfileReference:
    """What a profile's milliseconds are relative to: ``arch`` (the family's largest
    sub-network, fp32) took ``ms`` at the median over the ``timings`` taken of it while
    profiling, and ranged by ``spread`` (p90 / p10 - 1) meanwhile."""

    arch: str
    ms: float
    timings: int
    spread: float

    @classmethod
    def of(cls, arch: ArchLike, timings: RoundTimings) -> ProfileReference:
        p10, p90 = np.percentile(timings.reference_ms, [10, 90])
        return cls(arch.key, timings.reference_median_ms, len(timings.reference_ms),
                   float(p90 / p10 - 1))  # fmt: skip


@dataclass(frozen=True)
class Profile:
    supernet: str
    config: dict[str, Any]
    input_shape: tuple[int, ...]
    settings: LatencySettings
    device: dict[str, Any]
    table: LatencyTable
    table_noise: dict[str, float]
    predictor: LatencyPredictor
    reference: ProfileReference
    validation: dict[str, Any]
    created: str
    precision: ProfilePrecision | None = None

    @property
    def fingerprint(self) -> str:
        return space_fingerprint(self.supernet, self.config, self.input_shape)

    def estimate(
        self, model: Family, archs: Sequence[ArchLike], policy: PrecisionPolicy | None = None
    ) -> tuple[np.ndarray, ...]:
        """(table sum, predicted) latency in ms for each arch, for the network ``model``;
        with ``policy``, each arch's quantized model (``check_fits`` says whether the
        profile holds its precisions)."""
        schedules = [policy.schedule(a) if policy else model.layer_schedule(a) for a in archs]
        table_ms = np.array([self.table.predict(layers) for layers in schedules])
        features = self.features(model, archs, schedules, table_ms)
        return table_ms, self.predictor.predict(features, table_ms)

    def features(
        self, model: Family, archs: Sequence[ArchLike], schedules: Sequence[Sequence[Layer]],
        table_ms: np.ndarray,
    ) -> np.ndarray:  # fmt: skip
        return predictor_features(model, archs, schedules, self.table, table_ms,
                                  self.precision)  # fmt: skip

    def policy(self, model: Family) -> PrecisionPolicy | None:
        """The policy space the profile was measured over, or None for an fp32 profile."""
        return self.precision.policy(model) if self.precision else None

    def to_dict(self) -> dict[str, Any]:
        from hwnas import __version__

        return {
            "format": FORMAT,
            "version": VERSION,
            "created": self.created,
            "hwnas_version": __version__,
            "supernet": {
                "name": self.supernet,
                "config": self.config,
                "input_shape": list(self.input_shape),
                "fingerprint": self.fingerprint,
            },
            "settings": self.settings.model_dump(),
            "device": self.device,
            "table": {
                "overhead_ms": self.table.overhead_ms,
                "entries": dict(self.table.entries),
                "noise": self.table_noise,
            },
            "predictor": self.predictor.to_dict(),
            "reference": vars(self.reference),
            "validation": self.validation,
            **({"precision": {"precisions": list(self.precision.precisions),
                              "block_size": self.precision.block_size}}
               if self.precision else {}),
        }  # fmt: skip

    def save(self, path: Path) -> None:
        """Written whole or not at all."""
        write_atomic(path, json.dumps(self.to_dict(), indent=1, allow_nan=False))


def predictor_features(
    model: Family, archs: Sequence[ArchLike], schedules: Sequence[Sequence[Layer]],
    table: LatencyTable, table_ms: np.ndarray, precision: ProfilePrecision | None,
) -> np.ndarray:  # fmt: skip
    """The predictor's inputs: the architecture's features and, in a precision profile,
    the share of the table's time spent in each precision other than fp32."""
    features = model.space().features([model.canonical(a) for a in archs])
    if precision is None:
        return features
    overhead, entries = table.overhead_ms, table.entries
    shares = [[sum(entries[layer.key] - overhead for layer in layers
                   if layer.precision == kind) / total
               for kind in precision.precisions[1:]]
              for layers, total in zip(schedules, table_ms, strict=True)]  # fmt: skip
    return np.hstack([features, np.asarray(shares, float).reshape(len(archs), -1)])


def load_profile(path: Path | str) -> Profile:
    """Read and check a profile file; any problem is one ``HwnasError`` naming file and field."""
    path = Path(path)
    text = read_text_limited(path, "profile", MAX_PROFILE_BYTES)
    try:
        raw = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise HwnasError(f"profile {path}: not a valid JSON file (nested too deeply)") from None
    except ValueError as exc:
        raise HwnasError(f"profile {path}: not a valid JSON file ({one_line(exc)})") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise HwnasError(f"profile {path}: not an hwnas latency profile (no format {FORMAT!r})")
    if type(raw.get("version")) is not int or raw["version"] != VERSION:
        raise HwnasError(
            f"profile {path}: format version {raw.get('version')!r}; this hwnas reads version "
            f"{VERSION} (rebuild it with hwnas profile)"
        )
    try:
        data = _ProfileFile.model_validate(raw)
    except ValidationError as exc:
        raise HwnasError(f"profile {path}: {first_invalid(exc)}") from None
    s = data.supernet
    if s.fingerprint != space_fingerprint(s.name, s.config, s.input_shape):
        raise HwnasError(f"profile {path}: supernet.fingerprint does not match its config")
    return Profile(
        supernet=s.name,
        config=s.config,
        input_shape=tuple(s.input_shape),
        settings=data.settings,
        device=data.device,
        table=LatencyTable(data.table.overhead_ms, data.table.entries),
        table_noise=data.table.noise,
        predictor=LatencyPredictor.from_dict(data.predictor.model_dump()),
        reference=ProfileReference(**data.reference.model_dump()),
        validation=data.validation.model_dump(),
        created=data.created,
        precision=None if data.precision is None else ProfilePrecision(
            tuple(data.precision.precisions), data.precision.block_size),
    )  # fmt: skip


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number a profile may hold")


def check_fits(
    profile: Profile, path: Path | str, supernet: str, model: Family,
    policy: PrecisionPolicy | None = None,
) -> None:  # fmt: skip
    """Refuse a profile that cannot estimate this network's archs (with ``policy``: their
    quantized models), saying why: made for another super-network, config or input shape,
    without the precisions or INT4 block size the policy uses, or a table or predictor that
    does not cover the space (a damaged file, or one from an hwnas that encodes archs
    differently)."""
    config = model.config.to_dict()
    input_shape = model.input_spec().shape
    if profile.supernet != supernet:
        raise HwnasError(
            f"profile {path}: made for super-network {profile.supernet!r}, not {supernet!r}"
        )
    if tuple(profile.input_shape) != tuple(input_shape):
        raise HwnasError(
            f"profile {path}: made for inputs {list(profile.input_shape)}, this run feeds "
            f"{list(input_shape)}"
        )
    for key in sorted(set(profile.config) | set(config)):
        if profile.config.get(key) != config.get(key):
            raise HwnasError(
                f"profile {path}: made for another space ({key} = {profile.config.get(key)!r}, "
                f"this run has {config.get(key)!r}); build one with hwnas profile"
            )
    if profile.reference.arch != model.teacher_arch().key:
        raise HwnasError(f"profile {path}: reference.arch is not this space's largest sub-network")
    if policy is not None:
        _check_precisions(profile, path, policy)
    catalogue = policy.catalogue() if policy else model.layer_catalogue()
    missing = [layer.key for layer in catalogue if layer.key not in profile.table.entries]
    if missing:
        raise HwnasError(f"profile {path}: table has no entry for layer {missing[0]}")
    corners = [model.smallest_arch(), model.teacher_arch()]
    schedules = [model.layer_schedule(a) for a in corners]
    table_ms = np.array([profile.table.predict(layers) for layers in schedules])
    features = profile.features(model, corners, schedules, table_ms).shape[1]
    if profile.predictor.n_features != features:
        raise HwnasError(
            f"profile {path}: predictor has {profile.predictor.n_features} features, this "
            f"space has {features}"
        )
    if policy is not None:
        corners = [policy.uniform(a, p) for a in corners for p in policy.precisions]
    with np.errstate(over="ignore", invalid="ignore"):  # reported below, in one line
        estimates = np.concatenate(profile.estimate(model, corners, policy))
    if not np.all(np.isfinite(estimates) & (estimates > 0)):
        raise HwnasError(f"profile {path}: estimates non-positive or infinite latencies")


def _check_precisions(profile: Profile, path: Path | str, policy: PrecisionPolicy) -> None:
    held = profile.precision.precisions if profile.precision else ("fp32",)
    lacking = [p for p in policy.precisions if p not in held]
    if lacking:
        raise HwnasError(
            f"profile {path}: holds {', '.join(held)} layers, this run searches "
            f"{', '.join(lacking)} too; build one with quantize.precisions in the config of "
            "hwnas profile create"
        )
    if "int4" in policy.precisions and profile.precision.block_size != policy.block_size:
        raise HwnasError(
            f"profile {path}: timed int4 in blocks of {profile.precision.block_size}, this "
            f"run quantizes in blocks of {policy.block_size} (quantize.block_size)"
        )


# -- building and checking ---------------------------------------------------------------------
def reference_call(model: Family, settings: LatencySettings) -> Callable[[], object]:
    """The yardstick profiles and measured searches time beside what they measure, ready to
    time: the family's largest sub-network in fp32, whatever precisions are searched, so one
    number tells how fast the machine runs at any moment."""
    reference = model.extract(model.teacher_arch()).eval()
    return prepare(reference, model.example_input(settings.batch_size), settings)


def arch_calls(
    model: Family, archs: Sequence[ArchLike], settings: LatencySettings,
    policy: PrecisionPolicy | None = None,
) -> list[Callable[[], object]]:  # fmt: skip
    """Each arch's standalone sub-network (with ``policy``: its quantized model), ready to time."""
    example = model.example_input(settings.batch_size)
    build = policy.evaluated if policy else model.extract
    return [prepare(build(arch), example, settings) for arch in archs]


@dataclass(frozen=True)
class MeasuredArchs:
    """Each arch's median over rounds, in milliseconds as timed and relative to the reference
    timed beside it (``relative``: what drift does not move); the reference's median over
    the session."""

    ms: np.ndarray
    relative: np.ndarray
    reference_ms: float


def measure_archs(
    model: Family,
    archs: Sequence[ArchLike],
    settings: LatencySettings,
    progress: Progress,
    label: str,
    rounds: int = 3,
    seed: int = 0,
    policy: PrecisionPolicy | None = None,
    reference: Callable[[], object] | None = None,
) -> MeasuredArchs:
    """Measure each arch's standalone sub-network (with ``policy``: its quantized model) in
    ``rounds`` interleaved rounds with the reference among them (``reference``: its call,
    when the caller already made one)."""
    calls = arch_calls(model, archs, settings, policy)
    reference = reference or reference_call(model, settings)
    task = progress.task(label, rounds * len(calls))
    timings = time_rounds(calls, settings, rounds, seed, task.advance, reference)
    task.close()
    return MeasuredArchs(
        np.median(timings.ms, axis=0),
        np.median(timings.relative, axis=0),
        timings.reference_median_ms,
    )


@dataclass(frozen=True)
class ProfileTimings:
    """What a profile is fitted from, timed in one session: the table's calls (the
    catalogue's layers, then the one-op model) and then the sampled archs. Kept apart from
    the fit so that the same timings can be fitted with and without the reference."""

    catalogue: list[Layer]
    archs: list[Arch]
    timings: RoundTimings
    seed: int

    def split(self, drift_free: bool) -> tuple[np.ndarray, np.ndarray]:
        """(table timings per round, archs' median ms), at the reference's speed or as timed."""
        ms = self.timings.at_reference_speed() if drift_free else self.timings.ms
        n = len(self.catalogue) + 1
        return ms[:, :n], np.median(ms[:, n:], axis=0)


def time_profile(
    model: Family,
    settings: LatencySettings,
    samples: int = 200,
    rounds: int = 5,
    seed: int = 0,
    progress: Progress | None = None,
    precision: ProfilePrecision | None = None,
) -> ProfileTimings:
    """Time the lookup table's layers and ``samples`` random sub-networks together, in
    ``rounds`` interleaved rounds with the reference among them. With ``precision``, the
    table holds every quantizable layer at each precision too, and the sub-networks are
    quantized models. The weights do not matter to latency: a fresh super-network serves."""
    progress = progress or SilentProgress()
    model = model.eval()
    policy = precision.policy(model) if precision else None
    archs = distinct_samples(model, samples, seed, policy=policy)
    if len(archs) < 10:
        raise HwnasError(
            f"--samples {samples}: the predictor needs at least 10 distinct sub-networks "
            f"(this space gave {len(archs)})"
        )
    catalogue = policy.catalogue() if policy else model.layer_catalogue()
    make_module = policy.layer_module if policy else model.layer_module
    calls = [*table_calls(catalogue, make_module, settings),
             *arch_calls(model, archs, settings, policy)]  # fmt: skip
    task = progress.task("layers and sub-networks", rounds * len(calls))
    timings = time_rounds(calls, settings, rounds, seed, task.advance,
                          reference_call(model, settings))  # fmt: skip
    task.close()
    return ProfileTimings(catalogue, archs, timings, seed)


def fit_profile(
    supernet: str,
    model: Family,
    settings: LatencySettings,
    timed: ProfileTimings,
    precision: ProfilePrecision | None = None,
    drift_free: bool = True,
) -> Profile:
    """The table and the predictor from ``timed``, cross-validated. ``drift_free=False``
    fits the milliseconds as timed, as profiles did before they had a reference: only for
    measuring what the reference brings (docs)."""
    table_timings, measured = timed.split(drift_free)
    table, noise = table_from_timings(timed.catalogue, table_timings)
    archs = timed.archs
    policy = precision.policy(model) if precision else None
    schedules = [policy.schedule(a) if policy else model.layer_schedule(a) for a in archs]
    table_ms = np.array([table.predict(layers) for layers in schedules])
    features = predictor_features(model, archs, schedules, table, table_ms, precision)
    held_out = np.empty(len(archs))
    for train, test in KFold(5, shuffle=True, random_state=timed.seed).split(features):
        fitted = LatencyPredictor.fit(features[train], table_ms[train], measured[train])
        held_out[test] = fitted.predict(features[test], table_ms[test])
    validation = {
        "method": f"5-fold cross-validation on {len(archs)} measured sub-networks",
        "seed": timed.seed,
        "samples": len(archs),
        "table": accuracy_figures(measured, table_ms),
        "predictor": accuracy_figures(measured, held_out),
    }
    return Profile(
        supernet=supernet,
        config=model.config.to_dict(),
        input_shape=tuple(model.input_spec().shape),
        settings=settings,
        device=environment(settings),
        table=table,
        table_noise=noise,
        predictor=LatencyPredictor.fit(features, table_ms, measured),
        reference=ProfileReference.of(model.teacher_arch(), timed.timings),
        validation=validation,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        precision=precision,
    )


def build_profile(
    supernet: str,
    model: Family,
    settings: LatencySettings,
    samples: int = 200,
    rounds: int = 5,
    seed: int = 0,
    progress: Progress | None = None,
    precision: ProfilePrecision | None = None,
) -> Profile:
    """``time_profile``, then ``fit_profile``: what ``hwnas profile create`` does."""
    timed = time_profile(model, settings, samples, rounds, seed, progress, precision)
    return fit_profile(supernet, model, settings, timed, precision)


def distinct_samples(
    model: Family, n: int, seed: int, exclude: frozenset[str] = frozenset(),
    policy: PrecisionPolicy | None = None,
) -> list[Arch]:  # fmt: skip
    """Up to ``n`` distinct random archs (fewer only in a tiny space), none in ``exclude``.
    With ``policy``, in turn all fp32, all at each other precision, and mixed: a search
    visits all three, and a predictor fitted on mixed policies alone would extrapolate to
    the uniform ones."""
    space, rng = (policy.space if policy else model.space()), np.random.default_rng(seed)
    uniform = policy.precisions if policy else ()
    archs: dict[str, Arch] = {}
    for _ in range(100 * n):
        if len(archs) == n:
            break
        arch = space.sample(rng)
        turn = len(archs) % (len(uniform) + 1)
        if turn < len(uniform):
            arch = policy.uniform(arch, uniform[turn])
        if arch.key not in exclude:
            archs.setdefault(arch.key, arch)
    return list(archs.values())


RECALIBRATION_ROUNDS = 5
"""Timings of the reference a recalibration takes the median of: the first timing after
sessions are made can run 40% slow here (caches, allocator arenas), and one outlier must
not scale every estimate of a run."""


def speed_here(profile: Profile, reference: Callable[[], object]) -> float:
    """The reference's latency on this machine now (the median of a few timings of its
    ``reference_call`` with the profile's settings) over the profile's: multiply its
    estimates by this to get today's milliseconds (``latency.recalibrate``)."""
    timed = time_rounds([reference], profile.settings, RECALIBRATION_ROUNDS)
    return float(np.median(timed.ms)) / profile.reference.ms


def same_device(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two environments describe the same CPU, runtime and settings."""
    return comparable(a) == comparable(b)


def check_profile(
    profile: Profile,
    model: Family,
    samples: int,
    progress: Progress | None = None,
    rounds: int = 5,
) -> dict[str, Any]:
    """Measure ``samples`` random sub-networks here, none of those the profile was fitted on
    (they are drawn again from its recorded seed and excluded), and score its estimates
    three ways: its milliseconds against those timed now (``predictor``); the same scaled
    by ``speed_here`` before measuring, as a run with ``latency.recalibrate`` does
    (``predictor_recalibrated``); and both relative to the reference timed beside each
    (``predictor_relative``), which the machine's drift does not move."""
    progress = progress or SilentProgress()
    started = time.perf_counter()
    model = model.eval()
    policy = profile.policy(model)
    fit_seed = int(profile.validation.get("seed", 0))
    fitted = distinct_samples(model, int(profile.validation.get("samples", 0)), fit_seed,
                               policy=policy)  # fmt: skip
    seed = fit_seed + 1
    archs = distinct_samples(model, samples, seed, frozenset(a.key for a in fitted), policy)
    if len(archs) < 2:
        raise HwnasError("--check: this space has too few archs the profile was not fitted on")
    reference = reference_call(model, profile.settings)
    speed = speed_here(profile, reference)
    measured = measure_archs(model, archs, profile.settings, progress, "check", rounds, seed,
                             policy, reference)  # fmt: skip
    table_ms, predicted = profile.estimate(model, archs, policy)
    reference_ms = profile.reference.ms
    recalibrated = predicted * speed
    here = environment(profile.settings)
    return {
        "samples": len(archs),
        "seed": seed,
        "rounds": rounds,
        "table": accuracy_figures(measured.ms, table_ms),
        "predictor": accuracy_figures(measured.ms, predicted),
        "predictor_recalibrated": accuracy_figures(measured.ms, recalibrated),
        "predictor_relative": accuracy_figures(measured.relative, predicted / reference_ms),
        "speed_drift": measured.reference_ms / reference_ms - 1,
        "recalibration_speed": speed,
        "profile_device": profile.device,
        "this_device": here,
        "same_device": same_device(profile.device, here),
        "seconds": time.perf_counter() - started,
        "archs": [
            {
                "key": a.key,
                "measured_ms": m,
                "measured_relative": r,
                "table_ms": t,
                "predicted_ms": p,
                **({"precisions": dict(Counter(policy.policy(a).values()))} if policy else {}),
            }
            for a, m, r, t, p in zip(
                archs, measured.ms, measured.relative, table_ms, predicted, strict=True
            )
        ],  # fmt: skip
    }
