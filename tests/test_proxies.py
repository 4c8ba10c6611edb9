"""Zero-cost proxies: hand-checked values on tiny networks, the contract on every family,
the evaluator in a run, and the published scores they are validated against."""

import gzip
import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr
from torch import nn

from helpers import cli, image_spec, random_image_task, random_text_task, token_spec
from hwnas.benchmarks.nb201 import load_nb201
from hwnas.benchmarks.proxies import effective_cells, proxy_features
from hwnas.benchmarks.zero_cost import load_published, naslib_cell
from hwnas.config import validated
from hwnas.errors import HwnasError
from hwnas.evaluate.base import InvalidArch
from hwnas.evaluate.proxy import ProxyEvaluator
from hwnas.families import FAMILIES, build_family
from hwnas.families.nb201.cell import cell_space, parse_cell
from hwnas.proxies import PROXIES, ProxyBatch, at_init, score_proxies
from hwnas.proxies.base import FeatureInput
from hwnas.proxies.combine import combined_search, rank_features

torch.set_num_threads(1)


def total(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """A loss whose gradient is known by hand: the outputs' sum."""
    return outputs.sum()


def score(name: str, model: nn.Module, batch: ProxyBatch) -> float:
    return score_proxies([name], model, batch)[name][0]


def two_layers() -> nn.Sequential:
    net = nn.Sequential(nn.Linear(3, 2, bias=False), nn.Linear(2, 1, bias=False))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -2.0, 3.0], [0.5, 1.0, -1.0]]))
        net[1].weight.copy_(torch.tensor([[2.0, -1.0]]))
    return net


def test_counting_proxies_by_hand():
    net, batch = two_layers(), ProxyBatch(torch.zeros(5, 3), torch.zeros(5), total)
    assert score("params", net, batch) == 3 * 2 + 2 * 1
    assert score("flops", net, batch) == 2 * (3 * 2 + 2 * 1)  # one example, 2 per multiply-add
    assert score("l2_norm", net, batch) == pytest.approx(math.sqrt(16.25) + math.sqrt(5))
    conv = nn.Conv2d(1, 2, 3, padding=1, bias=False)
    image = ProxyBatch(torch.zeros(4, 1, 4, 4), torch.zeros(4), total)
    assert score("flops", conv, image) == 2 * (2 * 4 * 4) * 9


def test_synflow_by_hand():
    """With |w| and an all-ones input, R = sum_j |v_j| sum_i |W_ji| = 2*6 + 1*2.5; each layer's
    sum of |w dR/dw| is R again, so synflow is log(2R), whatever the batch or batch norm."""
    net = two_layers()
    batch = ProxyBatch(torch.randn(5, 3), torch.zeros(5), total)
    assert score("synflow", net, batch) == pytest.approx(math.log(2 * 14.5))
    normed = nn.Sequential(net[0], nn.BatchNorm1d(2), net[1])
    assert score("synflow", normed, batch) == pytest.approx(math.log(2 * 14.5))
    cut = nn.Linear(3, 1, bias=False)
    nn.init.zeros_(cut.weight)
    assert score("synflow", cut, batch) == -math.inf  # nothing flows


def test_gradient_proxies_by_hand():
    """One linear layer w on the input x = (1, 2) with the outputs' sum as loss: dL/dw = x."""
    net = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[3.0, -1.0]]))
    batch = ProxyBatch(torch.tensor([[1.0, 2.0]]), torch.zeros(1), total)
    assert score("grad_norm", net, batch) == pytest.approx(math.sqrt(5))
    assert score("snip", net, batch) == pytest.approx(3 * 1 + 1 * 2)
    assert score("plain", net, batch) == pytest.approx(3 * 1 - 1 * 2)
    assert score("grasp", net, batch) == 0.0  # a linear loss has no curvature
    # fisher: per example, (activation * its gradient)^2 / 2 = (w.x)^2 / 2
    assert score("fisher", net, batch) == pytest.approx(0.5 * (3 - 2) ** 2)


