"""The detector contract as code: ``check_detector`` runs every rule of the contract against a
detector, so each registered method (and any new one) is held to the same promises.

Examples:
    >>> from vigil.detectors.statistical import RobustZScore
    >>> check_detector(RobustZScore())
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vigil.detectors import Detector, make_detector
from vigil.errors import DataError, NotFittedError


def _series(n: int = 600, d: int = 3, seed: int = 0) -> np.ndarray:
    """Smooth daily-like cycles plus noise: what a sensor channel looks like."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)[:, None]
    return np.sin(2 * np.pi * t / 50 + np.arange(d)) + 0.1 * rng.normal(size=(n, d))


def _fresh(det: Detector) -> Detector:
    return type(det)(**det.get_params())


def _labelled(det: Detector, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``X`` and no labels; for a supervised detector, a copy of ``X`` with spikes added (every
    40th row of channel 0, +8) and labels marking them: what the checks that score spikes
    expect it to have learnt."""
    if not det.supervised:
        return X, None
    X, y = X.copy(), np.zeros(len(X), dtype=np.int8)
    y[7::40] = 1
    X[7::40, 0] += 8.0
    return X, y


def _fit(det: Detector, X: np.ndarray) -> Detector:
    """``det.fit(X)``, with labels (of a spiked copy of ``X``) for a supervised detector."""
    return det.fit(*_labelled(det, X))


def check_detector(detector: Detector | str) -> None:
    """Run every contract check on ``detector`` (an instance or a registered name); raise
    AssertionError naming the broken rule."""
    det = make_detector(detector) if isinstance(detector, str) else detector
    for check in CHECKS:
        check(_fresh(det))


def check_unfitted_refused(det: Detector) -> None:
    try:
        det.score(_series())
    except NotFittedError:
        return
    raise AssertionError(f"{det.name}: score before fit must raise NotFittedError")


def check_scores_shape_dtype_finite(det: Detector) -> None:
    X = _series()
    scores = _fit(det, X).score(X)
    assert scores.shape == (len(X),), f"{det.name}: one score per row, got {scores.shape}"
    assert scores.dtype == np.float64, f"{det.name}: scores must be float64, got {scores.dtype}"
    assert np.isfinite(scores).all(), f"{det.name}: scores must be finite"
    parts = det.score_channels(X)
    if det.attributes:
        assert parts is not None and parts.shape == X.shape, f"{det.name}: score_channels shape"
        assert np.isfinite(parts).all(), f"{det.name}: channel scores must be finite"
    else:
        assert parts is None, f"{det.name}: score_channels must be None without attribution"


def check_deterministic(det: Detector) -> None:
    X = _series()
    first = _fit(_fresh(det), X).score(X)
    second = _fit(_fresh(det), X).score(X)
    assert np.array_equal(first, second), f"{det.name}: same data and params, other scores"


def check_wrong_channel_count_refused(det: Detector) -> None:
    _fit(det, _series(d=3))
    try:
        det.score(_series(d=2))
    except DataError:
        return
    raise AssertionError(f"{det.name}: scoring 2 channels after fitting 3 must raise DataError")


def check_non_finite_refused(det: Detector) -> None:
    X = _series()
    _fit(det, X)
    X[5, 1] = np.nan
    try:
        det.score(X)
    except DataError:
        return
    raise AssertionError(f"{det.name}: NaN input must raise DataError, not score silently")


def check_constant_channel(det: Detector) -> None:
    X = _series()
    X[:, 1] = 7.0
    _fit(det, X)
    changed = X.copy()
    changed[300, 1] = 8.0
    for data in (X, changed):
        assert np.isfinite(det.score(data)).all(), f"{det.name}: constant channel gave non-finite"


def check_kinds_declared(det: Detector) -> None:
    from vigil.sample_data import KINDS

    kinds = det.kinds
    assert isinstance(kinds, tuple) and kinds, f"{det.name}: kinds must be a non-empty tuple"
    unknown = sorted(set(kinds) - set(KINDS))
    assert not unknown, f"{det.name}: unknown anomaly kind(s) {unknown}; known: {list(KINDS)}"


def check_spikes_score_high(det: Detector) -> None:
    if "spike" not in det.kinds:
        return
    X = _series(seed=1)
    _fit(det, X)
    spiked = X.copy()
    rows = [150, 320, 480]
    spiked[rows, 0] += 8.0
    scores = det.score(spiked)
    assert (scores[rows] > np.median(scores)).all(), f"{det.name}: spikes must score above median"


def check_stuck_run_scores_high(det: Detector) -> None:
    if "stuck" not in det.kinds:
        return
    X = _series(seed=1)
    _fit(det, X)
    stuck = X.copy()
    stuck[200:400, 0] = stuck[200, 0]  # channel 0 freezes for 200 rows
    scores = det.score(stuck)
    # The first rows of a freeze look like any repeat; the rest of it must stand out.
    assert (scores[300:400] > np.median(scores)).all(), \
        f"{det.name}: a 200-row stuck value must score above the median"
    if det.natural_threshold is not None:
        assert scores[399] > det.natural_threshold, \
            f"{det.name}: a 200-row stuck value must score above the natural threshold"


def check_chunked_equals_whole(det: Detector) -> None:
    X = _series(n=5000)
    whole = _fit(det, X).score(X)
    det.chunk_bytes = 1  # forces the smallest chunks
    assert np.array_equal(det.score(X), whole), f"{det.name}: chunked scores differ from whole"


def check_scores_with_channels_in_one_pass(det: Detector) -> None:
    X = _series(n=3000)
    _fit(det, X)
    scores, parts = det.score_with_channels(X)
    assert np.array_equal(scores, det.score(X)), f"{det.name}: score_with_channels changed scores"
    if det.attributes:
        assert np.array_equal(parts, det.score_channels(X)), f"{det.name}: channel parts differ"
    if det.score_is_channel_max:
        assert np.array_equal(scores, parts.max(axis=1)), (
            f"{det.name}: declares score_is_channel_max but its score is not the channels' max")


def check_save_load_identical(det: Detector) -> None:
    from vigil.model import Model, load

    X = _series()
    training, labels = _labelled(det, X)
    model = Model(det.name, **det.get_params()).fit(training, labels=labels)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.vigil"
        model.save(path)
        again = load(path)
    assert np.array_equal(again.score(X), model.score(X)), f"{det.name}: scores change on reload"


def check_state_declared(det: Detector) -> None:
    """Every public attribute ``_fit`` sets (a name ending in ``_``) is declared fitted state,
    so the model file saves it; and the saved state passes the declaration on reload."""
    _fit(det, _series())
    fitted = {k for k in vars(det) if k.endswith("_") and not k.startswith("_")}
    undeclared = sorted(fitted - set(det.state_spec()))
    assert not undeclared, f"{det.name}: fitted state {undeclared} is not declared in fitted_state"
    _fresh(det).set_graphs(det.get_graphs()).set_state(det.get_state())


CHECKS: list[Callable[[Detector], None]] = [
    check_state_declared,
    check_unfitted_refused,
    check_scores_shape_dtype_finite,
    check_deterministic,
    check_wrong_channel_count_refused,
    check_non_finite_refused,
    check_constant_channel,
    check_kinds_declared,
    check_spikes_score_high,
    check_stuck_run_scores_high,
    check_chunked_equals_whole,
    check_scores_with_channels_in_one_pass,
    check_save_load_identical,
]
