import itertools

import numpy as np
import pytest

from hwnas.errors import HwnasError
from hwnas.pareto import (
    Objective,
    crowding_distance,
    feasible_mask,
    hypervolume,
    knee_index,
    non_dominated_sort,
    objective_matrix,
    pareto_mask,
    running_hypervolume,
)


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all(a <= b) and np.any(a < b))


def brute_fronts(F: np.ndarray) -> list[set[int]]:
    remaining, fronts = set(range(len(F))), []
    while remaining:
        front = {i for i in remaining if not any(dominates(F[j], F[i]) for j in remaining)}
        fronts.append(front)
        remaining -= front
    return fronts


def brute_hypervolume(F: np.ndarray, ref: np.ndarray) -> float:
    """Exact cell decomposition over the grid of all coordinates inside the reference box."""
    inside = F[np.all(F < ref, axis=1)]
    grids = [np.unique(np.r_[inside[:, j], ref[j]]) for j in range(len(ref))]
    total = 0.0
    for cell in itertools.product(*(range(len(g) - 1) for g in grids)):
        low = np.array([g[c] for g, c in zip(grids, cell, strict=True)])
        if np.any(np.all(inside <= low, axis=1)):
            total += np.prod([g[c + 1] - g[c] for g, c in zip(grids, cell, strict=True)])
    return total


def tied_points(seed: int, n: int, m: int) -> np.ndarray:
    """Small integer grid, so ties in single objectives and exact duplicates are common."""
    return np.random.default_rng(seed).integers(0, 6, size=(n, m)).astype(float)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("acc:max", Objective("acc", "max")),
        ("lat:min", Objective("lat", "min")),
        ("latency_ms:min<=5", Objective("latency_ms", "min", 5.0)),
        ("acc:max>=90", Objective("acc", "max", 90.0)),
        (" params : min <= 1e6 ", Objective("params", "min", 1e6)),
    ],
)
def test_parse_good_specs(spec: str, expected: Objective) -> None:
    assert Objective.parse(spec) == expected


@pytest.mark.parametrize(
    "spec",
    [
        "acc",
        "acc:",
        ":max",
        "acc:up",
        "a:b:min",
        "acc:max<=90",
        "lat:min>=5",
        "lat:min<=",
        "lat:min<=fast",
        "lat:min<=nan",
        "lat:min<5",
        "lat\n:fast",
    ],
)
def test_parse_bad_specs(spec: str) -> None:
    with pytest.raises(HwnasError) as info:
        Objective.parse(spec)
    message = str(info.value)
    assert repr(spec) in message
    assert "\n" not in message


def test_to_min_negates_max_on_floats_and_arrays() -> None:
    assert Objective("acc", "max").to_min(0.9) == -0.9
    assert Objective("lat", "min").to_min(3.0) == 3.0
    np.testing.assert_array_equal(Objective("acc", "max").to_min(np.array([1.0, -2.0])), [-1, 2])


def test_objective_matrix_and_feasibility() -> None:
    objectives = [Objective("acc", "max", 90.0), Objective("lat", "min", 5.0)]
    metrics = [
        {"acc": 95.0, "lat": 4.0},
        {"acc": 85.0, "lat": 1.0},
        {"acc": 90.0, "lat": 5.0, "extra": 1.0},
        {"acc": float("nan"), "lat": 1.0},
    ]
    F = objective_matrix(metrics, objectives)
    np.testing.assert_array_equal(F[:3], [[-95, 4], [-85, 1], [-90, 5]])
    assert feasible_mask(metrics, objectives).tolist() == [True, False, True, False]
    assert objective_matrix([], objectives).shape == (0, 2)


def test_missing_metric_is_named() -> None:
    with pytest.raises(HwnasError, match="'lat'"):
        objective_matrix([{"acc": 1.0}], [Objective("acc", "max"), Objective("lat")])


@pytest.mark.parametrize("m", [2, 3])
@pytest.mark.parametrize("seed", range(5))
def test_non_dominated_sort_matches_brute_force(seed: int, m: int) -> None:
    F = tied_points(seed, 40, m)
    fronts = non_dominated_sort(F)
    assert [set(f.tolist()) for f in fronts] == brute_fronts(F)


def test_non_dominated_sort_edge_cases() -> None:
    assert non_dominated_sort(np.zeros((0, 2))) == []
    fronts = non_dominated_sort(np.array([[1.0, 1.0], [1.0, 1.0], [2.0, 2.0]]))
    assert [f.tolist() for f in fronts] == [[0, 1], [2]]