def test_grasp_on_a_quadratic_loss():
    """L = (w.x)^2 / 2: g = (w.x) x, H = x x^T, so -w.(H g) = -(w.x)^2 |x|^2."""
    net = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[3.0, -1.0]]))
    batch = ProxyBatch(torch.tensor([[1.0, 2.0]]), torch.zeros(1), lambda o, t: 0.5 * (o**2).sum())
    assert score("grasp", net, batch) == pytest.approx(-((3 - 2) ** 2) * 5)


def test_nwot_and_jacov_by_hand():
    """Codes of (1, -1) and (1, 1) are 10 and 11: K = [[2, 1], [1, 2]], log det K = log 3."""
    inputs = torch.tensor([[1.0, -1.0], [1.0, 1.0]])
    batch = ProxyBatch(inputs, torch.zeros(2), total)
    assert score("nwot", nn.Sequential(nn.ReLU()), batch) == pytest.approx(math.log(3))
    # identical codes: K is singular and the score undefined
    same = ProxyBatch(torch.ones(2, 2), torch.zeros(2), total)
    assert score("nwot", nn.Sequential(nn.ReLU()), same) == -math.inf
    # a network that ignores its input scores as if every example were the same (no NaN)
    torch.manual_seed(0)
    examples = ProxyBatch(torch.randn(4, 16), torch.zeros(4), total)
    dead = nn.Linear(16, 3)
    with torch.no_grad():
        dead.weight.zero_()
    worst = score("jacov", dead, examples)
    assert math.isfinite(worst)
    alive = score("jacov", nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 3)), examples)
    assert alive > worst


SPECS = {"image": image_spec(1, 3, size=16), "tokens": token_spec(16)}
TASKS = {"image": lambda: random_image_task(classes=3), "tokens": random_text_task}
CASES = [(f, s) for f in FAMILIES for s in SPECS]


@pytest.mark.parametrize(("family", "kind"), CASES, ids=[f"{f}-{s}" for f, s in CASES])
def test_every_proxy_on_every_family(family, kind):
    """Each proxy scores a small sub-network of each family on its task's batch: a float,
    the same twice, the network left as it was."""
    torch.manual_seed(0)
    try:
        model = build_family(family, FAMILIES[family].small_overrides, SPECS[kind])
    except HwnasError:
        pytest.skip(f"{family} does not serve {kind} tasks")
    task = TASKS[kind]()
    inputs, targets = next(iter(task.train_batches(8, torch.Generator().manual_seed(0))))
    batch = ProxyBatch(inputs, targets, task.loss)
    net = at_init(model.extract(model.teacher_arch()), seed=0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    first = score_proxies(list(PROXIES), net, batch, seed=1)
    torch.manual_seed(123)  # the scores must come from their own seed, not the global state
    inputs_before = batch.inputs.clone()
    again = score_proxies(list(PROXIES), net, batch, seed=1)
    assert torch.equal(batch.inputs, inputs_before)
    assert {k: v for k, (v, _) in first.items()} == {k: v for k, (v, _) in again.items()}
    for name, (value, seconds) in first.items():
        assert isinstance(value, float) and not math.isnan(value), name
        assert seconds >= 0
    assert first["params"][0] == sum(p.numel() for p in net.parameters())
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_at_init_is_seeded_and_redraws_trained_weights():
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    with torch.no_grad():
        net[0].weight.fill_(7.0)
    a, b, c = at_init(net, 0), at_init(net, 0), at_init(net, 1)
    assert torch.equal(a[0].weight, b[0].weight) and not torch.equal(a[0].weight, c[0].weight)
    assert not torch.equal(a[0].weight, net[0].weight) and (net[0].weight == 7).all()


def test_token_inputs_are_perturbed_at_the_embedding():
    net = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 2))
    feed = FeatureInput(net, torch.tensor([[1, 2, 3]]))
    features = feed.features()
    assert features.shape == (1, 3, 4)
    assert torch.allclose(feed.run(features), net(torch.tensor([[1, 2, 3]])))
    assert not torch.allclose(feed.run(features + 1), net(torch.tensor([[1, 2, 3]])))
    with pytest.raises(HwnasError, match="no nn.Embedding"):
        FeatureInput(nn.Linear(3, 1), torch.tensor([[1, 2, 3]]))


