"""Subsequence PCA: windows off the training windows' principal subspace score high."""

import numpy as np
import pytest

from vigil.detectors.subsequence_pca import MIN_WINDOW, SubsequencePCA, _broken_stick
from vigil.errors import ConfigError, DataError
from vigil.testing import check_detector


def cycles(n=4000, period=40, seed=0):
    rng = np.random.default_rng(seed)
    return (np.sin(2 * np.pi * np.arange(n) / period) + 0.05 * rng.normal(size=n))[:, None]


@pytest.mark.parametrize("params", [{"window": 12}, {}, {"window": 30, "n_components": 2}])
def test_keeps_the_detector_contract(params):
    check_detector(SubsequencePCA(**params))


def test_a_changed_shape_with_ordinary_values_scores_highest():
    X = cycles()
    det = SubsequencePCA(window=40).fit(X[:1500])
    broken = X.copy()
    broken[3010:3030, 0] *= -1  # half a cycle upside down: every value still in range
    scores = det.score(broken)
    assert 2970 < scores.argmax() < 3070
    assert scores[3010:3030].min() > 3 * det.score(X[1500:]).max()


def test_a_level_shift_is_seen_though_the_shape_is_unchanged():
    X = cycles()
    det = SubsequencePCA(window=40).fit(X[:1500])
    shifted = X.copy()
    shifted[3000:, 0] += 1.0
    assert det.score(shifted)[3100:].min() > det.score(X)[1500:].max()


def test_auto_picks_the_period_and_few_components():
    det = SubsequencePCA().fit(cycles(period=40))
    assert det.window_ == 40
    assert 1 <= det.n_components_[0] <= 3  # a sine: two components, noise is not kept


def test_auto_window_is_clipped_to_a_quarter_of_the_rows():
    det = SubsequencePCA().fit(cycles(n=100, period=60))
    assert MIN_WINDOW <= det.window_ <= 25


def test_broken_stick_keeps_what_beats_chance():
    assert _broken_stick(np.full(10, 0.1)) == 1  # white noise: none, at least one
    assert _broken_stick(np.array([0.6, 0.3, 0.04, 0.03, 0.03])) == 2


def test_channels_are_scored_on_their_own():
    X = np.hstack([cycles(seed=1), 100 * cycles(seed=2)])
    det = SubsequencePCA(window=40).fit(X[:2000])
    X[3000, 1] += 300.0  # a spike in the large-unit channel
    parts = det.score_channels(X)
    assert parts[3000].argmax() == 1
    np.testing.assert_array_equal(det.score(X), parts.max(axis=1))


def test_data_shorter_than_the_window_still_gets_a_score_per_row():
    det = SubsequencePCA(window=40).fit(cycles())
    scores = det.score(cycles(n=7))
    assert scores.shape == (7,) and np.isfinite(scores).all()


def test_window_longer_than_the_training_rows_is_refused():
    with pytest.raises(DataError, match=r"window 500 is longer than the series \(120 rows\)"):
        SubsequencePCA(window=500).fit(cycles(n=120))


@pytest.mark.parametrize("params, message", [
    ({"window": 1}, (r"The 'window' parameter of subsequence_pca must be an int in \[2, inf\) "
                     r"or \"auto\". Got 1")),
    ({"n_components": 0}, r"The 'n_components' parameter .* Got 0"),
])
def test_parameters_are_checked(params, message):
    with pytest.raises(ConfigError, match=message):
        SubsequencePCA(**params).fit(cycles())
