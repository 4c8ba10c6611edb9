"""Gradient one-shot search: the mixed network, the training of its architecture weights,
both selections and the ``hwnas oneshot`` job."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import FAST_LATENCY, cli, random_image_task
from hwnas.config import OneShotConfig
from hwnas.families import build_family
from hwnas.families.mobilenet.network import ElasticMobileNet
from hwnas.families.nb201.cell import EDGE_NAMES, OPERATIONS, keeps_a_path
from hwnas.hardware.profile import build_profile
from hwnas.oneshot.fbnet import ExpectedLatency, FBNetSearch, select_on_target, train_fbnet
from hwnas.oneshot.network import OneShotNB201
from hwnas.oneshot.search import select_argmax, select_perturbation, train_architecture
from test_cli import assert_user_error


def _network(partial: int = 1, channels: int = 4):
    task = random_image_task()
    family = build_family("nb201", {"channels": channels, "cells": 1}, task.spec)
    torch.manual_seed(0)
    return task, family, OneShotNB201(family.config, partial, partial > 1)


@pytest.mark.parametrize("partial", [1, 2])
def test_mixture_weights_and_output_shape(partial):
    task, _, network = _network(partial)
    weights = network.operation_weights()
    assert weights.shape == (len(EDGE_NAMES), len(OPERATIONS))
    assert torch.allclose(weights.sum(-1), torch.ones(len(EDGE_NAMES)))
    out = network(task.data.train.tensors[0][:3])
    assert out.shape == (3, task.spec.outputs)
    assert network.architecture_parameters()[0] is network.alphas
    assert (network.betas is not None) == (partial > 1)
    assert not {id(p) for p in network.weights()} & {
        id(p) for p in network.architecture_parameters()
    }


def test_a_mask_fixing_every_edge_runs_only_that_cell():
    """With every edge fixed to one op by the mask, the mixed network computes the derived
    cell: its output no longer depends on the other ops' weights."""
    task, _, network = _network()
    network.mask = torch.zeros(len(EDGE_NAMES), len(OPERATIONS))
    network.mask[:, OPERATIONS.index("skip_connect")] = 1.0
    network.eval()
    x = task.data.train.tensors[0][:2]
    before = network(x)
    for cell in network.steps:
        if hasattr(cell, "edges"):
            for edge in cell.edges.values():
                torch.nn.init.normal_(edge.ops["nor_conv_3x3"][1].weight)
    assert torch.allclose(before, network(x))


def test_training_moves_the_architecture_weights_deterministically():
    settings = OneShotConfig(epochs=1, batch_size=8)
    runs = []
    for _ in range(2):
        task, _, network = _network()
        start = network.alphas.detach().clone()
        history = train_architecture(network, task, settings, seed=0)
        assert not torch.allclose(start, network.alphas)
        runs.append((network.alphas.detach().clone(), history))
    assert torch.equal(runs[0][0], runs[1][0])
    assert len(runs[0][1]) == 1 and set(runs[0][1][0]["operation_weights"]) == set(EDGE_NAMES)


def test_argmax_and_perturbation_selections_give_cells():
    task, family, network = _network()
    with torch.no_grad():
        network.alphas.zero_()
        network.alphas[:, OPERATIONS.index("avg_pool_3x3")] = 5.0
    assert set(select_argmax(network).values()) == {"avg_pool_3x3"}
    cell, drops = select_perturbation(network, task, OneShotConfig(tune_steps=1), seed=0)
    assert set(cell) == set(EDGE_NAMES) and set(drops) == set(EDGE_NAMES)
    for edge, lost in drops.items():  # the op kept is one whose removal cost most
        worst = max(v["accuracy"] for v in lost.values())
        tied = {op: v["output_shift"] for op, v in lost.items() if v["accuracy"] == worst}
        assert cell[edge] == max(tied, key=tied.get)  # then the one it leans on most
        assert all(v["output_shift"] >= 0 for v in lost.values())
    family.space().make(cell)  # a cell of the family's space
    assert network.mask is None  # selection worked on a copy


class _SaturatedTask:
    """A task whose network scores the same whatever is taken out of it, as a super-network
    that fits digits does for most single operations."""

    def __init__(self, task):
        self.task = task

    def quality(self, module, split="val"):
        return {"accuracy": 100.0}

    def __getattr__(self, name):
        return getattr(self.task, name)


