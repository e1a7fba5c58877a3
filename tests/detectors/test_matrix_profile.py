"""Matrix-profile discords: the nearest-training-window distance, exact however rows are cut,
the same with or without numba, and the shapes it should catch."""

import numpy as np
import pytest

from vigil.detectors.matrix_profile import (
    MatrixProfile,
    nearest_correlation,
    restart_rows,
)
from vigil.errors import ConfigError, DataError
from vigil.testing import check_detector

ENGINES = ["numba", "numpy"]  # numba comes with the dev extra; both engines are tested


def cycles(n=1200, period=40, noise=0.05, seed=0):
    """A periodic sensor channel with a little noise."""
    t = np.arange(n)
    noise = noise * np.random.default_rng(seed).normal(size=n)
    return (np.sin(2 * np.pi * t / period) + noise)[:, None]


def brute_force_correlation(a, b, m):
    """Largest Pearson correlation of each window of a with any window of b, directly."""
    windows = np.lib.stride_tricks.sliding_window_view

    def z(v):
        w = windows(v, m)
        return (w - w.mean(axis=1, keepdims=True)) / w.std(axis=1, keepdims=True)

    return (z(a) @ z(b).T / m).max(axis=1)


@pytest.mark.parametrize("params", [{"window": 12}, {}])
def test_keeps_the_detector_contract(params):
    check_detector(MatrixProfile(**params))


@pytest.mark.parametrize("engine", ENGINES)
def test_join_equals_the_direct_computation(engine):
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=700), rng.normal(size=300)
    got = nearest_correlation(a, b, 20, engine=engine)
    np.testing.assert_allclose(got, brute_force_correlation(a, b, 20), atol=1e-12)


def test_engines_agree_bit_for_bit():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=5000).cumsum(), rng.normal(size=900)  # tiles of 2048 windows
    assert np.array_equal(nearest_correlation(a, b, 30, engine="numba"),
                          nearest_correlation(a, b, 30, engine="numpy"))


@pytest.mark.parametrize("engine", ENGINES)
def test_a_window_does_not_depend_on_where_the_slice_starts(engine):
    rng = np.random.default_rng(3)
    a, b, m = rng.normal(size=3000), rng.normal(size=500), 16
    whole = nearest_correlation(a, b, m, engine=engine)
    skip = restart_rows(m) - 1  # a slice's first windows lack their chains' earlier rows
    for start in (1, 63, 64, 1000, 2100):
        part = nearest_correlation(a[start:], b, m, engine=engine)
        assert np.array_equal(part[skip:], whole[start + skip:])


def test_a_changed_shape_in_range_scores_highest():
    X = cycles()
    det = MatrixProfile(window=40).fit(X[:400])
    changed = X.copy()
    changed[800:820, 0] = changed[800, 0]  # stuck sensor: flat, inside the normal range
    scores = det.score(changed)
    assert 800 - 39 <= scores.argmax() < 820  # the worst window holds the stuck rows
    assert scores[800:820].min() > 3 * scores[400:740].max()


def test_score_is_a_distance_to_the_nearest_training_window():
    X = cycles(noise=0.0)
    det = MatrixProfile(window=40).fit(X[:400])
    assert det.score(X).max() < 1e-5  # every window repeats one seen in training
    faster = np.sin(2 * np.pi * np.arange(200) / 20)[:, None]
    assert det.score(faster).min() > 1  # twice the frequency: a new shape


def test_channels_are_scored_on_their_own():
    X = np.hstack([cycles(seed=0), 1000 * cycles(seed=1)])
    det = MatrixProfile(window=40).fit(X[:400])
    broken = X.copy()
    broken[900:905, 1] += 3000.0
    parts = det.score_channels(broken)
    assert parts[900:905].argmax(axis=1).tolist() == [1] * 5
    np.testing.assert_array_equal(det.score(broken), parts.max(axis=1))


def test_auto_window_is_the_dominant_period():
    assert MatrixProfile().fit(cycles(period=48)).window_ == 48
    assert MatrixProfile().fit(cycles(n=40)).window_ == 10  # at most a quarter of the rows


def test_constant_channel_scores_shape_changes_only():
    X = np.full((300, 1), 7.0)
    det = MatrixProfile(window=10).fit(X)
    assert det.score(X).max() == 0.0
    assert det.score(X + 1.0).max() == 0.0  # a level, not a shape: z-normalised away
    bumped = X.copy()
    bumped[100, 0] = 7.5
    assert det.score(bumped)[100] == pytest.approx(np.sqrt(10))  # flat vs not: sqrt(m)


def test_reference_keeps_the_last_training_rows():
    X = cycles(n=3000)
    det = MatrixProfile(window=40, max_reference_rows=500).fit(X)
    np.testing.assert_allclose(det.reference_ * det.scale_ + det.center_, X[-500:], atol=1e-12)


def test_data_shorter_than_the_window_scores_zero():
    det = MatrixProfile(window=40).fit(cycles())
    assert det.score(cycles(n=10)).tolist() == [0.0] * 10


def test_bad_windows_are_refused_with_a_fix():
    with pytest.raises(DataError, match=r"window 500 is longer than the series \(120 rows\)"):
        MatrixProfile(window=500).fit(cycles(n=120))
    with pytest.raises(DataError, match="longer than max_reference_rows"):
        MatrixProfile(window=50, max_reference_rows=20).fit(cycles())
    with pytest.raises(ConfigError, match=r"'window' parameter of matrix_profile must be an int "
                                          r"in \[3, inf\) or \"auto\". Got 2"):
        MatrixProfile(window=2).fit(cycles())


def test_threshold_comes_from_out_of_sample_training_scores():
    # Against its own reference every training window is at distance 0; a threshold fitted on
    # those zeros would flag all new data. The two-fold training scores keep it honest.
    import vigil

    rng = np.random.default_rng(3)
    t = np.arange(4000)
    wave = np.sin(2 * np.pi * t / 40) + 0.1 * rng.normal(size=t.size)
    model = vigil.Model("matrix_profile", window=40).fit(wave[:2000, None])
    assert model.threshold_ > 0.5
    assert model.detect(wave[2000:, None])["is_anomaly"].mean() < 0.01
