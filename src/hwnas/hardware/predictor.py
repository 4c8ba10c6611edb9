"""Latency predictor: the lookup table's sum, corrected by what summing layers misses.

Summing isolated layers misses what happens between them in a whole network (memory
traffic between layers, caches shared by neighbours, the runtime's per-node work), and the
error is systematic: larger networks run relatively faster than their layers alone. A ridge
regression on the arch's features learns ``log(measured / table)``: a multiplicative
correction, so it transfers across sizes, and linear, so it is a handful of numbers that
a profile stores as plain JSON (no pickled model) and that cannot extrapolate wildly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.linear_model import RidgeCV

from hwnas.predictors import ALPHAS


@dataclass(frozen=True)
class LatencyPredictor:
    mean: tuple[float, ...]
    scale: tuple[float, ...]
    coef: tuple[float, ...]
    intercept: float
    alpha: float

    @classmethod
    def fit(
        cls, features: np.ndarray, table_ms: np.ndarray, measured_ms: np.ndarray
    ) -> LatencyPredictor:
        X = np.asarray(features, float)
        mean = X.mean(axis=0)
        scale = np.where(X.std(axis=0) > 1e-12, X.std(axis=0), 1.0)
        ridge = RidgeCV(alphas=ALPHAS).fit((X - mean) / scale, np.log(measured_ms / table_ms))
        return cls(
            tuple(map(float, mean)),
            tuple(map(float, scale)),
            tuple(map(float, ridge.coef_)),
            float(ridge.intercept_),
            float(ridge.alpha_),
        )

    @property
    def n_features(self) -> int:
        return len(self.coef)

    def predict(self, features: np.ndarray, table_ms: np.ndarray) -> np.ndarray:
        X = (np.asarray(features, float) - self.mean) / self.scale
        return np.asarray(table_ms, float) * np.exp(X @ np.asarray(self.coef) + self.intercept)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "ridge-log-ratio",
            "mean": list(self.mean),
            "scale": list(self.scale),
            "coef": list(self.coef),
            "intercept": self.intercept,
            "alpha": self.alpha,
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> LatencyPredictor:
        return cls(
            tuple(values["mean"]),
            tuple(values["scale"]),
            tuple(values["coef"]),
            float(values["intercept"]),
            float(values["alpha"]),
        )