def test_batches_proxies_cannot_score_are_refused_in_one_line():
    with pytest.raises(
        HwnasError, match="nwot compares examples: it needs a batch of at least 2, got 1"
    ):
        score_proxies(["nwot"], nn.Linear(2, 1), ProxyBatch(torch.zeros(1, 2), None, total))
    with pytest.raises(HwnasError, match="no nn.Embedding"):
        score_proxies(["params"], nn.Linear(2, 1), ProxyBatch(torch.ones(2, 2).long(), None, total))
    inplace = nn.Sequential(nn.ReLU(inplace=True), nn.Linear(4, 2))
    batch = ProxyBatch(torch.randn(4, 4), torch.zeros(4), total)
    before = batch.inputs.clone()
    assert math.isfinite(score_proxies(["jacov", "snip"], inplace, batch)["jacov"][0])
    assert torch.equal(batch.inputs, before)


def test_the_evaluator_draws_its_networks_afresh_from_the_family():
    """``weights: init`` scores the family's own initial values (every parameter, a position
    embedding included), the same for any trained state of the run's super-network."""
    from hwnas.config import ProxyConfig
    from hwnas.evaluate.context import EvaluationContext

    task = random_text_task()
    trained = build_family("transformer", FAMILIES["transformer"].small_overrides, task.spec)
    fresh_state = {k: v.clone() for k, v in trained.state_dict().items()}
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(1.0)

    def evaluator(weights: str) -> ProxyEvaluator:
        context = EvaluationContext(task, trained, "transformer", trained.extract, "measured",
                                    None, proxies=ProxyConfig(names=["synflow", "grad_norm"],
                                    batch_size=4, weights=weights), seed=0)  # fmt: skip
        return ProxyEvaluator.create(context)

    arch = trained.teacher_arch()
    at_start, as_trained = evaluator("init").evaluate(arch), evaluator("trained").evaluate(arch)
    assert at_start != as_trained
    with torch.no_grad():
        for name, p in trained.named_parameters():
            p.copy_(fresh_state[name] + 5.0)
    assert evaluator("init").evaluate(arch) == at_start
    with pytest.raises(HwnasError, match="proxies.batch_size 4096"):
        ProxyEvaluator.create(EvaluationContext(task, trained, "transformer", trained.extract,
                              "measured", None, proxies=ProxyConfig(names=["nwot"],
                              batch_size=4096), seed=0))  # fmt: skip


def test_unknown_proxies_are_refused_in_one_line():
    with pytest.raises(HwnasError, match="unknown proxy 'bogus'; known: synflow"):
        score_proxies(["bogus"], nn.Linear(2, 1), ProxyBatch(torch.zeros(1, 2), None, total))
    base = {"proxies": {"names": ["nwot"]}, "quantize": {"precisions": ["int8"]}}
    with pytest.raises(HwnasError, match="cannot be combined with quantize.precisions"):
        validated(base)


def test_the_evaluator_records_proxies_and_refuses_undefined_scores():
    model = build_family("nb201", {"channels": 4, "cells": 1}, image_spec(1, 3, size=8))
    task = random_image_task(size=8, classes=3)
    inputs, targets = next(iter(task.train_batches(8, torch.Generator().manual_seed(0))))
    evaluator = ProxyEvaluator(["synflow", "nwot"], lambda arch: at_init(model.extract(arch), 0),
                               ProxyBatch(inputs, targets, task.loss), seed=0)  # fmt: skip
    space = model.space()
    convs = space.make(dict.fromkeys(space.names, "nor_conv_3x3"))
    scores = evaluator.evaluate(convs)
    assert set(scores) == {"proxy_synflow", "proxy_nwot"} == set(evaluator.metrics)
    assert scores == evaluator.evaluate(convs)
    with pytest.raises(InvalidArch, match="proxy synflow is undefined"):
        evaluator.evaluate(space.make(dict.fromkeys(space.names, "none")))


# -- the published scores ----------------------------------------------------------------