@pytest.mark.parametrize("m", [2, 3, 4])
@pytest.mark.parametrize("seed", range(5))
def test_pareto_mask_matches_brute_force(seed: int, m: int) -> None:
    F = tied_points(seed, 50, m)
    F = np.vstack([F, F[:10]])  # guaranteed exact duplicates
    expected = [not any(dominates(q, p) for q in F) for p in F]
    assert pareto_mask(F).tolist() == expected


def test_pareto_mask_keeps_equal_points_and_handles_empty() -> None:
    F = np.array([[1.0, 2.0], [1.0, 2.0], [2.0, 1.0], [1.0, 3.0], [2.0, 2.0]])
    assert pareto_mask(F).tolist() == [True, True, True, False, False]
    assert pareto_mask(np.zeros((0, 2))).tolist() == []


def test_hypervolume_hand_computed() -> None:
    F = np.array([[1.0, 3.0], [2.0, 2.0], [3.0, 1.0]])
    assert hypervolume(F, [4.0, 4.0]) == pytest.approx(6.0)
    assert hypervolume(np.array([[1.0, 1.0, 1.0]]), [2.0, 3.0, 4.0]) == pytest.approx(6.0)
    assert hypervolume(np.array([[3.0], [1.0]]), [4.0]) == pytest.approx(3.0)
    assert hypervolume(np.zeros((0, 3)), [1.0, 1.0, 1.0]) == 0.0


@pytest.mark.parametrize(("m", "n"), [(2, 30), (3, 20), (4, 8)])
@pytest.mark.parametrize("seed", range(5))
def test_hypervolume_matches_brute_force(seed: int, m: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    F = np.vstack([tied_points(seed, n, m), rng.uniform(0, 5, size=(n, m))])
    ref = np.full(m, 5.0)
    assert hypervolume(F, ref) == pytest.approx(brute_hypervolume(F, ref), rel=1e-12)


@pytest.mark.parametrize("m", [2, 3, 4])
def test_points_outside_the_reference_box_add_nothing(m: int) -> None:
    F = np.random.default_rng(m).uniform(0, 1, size=(10, m))
    ref = np.ones(m)
    # Each outsider beats every point in all but one objective, where it reaches or passes ref.
    outside = np.full((2 * m, m), -1.0)
    for j in range(m):
        outside[j, j], outside[m + j, j] = 1.0, 2.0
    assert hypervolume(np.vstack([F, outside]), ref) == pytest.approx(hypervolume(F, ref))
    assert hypervolume(outside, ref) == 0.0


def test_knee_of_convex_front() -> None:
    F = np.array([[4.0, 1.0], [0.0, 10.0], [2.0, 2.0], [10.0, 0.0], [1.0, 4.0]])
    assert knee_index(F) == 2
    # Scaling an objective must not move the knee.
    assert knee_index(F * [1000.0, 1.0]) == 2


def test_knee_in_three_objectives_and_degenerate_fallback() -> None:
    F = np.array([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0], [0.3, 0.3, 0.3], [0.2, 0.5, 0.5]])
    assert knee_index(F) == 3
    # Point 0 is the extreme of two objectives, so there is no hyperplane: nearest the ideal.
    shared = np.array([[0.0, 0.0, 1.0], [1.0, 1.0, 0.0], [0.5, 0.2, 0.5]])
    assert knee_index(shared) == 2
    assert knee_index(np.array([[3.0, 4.0]])) == 0


def test_crowding_distance() -> None:
    F = np.array([[1.0, 2.0], [4.0, 0.0], [0.0, 4.0], [3.0, 1.0]])
    distance = crowding_distance(F)
    assert np.isinf(distance[[1, 2]]).all()
    np.testing.assert_allclose(distance[[0, 3]], [1.5, 1.25])
    assert np.isinf(crowding_distance(F[:2])).all()


def test_running_hypervolume_matches_the_front_of_each_prefix():
    rng = np.random.default_rng(3)
    points = [rng.uniform(0, 1, 2) if rng.random() > 0.2 else None for _ in range(60)]
    ref = np.ones(2)
    curve = running_hypervolume(points, ref)
    for i in range(len(points)):
        seen = np.array([p for p in points[: i + 1] if p is not None]).reshape(-1, 2)
        expected = hypervolume(seen[pareto_mask(seen)], ref) if len(seen) else 0.0
        assert curve[i] == pytest.approx(expected)
    assert all(b >= a for a, b in zip(curve, curve[1:], strict=False))
