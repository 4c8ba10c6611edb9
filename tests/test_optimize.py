"""hwnas.optimize: a user's own space and function, searched, stored and reported in one call."""

import csv
import json

import pytest

import hwnas
from hwnas.errors import HwnasError
from hwnas.evaluate.base import InvalidArch
from hwnas.space import Space

CHOICES = {"width": [8, 16, 32, 64], "depth": [1, 2, 3], "op": ["conv", "mlp", "attn"]}
COST = {"conv": 1.0, "mlp": 0.6, "attn": 1.8}


def measure(arch):
    """A made-up model: wider, deeper and attention are more accurate and slower."""
    error = 40 / arch["width"] ** 0.5 / arch["depth"] - (2 if arch["op"] == "attn" else 0)
    return {"error": error, "latency_ms": arch["width"] * arch["depth"] * COST[arch["op"]] / 8}


def test_one_call_searches_stores_and_reports(tmp_path):
    result = hwnas.optimize(measure, CHOICES, ["error:min", "latency_ms:min"], budget=20,
                            out=tmp_path / "s", searcher="nsga2", seed=1)  # fmt: skip
    assert len(result.evaluations) == 20 and result.front
    errors = [e.metrics["error"] for e in result.front]
    assert errors == sorted(errors)
    for e in result.front:  # nothing evaluated dominates a front member
        assert not any(
            o.metrics["error"] <= e.metrics["error"]
            and o.metrics["latency_ms"] <= e.metrics["latency_ms"]
            and o.metrics != e.metrics
            for o in result.evaluations
        )
    summary = json.loads((tmp_path / "s" / "summary.json").read_text())
    assert summary["knee"] == result.knee.arch_key and summary["evaluations"] == 20
    assert summary["front"][0]["label"].startswith("width=")
    rows = list(csv.DictReader((tmp_path / "s" / "front.csv").open()))
    assert [r["key"] for r in rows] == [e.arch_key for e in result.front]
    assert "plotly" in (tmp_path / "s" / "report.html").read_text()


def test_a_killed_call_resumes_without_evaluating_anything_twice(tmp_path):
    calls = []

    def flaky(arch):
        calls.append(arch)
        if len(calls) == 7:
            raise KeyboardInterrupt
        return measure(arch)

    with pytest.raises(KeyboardInterrupt):
        hwnas.optimize(flaky, CHOICES, ["error:min", "latency_ms:min"], 15, tmp_path / "s")
    with pytest.raises(HwnasError, match="resume=True"):
        hwnas.optimize(measure, CHOICES, ["error:min", "latency_ms:min"], 15, tmp_path / "s")
    seen = []

    def counted(arch):
        seen.append(arch)
        return measure(arch)

    result = hwnas.optimize(counted, CHOICES, ["error:min", "latency_ms:min"], 15,
                            tmp_path / "s", resume=True)  # fmt: skip
    keys = [e.arch_key for e in result.evaluations]
    assert len(keys) == len(set(keys)) == 15 and len(seen) == 15 - 6


def test_invalid_archs_constraints_and_bad_returns(tmp_path):
    def picky(arch):
        if arch["op"] == "attn" and arch["depth"] == 3:
            raise InvalidArch("too big")
        return measure(arch)

    result = hwnas.optimize(picky, CHOICES, ["error:min"], 25, tmp_path / "a",
                            constraints=["latency_ms <= 6"])  # fmt: skip
    assert all(e.metrics["latency_ms"] <= 6 for e in result.front)
    assert any(e.metrics is None for e in result.evaluations) or len(result.evaluations) == 25
    for bad, fragment in ((lambda a: 3.0, "not a mapping"),
                          (lambda a: {"error": "low"}, "not a number"),
                          (lambda a: {"err": 1.0}, "returned no 'error'")):  # fmt: skip
        with pytest.raises(HwnasError, match=fragment):
            hwnas.optimize(bad, CHOICES, ["error:min"], 3, tmp_path / fragment.replace(" ", "_"))
    with pytest.raises(HwnasError, match="budget"):
        hwnas.optimize(measure, CHOICES, ["error:min"], 0, tmp_path / "b")
    assert not (tmp_path / "b").exists()


def test_spaces_from_options_know_which_choices_are_ordered():
    space = Space.from_options({"w": [1, 2, 4], "op": ["a", "b"], "mixed": [3, 1]})
    assert [c.ordinal for c in space.choices] == [True, False, False]
    with pytest.raises(HwnasError, match="non-empty"):
        Space.from_options({"w": []})
