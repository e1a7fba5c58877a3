"""The forecasting-residual detector: a value ordinary on its own but wrong for its place in the
curve scores high; scoring is causal, chunk-independent and never divides by zero."""

import numpy as np
import pytest

from vigil.detectors.forecast import ForecastResidual, _poly_extrapolation
from vigil.errors import ConfigError, DataError
from vigil.testing import check_detector


def periodic(n=3000, period=50, noise=0.05, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return (np.sin(2 * np.pi * t / period) + noise * rng.normal(size=n))[:, None]


@pytest.mark.parametrize("params", [
    {},                                   # window and smooth "auto"
    {"window": 12, "smooth": 1},
    {"model": "poly", "window": 20, "degree": 2},
])
def test_contract(params):
    check_detector(ForecastResidual(**params))


def test_auto_window_is_the_period():
    det = ForecastResidual().fit(periodic(period=50))
    assert det.window_ == 50 and det.smooth_ == 50


def test_out_of_place_value_scores_highest():
    X = periodic()
    det = ForecastResidual(window=50, smooth=1).fit(X[:1500])
    X[2000, 0] += 0.4  # inside the range of the values, wrong for the curve
    scores = det.score(X)
    assert int(scores[50:].argmax()) + 50 == 2000
    assert scores[2000] > det.natural_threshold
    # a robust z-score: ordinary rows mostly stay under the cut-off
    assert np.mean(scores[50:] > det.natural_threshold) < 0.01


def test_stopped_cycle_scores_highest_with_smoothing():
    X = periodic()
    det = ForecastResidual().fit(X[:1500])
    X[2200:2400, 0] = 0.0  # the cycle stops at its mean level
    scores = det.score(X)
    assert 2200 <= int(scores[100:].argmax()) + 100 < 2450
    assert scores[2200:2400].max() > det.natural_threshold


def test_score_is_causal():
    X = periodic(n=600)
    det = ForecastResidual(window=20, smooth=5).fit(X)
    changed = X.copy()
    changed[400:] += 3.0
    np.testing.assert_array_equal(det.score(changed)[:400], det.score(X)[:400])
    assert det._lookahead_rows() == 0 and det._context_rows() == 20 + 5 - 1


def test_channels_have_their_own_model_and_the_max_is_the_score():
    X = np.hstack([periodic(period=50), 100 * periodic(period=20, seed=1)])
    det = ForecastResidual(window=50, smooth=1).fit(X[:1500])
    X[2000, 1] += 40.0
    parts = det.score_channels(X)
    np.testing.assert_array_equal(det.score(X), parts.max(axis=1))
    assert int(parts[50:, 1].argmax()) + 50 == 2000 and parts[2000, 0] < 3.5


def test_poly_extrapolates_polynomials_exactly():
    weights = _poly_extrapolation(window=10, degree=2)
    history = (np.arange(-10, 0) ** 2).astype(float)  # t^2 at t = -10 .. -1; next is 0
    assert weights @ history == pytest.approx(0.0, abs=1e-9)
    assert weights.sum() == pytest.approx(1.0)


def test_short_scoring_data_gets_finite_scores():
    det = ForecastResidual(window=30).fit(periodic(n=500))
    scores = det.score(periodic(n=5))
    assert scores.shape == (5,) and np.isfinite(scores).all()


def test_window_longer_than_the_series_is_refused():
    with pytest.raises(DataError, match=r"window 500 is longer than the series \(120 rows\)"):
        ForecastResidual(window=500).fit(periodic(n=120))


@pytest.mark.parametrize("params, message", [
    ({"window": 1}, r"The 'window' parameter of forecast must be an int in \[2, inf\) or \"auto\""),
    ({"model": "arima"}, r"The 'model' parameter of forecast must be one of 'ar', 'poly'"),
    ({"smooth": 0}, r"The 'smooth' parameter of forecast must be an int in \[1, inf\)"),
    ({"ridge": -1.0}, r"The 'ridge' parameter of forecast must be a float in \[0, inf\)"),
])
def test_parameter_validation(params, message):
    with pytest.raises(ConfigError, match=message):
        ForecastResidual(**params).fit(periodic(n=200))
