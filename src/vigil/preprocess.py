"""Preprocessing shared by detectors: turning rows of sensor values into the feature rows a
detector sees. For now, trailing windows of past rows (time context for row-wise methods)."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def trailing_windows(X: np.ndarray, window: int, dtype: type = np.float64) -> np.ndarray:
    """Row ``t`` of the result is rows ``t-window+1 .. t`` of ``X`` flattened (oldest first),
    ``float64[n, window * d]`` (or ``dtype``); the first ``window - 1`` rows are padded by
    repeating row 0, so every row gets a feature row.

    Causal: row ``t`` depends only on rows ``<= t``, so a stream can be scored the same way.
    Memory-aware: the result is a read-only strided view over one padded copy of ``X``
    (``(n + window - 1) * d`` values), not ``window`` copies; copy it only if you must write.

    Examples:
        >>> trailing_windows(np.array([[1.0], [2.0], [3.0]]), 2).tolist()
        [[1.0, 1.0], [1.0, 2.0], [2.0, 3.0]]
    """
    X = np.asarray(X)
    if X.ndim == 1:
        X = X[:, None]
    if window < 1:
        raise ValueError(f"window must be >= 1; got {window}.")
    n, d = X.shape
    if n == 0:
        return np.empty((0, window * d), dtype=dtype)
    padded = np.empty((n + window - 1, d), dtype=dtype)
    padded[: window - 1] = X[:1]
    padded[window - 1 :] = X
    # sliding_window_view puts the window axis last: (n, d, w) -> (n, w, d). Consecutive rows
    # of a C-contiguous array are contiguous, so (w, d) merges into one axis without a copy.
    views = sliding_window_view(padded, window, axis=0).transpose(0, 2, 1)
    return views.reshape(n, window * d)


def dominant_period(x: np.ndarray) -> int:
    """The series' dominant period in rows (autocorrelation, as TSB-AD's ``find_length_rank``):
    the window of ``window="auto"``. See :mod:`vigil.evaluation.period`."""
    from vigil.evaluation.period import dominant_period as period

    return period(x)


def subsequences(X: np.ndarray, window: int) -> np.ndarray:
    """Every window of ``window`` consecutive rows, flattened (oldest row first):
    ``[n - window + 1, window * d]``, a read-only view (no copy for C-contiguous ``X``).

    Examples:
        >>> subsequences(np.array([[1.0], [2.0], [3.0]]), 2).tolist()
        [[1.0, 2.0], [2.0, 3.0]]
    """
    X = np.ascontiguousarray(X)
    if X.ndim == 1:
        X = X[:, None]
    n, d = X.shape
    if not 1 <= window <= n:
        raise ValueError(f"window {window} must be in [1, {n}] (the rows given).")
    views = sliding_window_view(X, window, axis=0).transpose(0, 2, 1)
    return views.reshape(n - window + 1, window * d)


def windows_to_points(window_scores: np.ndarray, n: int, window: int) -> np.ndarray:
    """Point scores from window scores: row ``t`` takes the worst (largest) score of the
    windows covering it (windows ``t - window + 1 .. t``), so the first and last rows are
    scored too. ``window_scores[j]`` scores rows ``j .. j + window - 1``.

    Examples:
        >>> windows_to_points(np.array([0.0, 5.0, 1.0]), 4, 2).tolist()
        [0.0, 5.0, 5.0, 1.0]
    """
    from scipy.ndimage import maximum_filter1d

    window_scores = np.asarray(window_scores, dtype=np.float64)
    if len(window_scores) != n - window + 1:
        raise ValueError(f"{len(window_scores)} window scores for {n} rows and window {window}.")
    padded = np.full(n + window - 1, -np.inf)
    padded[window - 1 : window - 1 + len(window_scores)] = window_scores
    # a centred filter of width `window`: output i covers padded[i - window//2 : ... + window]
    filtered = maximum_filter1d(padded, size=window, mode="constant", cval=-np.inf)
    return filtered[window // 2 : window // 2 + n]
