"""Gradient one-shot search: the mixed network, the training of its architecture weights,
both selections and the ``hwnas oneshot`` job."""

import json

import pytest
import torch

from helpers import cli, random_image_task
from hwnas.config import OneShotConfig
from hwnas.families import build_family
from hwnas.families.nb201.cell import EDGE_NAMES, OPERATIONS
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
    for edge, lost in drops.items():  # the op kept is the one whose removal cost most
        assert cell[edge] == max(lost, key=lost.get)
    family.space().make(cell)  # a cell of the family's space
    assert network.mask is None  # selection worked on a copy


def _config(tmp_path, **oneshot) -> str:
    settings = {"epochs": 1, "tune_steps": 1, "retrain_epochs": 1, "batch_size": 32, **oneshot}
    text = json.dumps({"data": {"name": "digits"}, "latency": {"rounds": 1},
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
