"""Subsequence k-means: windows far from every training centre score high."""

import numpy as np
import pytest

from vigil.detectors.subsequence_kmeans import SubsequenceKMeans
from vigil.errors import ConfigError, DataError
from vigil.testing import check_detector


def cycles(n=4000, period=40, seed=0):
    rng = np.random.default_rng(seed)
    return (np.sin(2 * np.pi * np.arange(n) / period) + 0.05 * rng.normal(size=n))[:, None]


@pytest.mark.parametrize("params", [{"window": 12, "n_clusters": 5}, {}])
def test_keeps_the_detector_contract(params):
    check_detector(SubsequenceKMeans(**params))


def test_a_changed_shape_with_ordinary_values_scores_highest():
    X = cycles()
    det = SubsequenceKMeans(window=40).fit(X[:1500])
    broken = X.copy()
    broken[3010:3030, 0] *= -1  # half a cycle upside down: every value still in range
    scores = det.score(broken)
    assert 2970 < scores.argmax() < 3070
    assert scores[3010:3030].min() > 2 * det.score(X[1500:]).max()


def test_the_score_is_the_rms_distance_to_the_nearest_centre():
    X = cycles(n=400)
    det = SubsequenceKMeans(window=8, n_clusters=4).fit(X)
    probe = X[100:108]
    z = (probe[:, 0] - det.center_[0]) / det.scale_[0]
    nearest = np.sqrt(((det.cluster_centers_[0] - z) ** 2).mean(axis=1)).min()
    np.testing.assert_allclose(det.score(probe), nearest, rtol=1e-9)


def test_state_is_only_plain_arrays():
    state = SubsequenceKMeans(window=8, n_clusters=4).fit(cycles(n=400)).get_state()
    assert state["cluster_centers_"].shape == (1, 4, 8)
    assert all(value.dtype != object for value in state.values())


def test_few_distinct_windows_give_repeated_centres_without_warnings(recwarn):
    X = np.tile([0.0, 1.0], 50)[:, None]  # two distinct windows of 2 rows
    det = SubsequenceKMeans(window=2, n_clusters=10).fit(X)
    assert len(np.unique(det.cluster_centers_[0], axis=0)) == 2
    assert det.score(X).max() < 1e-6 and not recwarn.list


def test_same_random_state_same_centres():
    X = cycles(seed=3)
    first = SubsequenceKMeans(random_state=7).fit(X).cluster_centers_
    np.testing.assert_array_equal(SubsequenceKMeans(random_state=7).fit(X).cluster_centers_,
                                  first)


def test_window_longer_than_the_training_rows_is_refused():
    with pytest.raises(DataError, match=r"window 500 is longer than the series \(120 rows\)"):
        SubsequenceKMeans(window=500).fit(cycles(n=120))


def test_parameters_are_checked():
    with pytest.raises(ConfigError, match=r"The 'n_clusters' parameter of subsequence_kmeans "
                                          r"must be an int in \[1, inf\). Got 0"):
        SubsequenceKMeans(n_clusters=0).fit(cycles())
