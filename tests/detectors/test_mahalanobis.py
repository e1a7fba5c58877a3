"""mahalanobis: distance from normal under the channels' joint covariance."""

import numpy as np
import pytest
from scipy import stats

from vigil.detectors.mahalanobis import Mahalanobis


def pump_and_flow(n=5000, seed=0):
    rng = np.random.default_rng(seed)
    pump = rng.normal(5, 1, n)
    return np.column_stack([pump, 11.5 * pump + 2 + rng.normal(0, 0.5, n)])


def test_gaussian_rows_exceed_the_natural_threshold_at_the_stated_rate():
    det = Mahalanobis().fit(pump_and_flow())
    fresh = pump_and_flow(200_000, seed=1)
    assert det.natural_threshold == pytest.approx(np.sqrt(stats.chi2.ppf(0.999, 2)))
    assert np.mean(det.score(fresh) > det.natural_threshold) == pytest.approx(0.001, abs=3e-4)


def test_a_broken_correlation_is_flagged_and_blamed_on_the_channel_that_broke_it():
    det = Mahalanobis().fit(pump_and_flow())
    row = np.array([[5.0, 11.5 * 3.5 + 2]])  # flow as for a pump at 3.5: both values common
    assert det.score(row)[0] > 3 * det.natural_threshold
    assert det.score_channels(np.array([[5.0, 11.5 * 5 + 2 + 8.0]])).argmax() == 1


def test_collinear_and_constant_channels_keep_scores_finite():
    X = pump_and_flow()
    X = np.column_stack([X, 2 * X[:, 0], np.full(len(X), 3.0)])
    det = Mahalanobis().fit(X)
    assert np.isfinite(det.score(X)).all() and np.isfinite(det.score_channels(X)).all()
