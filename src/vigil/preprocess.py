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