def test_naslib_cells_are_read_in_naslib_order():
    cell = naslib_cell("(0, 2, 3, 2, 3, 1)")  # edges (0,1),(0,2),(0,3),(1,2),(1,3),(2,3)
    assert cell == {"edge_0_1": "skip_connect", "edge_0_2": "nor_conv_3x3",
                    "edge_1_2": "nor_conv_3x3", "edge_0_3": "nor_conv_1x1",
                    "edge_1_3": "nor_conv_1x1", "edge_2_3": "none"}  # fmt: skip
    for bad in ("(0, 2, 3)", "(0, 2, 3, 2, 3, 9)", "x", "(0, 2, 3, 2, 3, -1)"):
        with pytest.raises(HwnasError, match="not a NAS-Bench-201 cell"):
            naslib_cell(bad)


def _published(path, content) -> None:
    path.write_bytes(gzip.compress(content if isinstance(content, bytes) else
                                   json.dumps(content).encode()))  # fmt: skip


ENTRY = {"val_accuracy": 80.0, "synflow": {"score": 1.0, "time": 0.1}}
DAMAGED = {
    "not-json": b"{oops",
    "not-gzip": None,
    "a-list": [1, 2],
    "no-dataset": {"cifar100": {"(0, 0, 0, 0, 0, 0)": ENTRY}},
    "bad-cell": {"cifar10": {"(0, 0)": ENTRY}},
    "no-accuracy": {"cifar10": {"(0, 0, 0, 0, 0, 0)": {"synflow": {"score": 1}}}},
    "text-score": {"cifar10": {"(0, 0, 0, 0, 0, 0)": {**ENTRY, "snip": {"score": "high"}}}},
}


@pytest.mark.parametrize("kind", list(DAMAGED))
def test_damaged_published_scores_are_one_line(tmp_path, kind):
    path = tmp_path / "zc.json.gz"
    if DAMAGED[kind] is None:
        path.write_bytes(b"plain bytes")
    else:
        _published(path, DAMAGED[kind])
    with pytest.raises(HwnasError) as info:
        load_published(path, "cifar10")
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_published_scores_read_with_an_undefined_one(tmp_path):
    path = tmp_path / "zc.json.gz"
    minus_inf = {**ENTRY, "nwot": {"score": -math.inf}}
    _published(path, {"cifar10": {"(0, 2, 3, 2, 3, 1)": minus_inf}})
    (cell,) = load_published(path, "cifar10")
    assert cell.accuracy == 80.0 and cell.scores == {"synflow": 1.0, "nwot": -math.inf}


def test_data_free_proxies_agree_with_the_published_ones(nb201_path):
    """synflow, params and flops of the family's NAS-Bench-201 network rank 16 published
    cells as NAS-Bench-Suite-Zero did (the figure over all cells is in the docs)."""
    path = nb201_path.parent / "zc_nasbench201.json.gz"
    if not path.exists():
        pytest.skip(f"{path} is not here")
    cells = load_published(path, "cifar10")[::45]
    model = build_family("nb201", {}, image_spec(3, 10, size=32))
    batch = ProxyBatch(torch.zeros(2, 3, 32, 32), torch.zeros(2, dtype=torch.long), total)
    ours = {name: [] for name in ("synflow", "params", "flops")}
    for cell in cells:
        net = at_init(model.extract(model.space().make(cell.ops)), seed=0)
        for name, (value, _) in score_proxies(list(ours), net, batch).items():
            ours[name].append(value)
    for name, values in ours.items():
        published = [cell.scores[name] for cell in cells]
        rho = spearmanr(np.array(values), np.array(published)).statistic
        assert rho >= 0.97, (name, rho)


