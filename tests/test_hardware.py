"""Measurement, layer schedules, lookup tables, the latency predictor and profile files."""

import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import binom

from helpers import FAST_LATENCY, cli, image_spec
from hwnas.errors import HwnasError
from hwnas.evaluate.context import EvaluationContext
from hwnas.evaluate.latency import Latency, MeasuredLatency, ProfiledLatency
from hwnas.families import build_family
from hwnas.hardware.measure import (
    environment,
    measure,
    median_interval,
    time_calls,
    time_rounds,
)
from hwnas.hardware.predictor import LatencyPredictor
from hwnas.hardware.profile import (
    build_profile,
    check_fits,
    check_profile,
    distinct_samples,
    load_profile,
    reference_call,
    speed_here,
)
from hwnas.hardware.settings import LatencySettings
from hwnas.hardware.table import LatencyTable, MissingLayer, table_calls, table_from_timings

TINY = {"widths": (8, 12, 16, 16), "expands": (1, 2), "depths": (1, 2), "kernels": (3, 5),
        "resolutions": (16, 24), "final_width": 32}  # fmt: skip


def tiny_model():
    torch.manual_seed(0)
    return build_family("mobilenet", TINY, image_spec(1, 10)).eval()


def test_median_interval_covers_the_median_95_percent_of_the_time():
    for n in (20, 50, 101, 1000):
        low, high = median_interval(np.arange(n, dtype=float))  # values are 0-based indices
        # the (low+1)-th and (high+1)-th smallest bracket the median unless fewer than low+1
        # or more than high samples fall below it: exact coverage from the binomial
        coverage = binom.cdf(high, n, 0.5) - binom.cdf(low, n, 0.5)
        assert 0.95 <= coverage <= 0.99, (n, coverage)  # conservative by whole ranks
    rng = np.random.default_rng(0)
    hits = 0
    for _ in range(400):
        lo, hi = median_interval(rng.exponential(size=60))
        hits += lo <= math.log(2) <= hi
    assert 0.93 <= hits / 400 <= 0.995


def test_timing_stops_on_a_tight_interval_and_respects_the_run_caps():
    steady = time_calls(lambda: sum(range(2000)), LatencySettings(warmup=2, target_ci=0.05))
    half_width = (steady.ci_high_ms - steady.ci_low_ms) / 2
    assert steady.runs < 2000 and half_width <= 0.05 * steady.median_ms
    assert steady.ci_low_ms <= steady.median_ms <= steady.ci_high_ms
    capped = time_calls(lambda: None, LatencySettings(warmup=0, min_runs=4, max_runs=7,
                                                      target_ci=1e-9))  # fmt: skip
    assert capped.runs == 7


def test_measure_records_both_backends_and_the_environment():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU())
    x = torch.randn(1, 1, 16, 16)
    for backend in ("onnxruntime", "torch"):
        settings = LatencySettings(backend=backend, warmup=1, min_runs=3, max_seconds=0.05)
        timing = measure(model, x, settings)
        assert timing.median_ms > 0 and timing.runs >= 3 and timing.iqr_ms >= 0
        env = environment(settings)
        assert env["runtime"].startswith(backend) and env["threads"] == 1 and env["cpu"]


def test_table_counts_the_call_overhead_once():
    model = tiny_model()
    arch = model.teacher_arch()
    schedule = model.layer_schedule(arch)
    entries = {layer.key: 0.5 + i for i, layer in enumerate(schedule)}
    table = LatencyTable(0.25, entries)
    expected = 0.25 + sum(v - 0.25 for v in entries.values())
    assert table.predict(schedule) == pytest.approx(expected)
    with pytest.raises(MissingLayer):
        LatencyTable(0.25, {}).predict(schedule)
    calls = table_calls(schedule[:3], model.layer_module, FAST_LATENCY)
    assert len(calls) == 4  # and the one-op model
    built, noise = table_from_timings(schedule[:3], time_rounds(calls, FAST_LATENCY, rounds=2).ms)
    assert set(built.entries) == {layer.key for layer in schedule[:3]}
    assert all(v > 0 for v in built.entries.values()) and noise["rounds"] == 2


def test_table_overhead_never_exceeds_a_layer():
    """One noisy round can time the one-op model slower than a tiny layer; the table must
    still never estimate a network at zero or below (the profile's predictor takes a log)."""
    model = tiny_model()
    schedule = model.layer_schedule(model.teacher_arch())[:3]
    noisy = np.array([[0.010, 0.012, 0.015, 0.040]])  # three layers, then the one-op model
    table, _ = table_from_timings(schedule, noisy)
    assert table.overhead_ms == pytest.approx(0.010)
    assert table.predict(schedule) == pytest.approx(0.017)


def test_predictor_learns_a_multiplicative_correction_and_round_trips():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 4))
    table_ms = rng.uniform(0.1, 2.0, 120)
    measured = table_ms * np.exp(0.2 * X[:, 0] - 0.1 * X[:, 2] + 0.05)
    fitted = LatencyPredictor.fit(X, table_ms, measured)
    np.testing.assert_allclose(fitted.predict(X, table_ms), measured, rtol=0.02)
    again = LatencyPredictor.from_dict(json.loads(json.dumps(fitted.to_dict())))
    np.testing.assert_allclose(again.predict(X, table_ms), fitted.predict(X, table_ms))