def test_accuracy_ties_go_to_the_operation_the_network_leans_on_not_to_none():
    task, _, network = _network()
    with torch.no_grad():
        network.alphas.zero_()
        for e in range(len(EDGE_NAMES)):  # one dominant operation per edge, never none
            network.alphas[e, 1 + e % (len(OPERATIONS) - 1)] = 10.0
    cell, drops = select_perturbation(network, _SaturatedTask(task), OneShotConfig(tune_steps=1),
                                      seed=0)  # fmt: skip
    assert all(v["accuracy"] == 0 for lost in drops.values() for v in lost.values())
    assert cell == select_argmax(network) and "none" not in cell.values()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_perturbation_never_cuts_the_last_path_to_the_output(seed):
    task, _, network = _network()
    with torch.no_grad():
        network.alphas.zero_()
        network.alphas[:, OPERATIONS.index("none")] = 10.0  # none moves the outputs most
    cell, _ = select_perturbation(network, _SaturatedTask(task), OneShotConfig(tune_steps=1),
                                  seed=seed)  # fmt: skip
    dead = {e for e, edge in enumerate(EDGE_NAMES) if cell[edge] == "none"}
    assert keeps_a_path(dead)
    for e in set(range(len(EDGE_NAMES))) - dead:  # none everywhere it could go
        assert not keeps_a_path(dead | {e})


def test_a_cell_keeps_a_path_unless_every_path_has_a_none_edge():
    assert keeps_a_path(set()) and keeps_a_path({0, 1, 2, 4, 5})  # edge 0->3 alone
    assert not keeps_a_path({3, 4, 5})  # nothing enters the output
    assert not keeps_a_path({0, 1, 3})  # nothing leaves the input but 0->3, which is cut


ONE_ROUND = {**FAST_LATENCY.model_dump(), "rounds": 1}


def _config(tmp_path, **oneshot) -> str:
    settings = {"epochs": 1, "tune_steps": 1, "retrain_epochs": 1, "batch_size": 32, **oneshot}
    text = json.dumps({"data": {"name": "digits", "image_size": 16}, "latency": ONE_ROUND,
                       "supernet": {"name": "nb201", "overrides": {"channels": 4, "cells": 1}},
                       "oneshot": settings})  # fmt: skip
    path = tmp_path / "oneshot.yaml"
    path.write_text(text)
    return str(path)


def test_oneshot_job_writes_cells_store_and_models(tmp_path, nb201_path):
    out = tmp_path / "out"
    config = _config(tmp_path, method="pc-darts", partial_channels=2)
    r = cli("oneshot", "--config", config, "--out", out, "--table", nb201_path)
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "oneshot.json").read_text())
    assert set(summary["derived"]) == {"argmax", "perturbation"}
    for cell in summary["derived"].values():
        metrics = cell["metrics"]
        assert 0 <= metrics["accuracy"] <= 100 and metrics["latency_ms"] > 0
        assert 50 <= metrics["table_accuracy"] <= 100  # looked up in NAS-Bench-201
        assert (out / cell["exported"]["onnx"]).is_file()
        assert cell["skip_connections"] == sum(op == "skip_connect" for op in cell["ops"].values())
    r = cli("oneshot", "--config", config, "--out", out)
    assert_user_error(r, "already holds a run")


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [({"method": "pc-darts", "partial_channels": 3}, "does not divide"),
     ({"selections": ["argmax", "argmax"]}, "each at most once"),
     ({"selections": ["on_target"]}, "argmax and perturbation"),
     ({"table": "/nonexistent/table.csv.gz"}, "oneshot.table")],
)  # fmt: skip
def test_bad_oneshot_settings_are_refused_before_training(tmp_path, overrides, fragment):
    out = tmp_path / "out"
    r = cli("oneshot", "--config", _config(tmp_path, **overrides), "--out", out)
    assert_user_error(r, fragment)
    assert not out.exists()


def test_oneshot_needs_the_nb201_family(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps({"supernet": {"name": "mobilenet"}}))
    r = cli("oneshot", "--config", path, "--out", tmp_path / "out")
    assert_user_error(r, "supernet.name", "nb201")
    assert not (tmp_path / "out").exists()


# -- FBNet over the MobileNet ------------------------------------------------------------------
SMALL = dict(ElasticMobileNet.small_overrides)