def test_bench_proxies_ranks_against_the_published_scores_and_resumes(tmp_path):
    cells = ["(0, 2, 3, 2, 3, 1)", "(1, 1, 1, 1, 1, 1)", "(2, 2, 2, 2, 2, 2)", "(0, 4, 3, 0, 2, 0)"]
    sizes = {"(1, 1, 1, 1, 1, 1)": 0.0, "(0, 4, 3, 0, 2, 0)": 0.1, "(0, 2, 3, 2, 3, 1)": 0.6,
             "(2, 2, 2, 2, 2, 2)": 1.1}  # fmt: skip
    path = tmp_path / "zc.json.gz"
    _published(path, {"cifar10": {c: {"val_accuracy": 50 + 10 * sizes[c],
                                      "params": {"score": sizes[c]}} for c in cells}})  # fmt: skip
    out = tmp_path / "out"
    args = ("bench", "proxies", "--data", path, "--out", out, "--proxies", "params,nwot",
            "--batch-size", "8")  # fmt: skip
    assert cli(*args).returncode == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["cells"] == 4 and set(summary["proxies"]) == {"params", "nwot"}
    assert summary["proxies"]["params"]["spearman_with_published"] == pytest.approx(1.0)
    assert summary["proxies"]["params"]["spearman_with_accuracy"] == pytest.approx(1.0)
    assert summary["proxies"]["nwot"]["spearman_with_published"] is None  # none published
    reseeded = cli(*args, "--seed", "5")
    assert reseeded.returncode == 2 and "scored with other settings" in reseeded.stderr
    scored = (out / "scores.jsonl").read_text()
    assert cli(*args).returncode == 0  # every cell already scored: nothing is scored again
    assert (out / "scores.jsonl").read_text() == scored
    other = cli("bench", "proxies", "--data", path, "--out", out, "--proxies", "synflow")
    assert other.returncode == 2 and "scored other proxies" in other.stderr
    for bad, message in ((("--dataset", "mnist"), "--dataset 'mnist'"),
                         (("--proxies", "magic"), "unknown proxy 'magic'"),
                         (("--images", "python"), "--images 'python'")):  # fmt: skip
        result = cli("bench", "proxies", "--data", path, "--out", tmp_path / "x", *bad)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert not (tmp_path / "x").exists()


# -- proxies as predictor features of the table search -------------------------------------


def _convolutions(cell: str) -> float:
    """A stand-in proxy known by hand: convolutions in the cell, -inf with no path."""
    ops = parse_cell(cell).values()
    return -math.inf if set(ops) == {"none"} else sum(op.startswith("nor_conv") for op in ops)


CACHE_SETTINGS = {"proxies": ["nwot"], "dataset": "cifar10", "images": "digits",
                  "images_path": None, "batch_size": 32, "seed": 0}  # fmt: skip


def _cache(folder, cells, settings=None):
    """A proxy cache as ``score_cells`` writes it."""
    folder.mkdir(parents=True)
    settings = settings or CACHE_SETTINGS
    (folder / "settings.json").write_text(json.dumps(settings))
    lines = [json.dumps({"cell": c, "scores": {"nwot": _convolutions(c)},
                         "seconds": {"nwot": 0.1}}) for c in cells]  # fmt: skip
    (folder / "scores.jsonl").write_text("".join(line + "\n" for line in lines))
    return folder


def test_proxy_features_rank_each_cell_by_its_effective_cells_score(tmp_path):
    cells = effective_cells()
    assert len(cells) == 9445 and len(set(cells)) == len(cells)
    parts = [_cache(tmp_path / "part1", cells[::2]), _cache(tmp_path / "part2", cells[1::2])]
    label, lookup = proxy_features(parts)
    assert label == "proxies:nwot(cifar10, digits, batch 32, seed 0)"
    genomes = np.array([[3, 3, 3, 3, 3, 3],  # six convolutions, as 63 other cells have
                        [2, 3, 2, 3, 2, 3],
                        [3, 0, 0, 3, 0, 0],  # one: edge 0->1 leads nowhere, so it is dead
                        [1, 0, 0, 3, 0, 4],  # the same effective cell: the same value
                        [0, 0, 0, 1, 0, 0],  # no convolution on a path
                        [0, 0, 0, 0, 0, 0]])  # no path at all: ranks lowest  # fmt: skip
    top, tied, one, same_one, no_conv, no_path = lookup(genomes)[:, 0]
    counts = np.array([_convolutions(c) for c in cells])
    finite = counts[np.isfinite(counts)]
    assert top == tied == pytest.approx(1 - 63 / 2 / len(finite))  # ties share their mean rank
    assert one == same_one
    assert top > one > no_conv > no_path == 0.0
    assert np.mean(finite < 1) < one <= np.mean(finite <= 1)  # a rank quantile of the cache