@pytest.fixture(scope="module")
def profile_file(tmp_path_factory):
    model = tiny_model()
    profile = build_profile("mobilenet", model, FAST_LATENCY, samples=12, rounds=1)
    path = tmp_path_factory.mktemp("profile") / "tiny.json"
    profile.save(path)
    return path, profile


def test_small_profile_round_trips(profile_file):
    path, profile = profile_file
    loaded = load_profile(path)
    model = tiny_model()
    archs = [model.space().sample(np.random.default_rng(i)) for i in range(6)]
    for a, b in zip(profile.estimate(model, archs), loaded.estimate(model, archs), strict=True):
        np.testing.assert_allclose(a, b)
    assert loaded.settings == FAST_LATENCY and loaded.device["runtime"].startswith("onnxruntime")
    assert set(loaded.validation["predictor"]) >= {"within_10pct", "mape_pct", "kendall_tau"}
    assert len(loaded.table.entries) == len(model.layer_catalogue())
    check_fits(loaded, path, "mobilenet", model)
    check = check_profile(loaded, model, samples=10)
    assert check["samples"] == 10 and check["same_device"] is True
    assert 0 <= check["predictor"]["within_10pct"] <= 1 and len(check["archs"]) == 10
    assert loaded.reference.ms > 0 and math.isfinite(check["speed_drift"])
    assert loaded.reference.arch == model.teacher_arch().key and loaded.reference.timings > 1
    for figures in ("predictor_recalibrated", "predictor_relative"):
        assert set(check[figures]) == set(check["predictor"])
    fitted = {a.key for a in distinct_samples(model, 12, loaded.validation["seed"])}
    assert len(fitted) == 12 and not fitted & {a["key"] for a in check["archs"]}  # held out


def _broken(raw, change):
    raw = json.loads(json.dumps(raw))
    change(raw)
    return raw


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (lambda r: r.pop("table"), "table: Field required"),
        (lambda r: r["predictor"].pop("coef"), "predictor.coef: Field required"),
        (lambda r: r["table"].update(overhead_ms="NaN"), "NaN is not a number"),
        (lambda r: r["table"].update(overhead_ms="x"), "table.overhead_ms"),
        (lambda r: r.update(version=99), "format version 99"),
        (lambda r: r.update(format="other"), "not an hwnas latency profile"),
        (lambda r: r["supernet"]["config"].update(widths=[8, 8, 8, 8]), "fingerprint"),
        (lambda r: r["table"]["entries"].update({"stem()@1x16x16": -1.0}), "not a positive"),
        (lambda r: r.update(version=True), "format version True"),
        (lambda r: r["table"].update(overhead_ms=1e9), "below overhead_ms"),
        (
            lambda r: r.update(precision={"precisions": ["int8", "fp32"], "block_size": 32}),
            "fp32 first",
        ),
        (
            lambda r: r.update(precision={"precisions": ["fp32", "int8"], "block_size": 33}),
            "precision.block_size",
        ),
        (  # a precision profile's predictor takes one more feature per precision
            lambda r: r.update(precision={"precisions": ["fp32", "int8"], "block_size": 32}),
            "table has no entry for layer stem()@1x16x16:int8",
        ),
        (lambda r: r["predictor"].update(coef=[0.0]), "one entry per feature"),
        (lambda r: r["supernet"].update(input_shape=[1, 0, 0]), "input_shape.1"),
        (lambda r: r["settings"].update(min_runs=50, max_runs=5), "max_runs must be at least"),
        (lambda r: r["table"]["entries"].pop("stem()@1x16x16"), "no entry for layer stem()"),
        (
            lambda r: r["predictor"].update(
                {k: r["predictor"][k][:-1] for k in ("mean", "scale", "coef")}
            ),
            "features, this",
        ),
        (lambda r: r["predictor"].update(intercept=1e6), "non-positive or infinite"),
        (lambda r: r.clear() or r.update(format="hwnas-latency-profile", version=2), "Field req"),
    ],
)
def test_bad_profiles_fail_with_one_line(profile_file, tmp_path, change, fragment):
    raw = json.loads(profile_file[0].read_text())
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_broken(raw, change)).replace('"NaN"', "NaN"))
    r = cli("profile", "check", path, "--out", tmp_path / "chk")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert fragment in r.stderr and str(path) in r.stderr
    assert not (tmp_path / "chk").exists()