@pytest.fixture(scope="module")
def mobilenet_profile(tmp_path_factory):
    """A profile of the small MobileNet on ``random_image_task``'s images, and its path."""
    task = random_image_task()
    torch.manual_seed(0)
    model = build_family("mobilenet", SMALL, task.spec).eval()
    profile = build_profile("mobilenet", model, FAST_LATENCY, samples=12, rounds=1)
    path = tmp_path_factory.mktemp("profile") / "small.json"
    profile.save(path)
    return path, profile


def _fbnet():
    task = random_image_task()
    torch.manual_seed(0)
    return task, FBNetSearch(build_family("mobilenet", SMALL, task.spec))


def test_expected_latency_of_a_certain_draw_is_the_table_sum(mobilenet_profile):
    """With all probability on one option per choice, the expectation is that
    sub-network's table sum; with spread probabilities it lies between the extremes."""
    _, profile = mobilenet_profile
    _, search = _fbnet()
    family, expected = search.family, ExpectedLatency(search.family, profile)
    for seed in range(4):
        arch = family.space().sample(np.random.default_rng(seed)).to_dict()
        certain = {}
        for c in search.choices:
            index = c.options.index(arch[c.name]) if arch[c.name] is not None else 0
            certain[c.name] = torch.nn.functional.one_hot(torch.tensor(index), len(c.options))
        table_ms = profile.table.predict(family.layer_schedule(family.space().make(arch)))
        assert float(expected(certain)) == pytest.approx(table_ms, rel=1e-9)
    schedules = [family.layer_schedule(a) for a in (family.smallest_arch(), family.teacher_arch())]
    low, high = (profile.table.predict(s) for s in schedules)
    with torch.no_grad():
        assert low < float(expected(search.probabilities())) < high


def test_draws_are_seeded_and_gate_with_ones():
    task, search = _fbnet()
    draws = [search.draw(1.0, torch.Generator().manual_seed(3)) for _ in range(2)]
    assert draws[0].arch == draws[1].arch
    assert all(float(draws[0].gate(c.name).detach()) == 1.0 for c in search.choices)
    x = task.data.train.tensors[0][:4]
    search.family.eval()
    search.family.set_active(draws[0].arch)
    assert torch.allclose(search.forward(x, draws[0]), search.family(x), atol=1e-6)
    search.forward(x, draws[0]).sum().backward()
    assert search.logits["resolution"].grad is not None


class _DistanceProfile:
    """Estimates a sub-network as 1 + the number of its active choices off ``favoured``'s:
    known in advance, where a timed profile of a tiny network is at the machine's mercy."""

    def __init__(self, favoured):
        self.favoured = favoured

    def estimate(self, family, archs):
        off = [1.0 + sum(a[n] not in (None, v) for n, v in self.favoured.to_dict().items())
               for a in archs]  # fmt: skip
        return np.asarray(off), np.asarray(off)


def test_on_target_takes_the_most_probable_draw_the_profile_puts_on_the_target():
    _, search = _fbnet()
    family = search.family
    favoured = family.smallest_arch()
    with torch.no_grad():
        for c in search.choices:
            if favoured[c.name] is not None:
                search.logits[c.name][c.options.index(favoured[c.name])] = 1.0
    profile = _DistanceProfile(favoured)
    arch, drawn = select_on_target(search, profile, 1.0, 300, 0.05, seed=0)
    assert arch == favoured and drawn["within_tolerance"] >= 1 and drawn["distinct"] > 1
    arch, drawn = select_on_target(search, profile, 4.0, 300, 0.05, seed=0)
    (estimate,), _ = profile.estimate(family, [arch])
    assert estimate == 4.0 and 1 <= drawn["within_tolerance"] < drawn["distinct"]
    log_p = {c.name: torch.log_softmax(search.logits[c.name].detach(), 0) for c in search.choices}
    own = sum(float(log_p[c.name][c.options.index(arch[c.name])]) for c in search.choices
              if arch[c.name] is not None)  # fmt: skip
    assert drawn["log_probability"] == pytest.approx(own)
    assert select_on_target(search, profile, 4.0, 300, 0.05, seed=0) == (arch, drawn)
    arch, drawn = select_on_target(search, profile, 1e-6, 300, 0.05, seed=0)  # unreachable
    assert drawn["within_tolerance"] == 0 and arch == favoured


def _trained(profile, **overrides):
    settings = OneShotConfig(**{"method": "fbnet", "epochs": 3, "batch_size": 8,
                                "arch_learning_rate": 0.1, **overrides})  # fmt: skip
    task, search = _fbnet()
    history = train_fbnet(search, task, settings, profile, seed=0)
    return search, history


