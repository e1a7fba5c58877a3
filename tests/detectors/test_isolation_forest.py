"""Isolation Forest: the same scores as scikit-learn's forest, with or without numba, with a
window of past rows, chunked, saved and restored."""

import re

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest as SklearnForest

from vigil.detectors import _forest_scoring
from vigil.detectors.isolation_forest import IsolationForest
from vigil.errors import ConfigError, ModelFileError
from vigil.preprocess import trailing_windows

ENGINES = ["numba", "numpy"]  # numba comes with the dev extra; both engines are tested


@pytest.fixture
def rows():
    X = np.random.default_rng(0).normal(size=(2000, 3))
    X[700] += 7.0  # one spike in every channel
    return X


@pytest.fixture(params=ENGINES)
def engine(request):
    """Run the test with the detector's scoring forced through one engine."""
    with _forest_scoring.use_engine(request.param):
        yield request.param


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"window": 4},
        {"max_features": 0.5},
        {"window": 3, "max_features": 0.4, "max_samples": 50},
    ],
)
def test_scores_equal_sklearns_score_samples(rows, engine, params):
    det = IsolationForest(n_estimators=25, random_state=3, **params).fit(rows)
    windows = trailing_windows(rows, params.get("window", 1))
    reference = SklearnForest(
        n_estimators=25,
        max_samples=params.get("max_samples", 256),
        max_features=params.get("max_features", 1.0),
        random_state=3,
    ).fit(windows)
    expected = -reference.score_samples(windows)
    np.testing.assert_allclose(det.score(rows), expected, rtol=0, atol=1e-9)


def test_engines_agree_bit_for_bit(rows):
    det = IsolationForest(n_estimators=10, window=2).fit(rows)
    windows = trailing_windows(rows, 2, dtype=np.float32)
    state = det.feature_, det.threshold_, det.leaf_value_
    numpy_sums, numba_sums = (_forest_scoring.path_length_sums(windows, *state, engine=e)
                              for e in ("numpy", "numba"))
    assert np.array_equal(numpy_sums, numba_sums)


def test_spike_scores_above_the_median_and_the_natural_threshold(rows):
    scores = IsolationForest(n_estimators=25).fit(rows).score(rows)
    assert scores[700] > 0.5 > np.median(scores)
    assert scores.argmax() == 700


def test_random_state_makes_it_deterministic(rows):
    first = IsolationForest(n_estimators=10, random_state=1).fit(rows).score(rows)
    again = IsolationForest(n_estimators=10, random_state=1).fit(rows).score(rows)
    other = IsolationForest(n_estimators=10, random_state=2).fit(rows).score(rows)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)


def test_state_round_trip_gives_identical_scores(rows):
    det = IsolationForest(n_estimators=10, window=3).fit(rows)
    state = {key: np.array(value) for key, value in det.get_state().items()}
    assert all(value.dtype != object for value in state.values())  # saves without pickle
    restored = IsolationForest(n_estimators=10, window=3).set_state(state)
    assert np.array_equal(restored.score(rows), det.score(rows))


def test_tampered_state_is_refused(rows):
    state = IsolationForest(n_estimators=5).fit(rows).get_state()
    state["feature_"] = state["feature_"] + 10  # columns the rows do not have
    with pytest.raises(ModelFileError, match="do not fit together"):
        IsolationForest(n_estimators=5).set_state(state)


def test_windowed_chunked_scoring_equals_whole_scoring(rows):
    det = IsolationForest(n_estimators=10, window=5).fit(rows)
    whole = det.score(rows)
    det.chunk_bytes = 1  # smallest chunks the base class allows (1024 rows)
    assert np.array_equal(det.score(rows), whole)


def test_a_rows_score_depends_only_on_earlier_rows(rows):
    det = IsolationForest(n_estimators=10, window=4).fit(rows)
    assert np.array_equal(det.score(rows[:900]), det.score(rows)[:900])


@pytest.mark.parametrize(
    ("param", "value", "allowed"),
    [
        ("window", 0, "an int in [1, inf) or None"),
        ("max_samples", 1, 'an int in [2, inf) or "auto"'),
        ("max_features", 0.0, "a float in (0, 1]"),
        ("n_estimators", 0, "an int in [1, inf)"),
    ],
)
def test_invalid_parameters_are_named(rows, param, value, allowed):
    message = f"The '{param}' parameter of isolation_forest must be {allowed}. Got {value!r}."
    with pytest.raises(ConfigError, match=re.escape(message)):
        IsolationForest(**{param: value}).fit(rows)


def test_a_constant_channel_is_fine(rows):
    X = rows.copy()
    X[:, 1] = 5.0
    scores = IsolationForest(n_estimators=10).fit(X).score(X)
    assert np.isfinite(scores).all() and scores[700] > np.median(scores)
    flat = IsolationForest(n_estimators=5).fit(np.full((50, 2), 3.0)).score(np.full((4, 2), 3.0))
    assert np.isfinite(flat).all()
