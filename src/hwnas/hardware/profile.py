"""Device profiles: one JSON file that carries a device's latency to machines without it.

``build_profile`` runs on the device (a Raspberry Pi, a phone-class board, this laptop): it
times every layer the super-network's space can produce (the lookup table), times a sample
of whole sub-networks, and fits the predictor that corrects the table's sum. ``hwnas run
--latency profile:FILE`` then estimates latency anywhere, with no access to the device.

The file says what it was made for (super-network config and input shape, back-end, device,
format version) and how good it is (cross-validated figures); loading checks all of it, so
a profile for another space or another hwnas format is refused in one line, never used to
produce wrong numbers quietly. Nothing in it is pickled.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import (
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
from hwnas.families.base import Family
from hwnas.files import MiB, read_text_limited, write_atomic
from hwnas.hardware.measure import comparable, environment, prepare, time_rounds
from hwnas.hardware.predictor import LatencyPredictor
from hwnas.hardware.settings import LatencySettings
from hwnas.hardware.table import LatencyTable, build_table
from hwnas.predictors import quality
from hwnas.progress import Progress, SilentProgress
from hwnas.space import Arch

FORMAT = "hwnas-latency-profile"
VERSION = 1
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
    reference_ms: float | None = Field(None, gt=0)


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
    validation: _Validation


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
    validation: dict[str, Any]
    created: str

    @property
    def fingerprint(self) -> str:
        return space_fingerprint(self.supernet, self.config, self.input_shape)

    def estimate(self, model: Family, archs: Sequence[Arch]) -> tuple[np.ndarray, ...]:
        """(table sum, predicted) latency in ms for each arch, for the network ``model``."""
        table_ms = np.array([self.table.predict(model.layer_schedule(a)) for a in archs])
        features = model.space().features(list(archs))
        return table_ms, self.predictor.predict(features, table_ms)

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
            "validation": self.validation,
        }

    def save(self, path: Path) -> None:
        """Written whole or not at all."""
        write_atomic(path, json.dumps(self.to_dict(), indent=1, allow_nan=False))


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
        validation=data.validation.model_dump(exclude_none=True),
        created=data.created,
    )


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number a profile may hold")


def check_fits(profile: Profile, path: Path | str, supernet: str, model: Family) -> None:
    """Refuse a profile that cannot estimate this network's archs, saying why: made for
    another super-network, config or input shape, or a table or predictor that does not
    cover the space (a damaged file, or one from an hwnas that encodes archs differently)."""
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
    missing = [layer.key for layer in model.layer_catalogue()
               if layer.key not in profile.table.entries]  # fmt: skip
    if missing:
        raise HwnasError(f"profile {path}: table has no entry for layer {missing[0]}")
    corners = [model.smallest_arch(), model.teacher_arch()]
    features = model.space().features(corners).shape[1]
    if profile.predictor.n_features != features:
        raise HwnasError(
            f"profile {path}: predictor has {profile.predictor.n_features} features, this "
            f"space has {features}"
        )
    with np.errstate(over="ignore", invalid="ignore"):  # reported below, in one line
        estimates = np.concatenate(profile.estimate(model, corners))
    if not np.all(np.isfinite(estimates) & (estimates > 0)):
        raise HwnasError(f"profile {path}: estimates non-positive or infinite latencies")


# -- building and checking ---------------------------------------------------------------------
def measure_archs(
    model: Family,
    archs: Sequence[Arch],
    settings: LatencySettings,
    progress: Progress,
    label: str,
    rounds: int = 3,
    seed: int = 0,
) -> np.ndarray:
    """Measured latency (ms) of each arch's standalone sub-network: the median of
    ``rounds`` interleaved rounds, so machine drift does not bias single archs."""
    example = model.example_input(settings.batch_size)
    calls = [prepare(model.extract(arch), example, settings) for arch in archs]
    task = progress.task(label, rounds * len(calls))
    timings = time_rounds(calls, settings, rounds, seed, task.advance)
    task.close()
    return np.median(timings, axis=0)


def build_profile(
    supernet: str,
    model: Family,
    settings: LatencySettings,
    samples: int = 200,
    rounds: int = 5,
    seed: int = 0,
    progress: Progress | None = None,
) -> Profile:
    """Measure the lookup table and ``samples`` random sub-networks, each in ``rounds``
    interleaved rounds; fit the predictor.

    The weights do not matter to latency, so a freshly initialised super-network serves.
    """
    progress = progress or SilentProgress()
    model = model.eval()
    archs = _distinct_samples(model, samples, seed)
    if len(archs) < 10:
        raise HwnasError(
            f"--samples {samples}: the predictor needs at least 10 distinct sub-networks "
            f"(this space gave {len(archs)})"
        )
    table, noise = build_table(model.layer_catalogue(), model.layer_module, settings,
                               rounds=rounds, seed=seed, progress=progress)  # fmt: skip
    *measured, reference_ms = measure_archs(
        model, [*archs, model.teacher_arch()], settings, progress, "sub-networks", rounds, seed
    )
    measured = np.asarray(measured)
    table_ms = np.array([table.predict(model.layer_schedule(a)) for a in archs])
    features = model.space().features(archs)
    held_out = np.empty(len(archs))
    for train, test in KFold(5, shuffle=True, random_state=seed).split(features):
        fitted = LatencyPredictor.fit(features[train], table_ms[train], measured[train])
        held_out[test] = fitted.predict(features[test], table_ms[test])
    validation = {
        "method": f"5-fold cross-validation on {len(archs)} measured sub-networks",
        "seed": seed,
        "samples": len(archs),
        "table": accuracy_figures(measured, table_ms),
        "predictor": accuracy_figures(measured, held_out),
        "reference_ms": float(reference_ms),  # the teacher arch, timed with the others
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
        validation=validation,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def _distinct_samples(
    model: Family, n: int, seed: int, exclude: frozenset[str] = frozenset()
) -> list[Arch]:
    """Up to ``n`` distinct random archs (fewer only in a tiny space), none in ``exclude``."""
    space, rng = model.space(), np.random.default_rng(seed)
    archs: dict[str, Arch] = {}
    for _ in range(100 * n):
        if len(archs) == n:
            break
        arch = space.sample(rng)
        if arch.key not in exclude:
            archs.setdefault(arch.key, arch)
    return list(archs.values())


def _drift(
    profile: Profile, reference_ms: float, measured: np.ndarray, predicted: np.ndarray
) -> dict[str, Any]:
    """How much faster or slower this machine runs now than when the profile was made,
    from the one arch both timed (the teacher), and the predictor's figures with that
    global factor taken out: what is left is the predictor's own error. A diagnostic only;
    the figures above it are the honest ones."""
    then = profile.validation.get("reference_ms")
    if not isinstance(then, int | float) or not then > 0:
        return {}
    factor = reference_ms / then
    return {
        "speed_drift": factor - 1,
        "predictor_without_drift": accuracy_figures(measured, predicted * factor),
    }


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
    (they are drawn again from its recorded seed and excluded), and score its estimates."""
    progress = progress or SilentProgress()
    started = time.perf_counter()
    model = model.eval()
    fit_seed = int(profile.validation.get("seed", 0))
    fitted = _distinct_samples(model, int(profile.validation.get("samples", 0)), fit_seed)
    seed = fit_seed + 1
    archs = _distinct_samples(model, samples, seed, frozenset(a.key for a in fitted))
    if len(archs) < 2:
        raise HwnasError("--check: this space has too few archs the profile was not fitted on")
    *measured, reference_ms = measure_archs(
        model, [*archs, model.teacher_arch()], profile.settings, progress, "check", rounds, seed
    )
    measured = np.asarray(measured)
    table_ms, predicted = profile.estimate(model, archs)
    here = environment(profile.settings)
    return {
        "samples": len(archs),
        "seed": seed,
        "rounds": rounds,
        "table": accuracy_figures(measured, table_ms),
        "predictor": accuracy_figures(measured, predicted),
        **_drift(profile, float(reference_ms), measured, predicted),
        "profile_device": profile.device,
        "this_device": here,
        "same_device": same_device(profile.device, here),
        "seconds": time.perf_counter() - started,
        "archs": [
            {"key": a.key, "measured_ms": m, "table_ms": t, "predicted_ms": p}
            for a, m, t, p in zip(archs, measured, table_ms, predicted, strict=True)
        ],
    }
