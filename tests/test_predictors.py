import numpy as np
import pytest

from hwnas.errors import HwnasError
from hwnas.predictors import PREDICTORS, AutoPredictor, NoisyForest, make_predictor, quality


def linear_problem(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.integers(0, 2, (n, 12)).astype(float)
    y = X @ rng.uniform(1, 3, 12) + rng.normal(0, 0.05, n)
    return X, y


@pytest.mark.parametrize("kind", sorted(PREDICTORS))
def test_every_predictor_ranks_a_learnable_target(kind):
    X, y = linear_problem()
    model = make_predictor(kind, seed=0).fit(X[:90], y[:90])
    q = quality(y[90:], model.predict(X[90:]))
    assert q.kendall_tau > 0.5 and q.spearman > 0.6 and q.mape < 30


def test_auto_predictor_reports_every_candidate_and_picks_the_best_tau():
    X, y = linear_problem()
    auto = AutoPredictor(seed=0).fit(X, y)
    assert set(auto.report_) == set(PREDICTORS)
    assert auto.report_[auto.kind_].kendall_tau == max(q.kendall_tau for q in auto.report_.values())
    assert auto.kind_ in {"ridge", "svr", "mlp"}  # a linear target: smooth models win
    assert quality(y, auto.predict(X)).kendall_tau > 0.9
    with pytest.raises(HwnasError):
        make_predictor("oracle")


def test_noisy_forest_spread_includes_out_of_bag_noise():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 2, (200, 6)).astype(float)
    y = X.sum(1) + rng.normal(0, 1.0, 200)  # noise of standard deviation 1
    forest = NoisyForest(seed=0).fit(X, y)
    _, quiet = forest.predict_distribution(X, with_noise=False)
    _, noisy = forest.predict_distribution(X, with_noise=True)
    assert np.all(noisy > quiet) and 0.7 < np.median(noisy) < 2.0
