import itertools

import numpy as np
import pytest

from helpers import OBJECTIVES, toy_bench
from hwnas.benchmarks.compare import Scorer
from hwnas.benchmarks.table import TableBenchmark
from hwnas.search import SEARCHERS, make_searcher
from hwnas.store import Store
from hwnas.study import Study

NAMES = sorted(SEARCHERS)


def evaluations(name: str, seed: int, path, bench: TableBenchmark, budget: int) -> list:
    with Store(path) as store:
        return Study(
            space=bench.space,
            evaluator=bench,
            objectives=OBJECTIVES,
            searcher=make_searcher(name, bench.space, OBJECTIVES, seed=seed),
            store=store,
            run_id="r",
            budget=budget,
        ).optimize()


def run(name: str, seed: int, tmp_path, budget: int = 40, drop: int = 0) -> list[str]:
    path = tmp_path / f"{name}-{seed}-{drop}.sqlite"
    return [e.arch_key for e in evaluations(name, seed, path, toy_bench(drop=drop), budget)]


@pytest.mark.parametrize("name", NAMES)
def test_searcher_is_deterministic_for_a_seed_and_never_repeats(name, tmp_path):
    first = run(name, 3, tmp_path / "a")
    assert first == run(name, 3, tmp_path / "b")
    assert len(first) == 40 and len(set(first)) == 40
    assert first != run(name, 4, tmp_path / "c")


@pytest.mark.parametrize("name", NAMES)
def test_searcher_survives_archs_missing_from_the_table(name, tmp_path):
    keys = run(name, 0, tmp_path, budget=60, drop=40)
    assert len(set(keys)) == 60


def test_searchers_stop_when_the_space_is_exhausted(tmp_path):
    for name in ("random", "nsga2", "linas"):
        keys = run(name, 0, tmp_path / name, budget=500)
        assert sorted(keys) == sorted(a.key for a in toy_bench().space.enumerate())


def additive_bench(seed: int = 0) -> TableBenchmark:
    """5^5 archs; each choice adds to accuracy and latency, a larger op costing more of both."""
    rng = np.random.default_rng(seed)
    gain, cost = rng.uniform(0, 1, (5, 5)), rng.uniform(0, 1, (5, 5))
    gain, cost = np.sort(gain, axis=1), np.sort(cost, axis=1)
    rows = []
    for combo in itertools.product(range(5), repeat=5):
        acc = sum(gain[c, o] for c, o in enumerate(combo)) + rng.normal(0, 0.05)
        lat = sum(cost[c, o] for c, o in enumerate(combo)) + rng.normal(0, 0.05)
        row = {f"c{c}": f"op{o}" for c, o in enumerate(combo)}
        rows.append({**row, "acc": str(acc), "lat": str(lat)})
    return TableBenchmark(rows, [f"c{c}" for c in range(5)], {"acc": "acc", "lat": "lat"})


def test_linas_beats_random_and_nsga2_on_a_learnable_problem(tmp_path):
    """Predictors in the loop must pay off where the objectives are learnable, on every seed."""
    bench = additive_bench()
    scorer = Scorer(bench, OBJECTIVES)

    def final_ratio(name: str, seed: int) -> float:
        done = evaluations(name, seed, tmp_path / f"{name}{seed}.sqlite", bench, budget=100)
        return scorer.curve([e.metrics for e in done])[-1]

    for seed in range(3):
        linas = final_ratio("linas", seed)
        assert linas > final_ratio("random", seed) and linas > final_ratio("nsga2", seed)
