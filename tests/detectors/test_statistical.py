"""The statistical detectors: two-sided, robust, and never dividing by zero."""

import numpy as np
import pytest

from vigil.detectors.statistical import IQR, RobustZScore, ZScore
from vigil.errors import ConfigError


@pytest.fixture
def normal_rows():
    return np.random.default_rng(0).normal(10.0, 2.0, size=(5000, 2))


def test_zscore_is_two_sided(normal_rows):
    det = ZScore().fit(normal_rows)
    high, low = normal_rows.mean(axis=0) + 8, normal_rows.mean(axis=0) - 8
    assert det.score(high[None])[0] == pytest.approx(det.score(low[None])[0], rel=1e-2)
    assert det.score(low[None])[0] > 3


def test_robust_zscore_is_not_pulled_by_the_outliers_it_finds(normal_rows):
    polluted = normal_rows.copy()
    polluted[:250, 0] = 1e4  # 5% huge values would inflate a plain std
    assert ZScore().fit(polluted).score(np.array([[20.0, 10.0]]))[0] < 1
    assert RobustZScore().fit(polluted).score(np.array([[20.0, 10.0]]))[0] > 4


def test_robust_zscore_matches_the_baselines_formula(normal_rows):
    x = normal_rows[:, 0]
    median = np.median(x)
    expected = np.abs(x - median) / (1.4826 * np.median(np.abs(x - median)))
    got = RobustZScore().fit(x[:, None]).score(x[:, None])
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_iqr_score_is_the_distance_outside_tukeys_fences():
    x = np.arange(1.0, 101.0)[:, None]  # Q1 = 25.75, Q3 = 75.25, IQR = 49.5
    det = IQR().fit(x)
    upper_fence = 75.25 + 1.5 * 49.5
    probe = np.array([[upper_fence], [upper_fence + 49.5], [50.5]])
    np.testing.assert_allclose(det.score(probe), [0.0, 1.0, -2.0])


@pytest.mark.parametrize("cls", [ZScore, RobustZScore, IQR])
def test_constant_channel_does_not_divide_by_zero(cls):
    X = np.full((100, 1), 1013.25)
    det = cls().fit(X)
    assert np.isfinite(det.score(X)).all()
    assert det.score(np.array([[1013.5]]))[0] > det.score(X).max()


def test_attribution_names_the_channel_that_drove_the_score(normal_rows):
    det = RobustZScore().fit(normal_rows)
    row = np.array([[10.0, 30.0]])
    assert det.score_channels(row).argmax() == 1


def test_parameters_are_checked_with_one_clear_message():
    with pytest.raises(ConfigError, match=r"The 'k' parameter of iqr must be a float in \[0, inf\). Got -1"):
        IQR(k=-1).fit(np.zeros((10, 1)))
    with pytest.raises(ConfigError, match="iqr has no parameter 'window'"):
        IQR(window=3)


@pytest.mark.parametrize("cls", [ZScore, RobustZScore])
def test_a_jump_in_a_channel_of_tiny_values_stands_out(cls):
    # the scale floor is relative to the channel's magnitude: 1e-10 +- 1e-12 keeps its spread
    X = 1e-10 + 1e-12 * np.random.default_rng(0).normal(size=(1000, 1))
    det = cls().fit(X)
    assert det.score(np.array([[1e-10 + 20e-12]]))[0] > 15
