import numpy as np
import pytest

from helpers import OBJECTIVES, toy_bench
from hwnas.search import SEARCHERS, make_searcher
from hwnas.store import Store
from hwnas.study import Study

NAMES = sorted(SEARCHERS)


def run(name: str, seed: int, tmp_path, budget: int = 40, drop: int = 0) -> list[str]:
    bench = toy_bench(drop=drop)
    with Store(tmp_path / f"{name}-{seed}-{drop}.sqlite") as store:
        study = Study(
            space=bench.space,
            evaluator=bench,
            objectives=OBJECTIVES,
            searcher=make_searcher(name, bench.space, OBJECTIVES, seed=seed),
            store=store,
            run_id="r",
            budget=budget,
        )
        return [e.arch_key for e in study.optimize()]


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


def test_linas_finds_more_of_the_front_than_random(tmp_path):
    """Predictors in the loop must pay off on a smooth problem, on every seed tried."""
    bench = toy_bench()
    keys, values = bench.entries()
    F = np.column_stack([-values[:, 0], values[:, 1]])
    from hwnas.pareto import pareto_mask

    front = {k for k, on in zip(keys, pareto_mask(F), strict=True) if on}
    for seed in range(3):
        linas = set(run("linas", seed, tmp_path / "l", budget=40)) & front
        rand = set(run("random", seed, tmp_path / "r", budget=40)) & front
        assert len(linas) > len(rand)
