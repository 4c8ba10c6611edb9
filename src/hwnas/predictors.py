"""Predictors of a metric from arch features, scikit-learn style, chosen by rank quality.

Search only needs predictors to *order* archs well, so candidates are compared by
cross-validated Kendall tau rather than by squared error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.stats import kendalltau, spearmanr
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import (
    ExtraTreesRegressor,
    HistGradientBoostingRegressor,
    RandomForestRegressor,
)
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold
from sklearn.neural_network import MLPRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR

from hwnas.errors import HwnasError

ALPHAS = np.logspace(-3, 3, 13)  # ridge penalties tried by leave-one-out CV


def _scaled(model: BaseEstimator) -> BaseEstimator:
    """Standardise inputs and target: kernel and neural models need both to be well posed."""
    return TransformedTargetRegressor(
        regressor=make_pipeline(StandardScaler(), model), transformer=StandardScaler()
    )


PREDICTORS: dict[str, Callable[[int], BaseEstimator]] = {
    "ridge": lambda seed: _scaled(RidgeCV(alphas=ALPHAS)),
    "svr": lambda seed: _scaled(SVR(kernel="rbf", C=3.0, epsilon=0.05, gamma="scale")),
    "gbt": lambda seed: HistGradientBoostingRegressor(
        max_iter=200, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=5, random_state=seed
    ),
    "trees": lambda seed: ExtraTreesRegressor(
        n_estimators=100, max_features=0.5, min_samples_leaf=2, random_state=seed, n_jobs=1
    ),
    "mlp": lambda seed: _scaled(
        MLPRegressor(hidden_layer_sizes=(64, 64), alpha=1e-3, max_iter=800, random_state=seed)
    ),
}


def make_predictor(kind: str, seed: int = 0) -> BaseEstimator:
    try:
        return PREDICTORS[kind](seed)
    except KeyError:
        raise HwnasError(
            f"unknown predictor {kind!r}; choose from {', '.join(PREDICTORS)} or auto"
        ) from None


@dataclass(frozen=True)
class Quality:
    """How well predictions order and match held-out truth."""

    kendall_tau: float
    spearman: float
    mape: float
    n: int


def quality(y_true: np.ndarray, y_pred: np.ndarray) -> Quality:
    y_true, y_pred = np.asarray(y_true, float), np.asarray(y_pred, float)
    tau = kendalltau(y_true, y_pred)[0] if len(y_true) > 1 else np.nan
    rho = spearmanr(y_true, y_pred)[0] if len(y_true) > 1 else np.nan
    nonzero = np.abs(y_true) > 1e-12
    mape = float(np.mean(np.abs((y_pred - y_true)[nonzero] / y_true[nonzero]))) * 100
    return Quality(float(np.nan_to_num(tau)), float(np.nan_to_num(rho)), mape, len(y_true))


def cross_validated(
    kind: str, X: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0
) -> tuple[Quality, np.ndarray]:
    """Out-of-fold predictions for every point and their quality."""
    pred = np.empty(len(y))
    for train, test in KFold(min(folds, len(y)), shuffle=True, random_state=seed).split(X):
        pred[test] = make_predictor(kind, seed).fit(X[train], y[train]).predict(X[test])
    return quality(y, pred), pred


class AutoPredictor(RegressorMixin, BaseEstimator):
    """Picks the candidate with the best cross-validated Kendall tau, then refits it on all data.

    ``report_`` holds every candidate's out-of-fold quality, so a user sees why one won.
    """

    def __init__(
        self, candidates: tuple[str, ...] = tuple(PREDICTORS), folds: int = 5, seed: int = 0
    ) -> None:
        self.candidates = candidates
        self.folds = folds
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray) -> AutoPredictor:
        X, y = np.asarray(X, float), np.asarray(y, float)
        if len(y) < 4:
            raise ValueError("AutoPredictor needs at least 4 points to cross-validate")
        self.report_ = {
            kind: cross_validated(kind, X, y, self.folds, self.seed)[0] for kind in self.candidates
        }
        self.kind_ = max(self.candidates, key=lambda k: self.report_[k].kendall_tau)
        self.model_ = clone(make_predictor(self.kind_, self.seed)).fit(X, y)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.model_.predict(np.asarray(X, float))


class NoisyForest:
    """A bootstrap random forest that predicts a distribution, not just a value.

    The spread combines the trees' disagreement (where data is thin) with the irreducible
    noise estimated from out-of-bag residuals (what no model of these features will explain,
    such as measurement noise in a latency table). Search uses the spread to value archs that
    *might* be good, which matters most where the objective is mostly noise.
    ``noise_below`` restricts the residuals to targets under it: the region search cares about.
    """

    def __init__(self, n_estimators: int = 64, min_samples_leaf: int = 2, seed: int = 0) -> None:
        self.n_estimators = n_estimators
        self.min_samples_leaf = min_samples_leaf
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray, noise_below: float = np.inf) -> NoisyForest:
        self.forest_ = RandomForestRegressor(
            self.n_estimators,
            max_features=0.5,
            min_samples_leaf=self.min_samples_leaf,
            bootstrap=True,
            oob_score=len(y) >= 8,
            random_state=self.seed,
            n_jobs=1,
        ).fit(np.asarray(X, np.float32), y)
        self.noise_var_ = float(np.var(y))
        if len(y) >= 8:
            oob = self.forest_.oob_prediction_
            relevant = np.isfinite(oob) & (np.minimum(oob, y) < noise_below)
            if relevant.any():
                self.noise_var_ = float(np.mean((oob - y)[relevant] ** 2))
        return self

    def predict_distribution(
        self, X: np.ndarray, with_noise: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        X = np.asarray(X, np.float32)
        per_tree = np.stack([t.predict(X, check_input=False) for t in self.forest_.estimators_])
        variance = per_tree.var(axis=0) + (self.noise_var_ if with_noise else 0.0)
        return per_tree.mean(axis=0), np.sqrt(variance)


class TrendForest:
    """A ``NoisyForest`` on the residuals of a linear trend: the predictor of limited metrics.

    Cost metrics (parameters, memory, FLOPs) are close to additive over the choices, and a
    limit on them typically sits in a tail of their range, where a forest alone cannot reach:
    its predictions never leave the range it was trained on and shrink towards the middle. The
    ridge trend extrapolates; the forest adds the interactions and the spread."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def fit(self, X: np.ndarray, y: np.ndarray) -> TrendForest:
        self.trend_ = make_pipeline(StandardScaler(), RidgeCV(alphas=ALPHAS)).fit(X, y)
        self.forest_ = NoisyForest(seed=self.seed).fit(X, y - self.trend_.predict(X))
        return self

    def predict_distribution(
        self, X: np.ndarray, with_noise: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        mean, spread = self.forest_.predict_distribution(X, with_noise)
        return mean + self.trend_.predict(X), spread