def test_fbnet_training_is_deterministic_and_follows_the_latency_target(mobilenet_profile):
    _, profile = mobilenet_profile
    family = _fbnet()[1].family
    schedules = [family.layer_schedule(a) for a in (family.smallest_arch(), family.teacher_arch())]
    low, high = (profile.table.predict(s) for s in schedules)
    runs = {}
    for name, target in (("low", low), ("high", high)):
        # an arch step large enough that 3 epochs part the two targets by ~20%, not ~3%
        runs[name] = [_trained(profile, latency_target_ms=target, latency_weight=20.0,
                               arch_learning_rate=0.5) for _ in range(2)]  # fmt: skip
        (a, history), (b, _) = runs[name]
        assert all(torch.equal(a.logits[n], b.logits[n]) for n in a.logits)
        assert len(history) == 3 and history[-1]["val"]["accuracy"] >= 0
    expected = {name: runs[name][0][1][-1]["expected_ms"] for name in runs}
    assert expected["low"] < expected["high"]


def _fbnet_config(tmp_path, profile_path, **oneshot) -> str:
    settings = {"method": "fbnet", "epochs": 2, "retrain_epochs": 1, "batch_size": 32,
                "profile": str(profile_path), "latency_target_ms": 0.5, **oneshot}  # fmt: skip
    text = json.dumps({"data": {"name": "digits"}, "latency": ONE_ROUND,  # the profile's size
                       "supernet": {"name": "mobilenet", "overrides": SMALL},
                       "oneshot": settings})  # fmt: skip
    path = tmp_path / "fbnet.yaml"
    path.write_text(text)
    return str(path)


@pytest.fixture(scope="module")
def digits_profile(tmp_path_factory):
    """A profile of the small MobileNet on digits, as hwnas profile create makes it."""
    config = tmp_path_factory.mktemp("config") / "c.json"
    config.write_text(json.dumps({"data": {"name": "digits"},
                                  "supernet": {"name": "mobilenet", "overrides": SMALL},
                                  "latency": FAST_LATENCY.model_dump()}))  # fmt: skip
    out = config.parent / "digits.json"
    r = cli("profile", "create", "--config", config, "--out", out, "--samples", "12",
            "--rounds", "1")  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out


def test_fbnet_job_reports_target_estimate_and_measured_latency(tmp_path, digits_profile):
    out = tmp_path / "out"
    r = cli("oneshot", "--config", _fbnet_config(tmp_path, digits_profile), "--out", out)
    assert r.returncode == 0, r.stderr
    summary = json.loads((out / "oneshot.json").read_text())
    assert set(summary["derived"]) == {"argmax", "on_target"}
    for result in summary["derived"].values():
        assert result["latency_target_ms"] == 0.5
        measured = result["metrics"]["latency_ms"]
        assert result["target_error_pct"] == pytest.approx(100 * (measured / 0.5 - 1))
        assert result["profile_estimate_ms"] > 0 and (out / result["exported"]["onnx"]).is_file()
    assert summary["derived"]["on_target"]["draws"] == 2000
    assert len(summary["history"]) == 2 and set(summary["probabilities"]) >= {"resolution"}


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [({"profile": None}, "oneshot.profile"),
     ({"latency_target_ms": None}, "oneshot.latency_target_ms"),
     ({"selections": ["argmax", "perturbation"]}, "argmax and on_target"),
     ({"warmup_epochs": 2}, "warmup_epochs"),
     ({"profile": "/nonexistent/p.json"}, "oneshot.profile")],
)  # fmt: skip
def test_bad_fbnet_settings_are_refused_before_training(tmp_path, overrides, fragment):
    out = tmp_path / "out"
    config = _fbnet_config(tmp_path, tmp_path / "absent.json", **overrides)
    assert_user_error(cli("oneshot", "--config", config, "--out", out), fragment)
    assert not out.exists()


def test_fbnet_refuses_a_profile_of_another_space(tmp_path, digits_profile):
    out = tmp_path / "out"
    config = json.loads(Path(_fbnet_config(tmp_path, digits_profile)).read_text())
    config["supernet"]["overrides"] = {**SMALL, "kernels": [3]}
    path = tmp_path / "other.json"
    path.write_text(json.dumps(config))
    assert_user_error(cli("oneshot", "--config", path, "--out", out), "made for another space")
    assert not out.exists()
