"""Fixed, seeded, stratified train/validation/test index splits.

Every searched sub-network is scored on the validation split, so the split must be the same
on every run with the same seed (resume, comparisons between searchers) and must hold every
class in proportion, or small classes would make the accuracy objective noisy.
"""

from __future__ import annotations

import numpy as np

from hwnas.errors import HwnasError, KeyedError


def check_fraction(name: str, value: float, allow_zero: bool) -> None:
    """Refuse a split fraction outside (0, 1), or [0, 1) when the split may be empty."""
    low_ok = value >= 0 if allow_zero else value > 0
    if not (low_ok and value < 1):
        bound = "[0, 1)" if allow_zero else "(0, 1)"
        raise HwnasError(f"{name} must be in {bound}, got {value}")


def stratified_split(
    labels: np.ndarray, seed: int, val_fraction: float, test_fraction: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sorted index arrays ``(train, val, test)`` that are disjoint and cover ``labels``.

    Each class is shuffled with ``seed`` and its members get evenly spaced ranks in [0, 1); all
    samples are ordered by rank (ties broken at random) and the first ones go to test, the
    next to validation. Every prefix of that order is stratified to within one sample per
    class, and the split sizes are exact: ``round(n * fraction)``, at least 1 when asked for.
    """
    check_fraction("val_fraction", val_fraction, allow_zero=False)
    check_fraction("test_fraction", test_fraction, allow_zero=True)
    if val_fraction + test_fraction >= 1:
        raise KeyedError(
            "val_fraction",
            f"with the test share it must stay below 1, got {val_fraction} + {test_fraction}"
            " (the test share is the data set's own)",
        )
    labels = np.asarray(labels)
    n = len(labels)
    n_test = max(1, round(n * test_fraction)) if test_fraction > 0 else 0
    n_val = max(1, round(n * val_fraction))
    if n - n_test - n_val < 1:
        raise HwnasError(f"{n} samples are too few for a train, validation and test split")

    rng = np.random.default_rng(seed)
    rank = np.empty(n, dtype=np.float64)
    for value in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == value))
        rank[members] = (np.arange(len(members)) + 0.5) / len(members)
    tie_break = rng.permutation(n)
    order = np.lexsort((tie_break, rank))
    test = np.sort(order[:n_test])
    val = np.sort(order[n_test : n_test + n_val])
    train = np.sort(order[n_test + n_val :])
    return train, val, test