def test_truncated_missing_and_unreadable_profiles_are_refused(profile_file, tmp_path):
    text = profile_file[0].read_text()
    path = tmp_path / "cut.json"
    path.write_text(text[: len(text) // 2])
    with pytest.raises(HwnasError, match="not a valid JSON"):
        load_profile(path)
    path.write_text("[" * 100_000)
    with pytest.raises(HwnasError, match="not a valid JSON"):
        load_profile(path)
    path.write_text("[1, 2]")
    with pytest.raises(HwnasError, match="not an hwnas latency profile"):
        load_profile(path)
    with pytest.raises(HwnasError, match="no such file"):
        load_profile(tmp_path / "none.json")
    with pytest.raises(HwnasError, match="not a file"):
        load_profile(tmp_path)


def test_a_profile_for_another_space_or_input_is_refused(profile_file):
    path, profile = profile_file
    check_fits(profile, path, "mobilenet", tiny_model())
    other = build_family("mobilenet", {**TINY, "kernels": (3,)}, image_spec(1, 10))
    with pytest.raises(HwnasError, match="another space .kernels"):
        check_fits(profile, path, "mobilenet", other)
    smaller = build_family("mobilenet", TINY, image_spec(1, 10, size=24))
    with pytest.raises(HwnasError, match="made for inputs"):
        check_fits(profile, path, "mobilenet", smaller)


class DriftingMachine:
    """A clock and calls for it: each call takes its work times the machine's slowness at
    that moment, which grows steadily from 1 to several times over the session (the
    deterministic stand-in for a VM whose neighbours take more and more of its cores)."""

    def __init__(self, doubling_seconds: float) -> None:
        self.now = 0.0
        self.doubling = doubling_seconds

    def perf_counter(self) -> float:
        return self.now

    def call(self, ms: float):
        def run() -> None:
            self.now += ms / 1000 * (1 + self.now / self.doubling)

        return run


def test_the_reference_takes_a_drifting_machine_out_of_the_timings(monkeypatch):
    """The milliseconds of one call differ between rounds as much as the machine's speed,
    its ratio to the reference timed beside it does not."""
    machine = DriftingMachine(doubling_seconds=0.2)
    monkeypatch.setattr("hwnas.hardware.measure.time", machine)
    work = [0.3, 0.6, 0.9, 0.3, 0.6, 0.9]
    settings = LatencySettings(warmup=1, min_runs=20, max_runs=20)
    timings = time_rounds([machine.call(ms) for ms in work], settings, rounds=4,
                          reference=machine.call(0.6))  # fmt: skip
    assert timings.ms.shape == timings.relative.shape == (4, 6)
    assert np.all(timings.ms[-1] / timings.ms[0] > 1.5)  # drift in the milliseconds
    expected = np.broadcast_to(np.array(work) / 0.6, (4, 6))
    np.testing.assert_allclose(timings.relative, expected, rtol=0.05)
    assert len(timings.reference_ms) == 1 + 4 * 2  # first, then after 4 calls and at the end
    steady = timings.at_reference_speed()
    np.testing.assert_allclose(steady / steady[0], 1, rtol=0.1)
    with pytest.raises(ValueError, match="without a reference"):
        time_rounds([machine.call(0.1)], settings, rounds=1).at_reference_speed()


def test_a_measured_search_records_latency_relative_to_the_reference():
    model = tiny_model()
    evaluator = MeasuredLatency(model.extract, model.example_input(1), FAST_LATENCY,
                                lambda: reference_call(model, FAST_LATENCY), rounds=2)  # fmt: skip
    small, large = (
        evaluator.evaluate(model.smallest_arch()),
        evaluator.evaluate(model.teacher_arch()),
    )
    assert set(small) == set(MeasuredLatency.metrics)
    for metrics in (small, large):
        assert metrics["latency_relative"] > 0 and metrics["latency_reference_ms"] > 0
        assert metrics["latency_runs"] >= 2 * FAST_LATENCY.min_runs
    assert 0.5 < large["latency_relative"] < 2  # the reference itself, on a loaded machine


def test_recalibration_converts_estimates_to_the_speed_here(profile_file, tmp_path):
    path, profile = profile_file
    model = tiny_model()
    arch = model.space().sample(np.random.default_rng(3))
    plain = ProfiledLatency(profile, model).evaluate(arch)
    recalibrated = ProfiledLatency(profile, model, speed=1.5).evaluate(arch)
    assert recalibrated["latency_ms"] == pytest.approx(1.5 * plain["latency_ms"])
    assert recalibrated["latency_relative"] == plain["latency_relative"]
    assert plain["latency_relative"] * profile.reference.ms == pytest.approx(plain["latency_ms"])
    speed = speed_here(profile, reference_call(model, profile.settings))
    assert math.isfinite(speed) and speed > 0
    elsewhere = json.loads(path.read_text())
    elsewhere["device"]["cpu"] = "another CPU"
    moved = tmp_path / "elsewhere.json"
    moved.write_text(json.dumps(elsewhere))
    context = EvaluationContext(None, model, "mobilenet", model.extract, f"profile:{moved}",
                                FAST_LATENCY, recalibrate=True)  # fmt: skip
    with pytest.raises(HwnasError, match="recalibrate: profile .* was made on 'another CPU'"):
        Latency.create(context)
    context = EvaluationContext(None, model, "mobilenet", model.extract, f"profile:{path}",
                                FAST_LATENCY, recalibrate=True)  # fmt: skip
    assert Latency.create(context).speed > 0