def test_proxy_caches_that_do_not_cover_the_space_are_refused_before_a_search(tmp_path):
    cells = effective_cells()
    with pytest.raises(HwnasError, match=r"1 of 9445 effective cells have no score"):
        proxy_features([_cache(tmp_path / "short", cells[1:])])
    other = {**CACHE_SETTINGS, "batch_size": 64}
    mixed = [_cache(tmp_path / "a", cells[::2]), _cache(tmp_path / "b", cells[1::2], other)]
    with pytest.raises(HwnasError, match="scored with other settings"):
        proxy_features(mixed)
    with pytest.raises(HwnasError, match="no scores.jsonl"):
        proxy_features([tmp_path / "nowhere"])
    damaged = _cache(tmp_path / "damaged", cells)
    (damaged / "settings.json").write_text('["nwot"]')
    with pytest.raises(HwnasError, match="settings.json: not the settings"):
        proxy_features([damaged])
    (damaged / "settings.json").write_text(json.dumps({"proxies": ["nwot"], "seed": 0}))
    with pytest.raises(HwnasError, match="no batch_size, dataset, images, images_path"):
        proxy_features([damaged])


def test_bench_nb201_searches_with_the_proxies_as_features(tmp_path, nb201_path):
    cache = _cache(tmp_path / "cache", effective_cells())
    bench = load_nb201(nb201_path, features=proxy_features([cache]))
    archs = bench.space.enumerate()[:50]
    assert bench.space.features(archs).shape[1] == cell_space().features(archs).shape[1] + 1
    # a plain run, or one with another cache's scores, is not resumed
    assert bench.name == "nb201-cifar10-pixel3+proxies:nwot(cifar10, digits, batch 32, seed 0)"
    reseeded = _cache(tmp_path / "reseeded", effective_cells(), {**CACHE_SETTINGS, "seed": 1})
    assert load_nb201(nb201_path, features=proxy_features([reseeded])).name != bench.name
    out = tmp_path / "out"
    args = ("bench", "nb201", "--data", nb201_path, "--searchers", "linas", "--seeds", "1",
            "--budget", "12", "--out", out)  # fmt: skip
    assert cli(*args, "--proxy-cache", cache).returncode == 0
    assert json.loads((out / "summary.json").read_text())["benchmark"] == bench.name
    missing = cli(*args[:-1], tmp_path / "out2", "--proxy-cache", tmp_path / "nowhere")
    assert missing.returncode == 2 and "proxy cache" in missing.stderr
    assert not (tmp_path / "out2").exists()


# -- the learned combination ---------------------------------------------------------------


def test_the_combination_learns_which_proxies_rank_and_exploits_them():
    """Quality is a monotone function of two of five proxies (one of them reversed-scale,
    one with undefined scores): 20 queries fit a combination that ranks better than either
    alone, and greedy queries then reach the best candidate."""
    rng = np.random.default_rng(0)
    n = 400
    a, b = rng.random(n), rng.random(n)
    quality = np.exp(a + b)  # skewed, like accuracy: ranks matter, not values
    raw = np.column_stack([a * 1e6, np.log(b), rng.random(n), rng.random(n), rng.random(n)])
    raw[:3, 2] = -np.inf
    features = rank_features(raw)
    asked: list[int] = []
    search = combined_search(features, lambda i: asked.append(i) or quality[i], 50, seed=1)
    assert asked == search.queried and len(set(asked)) == 50
    rho = spearmanr(search.combinations[19].predict(features), quality).statistic
    alone = max(spearmanr(features[:, j], quality).statistic for j in range(5))
    assert rho > 0.9 and alone < 0.8
    assert search.best_after(50) == quality.max()
    weights = search.combinations[-1].weights
    assert (weights >= 0).all() and weights[:2].min() > 5 * weights[2:].max()
    again = combined_search(features, lambda i: quality[i], 50, seed=1)
    assert again.queried == search.queried


def test_the_combination_refuses_what_it_cannot_use():
    with pytest.raises(ValueError, match="NaN"):
        rank_features(np.array([[1.0], [math.nan]]))
    with pytest.raises(ValueError, match="between 1 and the 4 candidates"):
        combined_search(np.zeros((4, 2)), lambda i: 0.0, 5)
