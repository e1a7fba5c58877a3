"""Shared pieces of the evaluation metrics: input checks, runs of ones, and the "level" form of
a set of nested threshold decisions.

Every oracle metric here scores one series at many thresholds at once. Instead of a
(thresholds x rows) matrix of decisions, each row gets one small integer, its *level*: the
number of thresholds its score is strictly above. Row ``j`` is flagged at threshold ``k`` exactly
when ``level[j] > k``. Counts at every threshold are then a ``bincount`` and a cumulative sum, and
the runs of flagged rows at every threshold come from where the level steps up or down.
A binary prediction is the special case of one threshold: ``level = pred``.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.typing import ArrayLike

from vigil.errors import ConfigError, DataError

#: TSB-AD's oracle threshold grid: 100 values evenly spaced over [min(score), max(score)]
#: (``basic_metricor.metric_RF1`` and siblings, TSB-AD 1.5).
N_ORACLE_THRESHOLDS = 100

#: Runs generated per chunk of thresholds: keeps the temporaries of the run-based metrics under
#: about 150 MB however long and noisy the score (affiliation needs about 500 bytes per run).
_MAX_RUNS_PER_CHUNK = 250_000


def check_score_label(score: ArrayLike, label: ArrayLike
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Validate and convert: ``score`` finite float64, ``label`` int64 of 0/1, same length,
    with at least one anomaly and one normal row (every metric here needs both)."""
    score = np.asarray(score, dtype=np.float64)
    label = check_label(label)
    if score.ndim != 1:
        raise DataError(f"score must be one-dimensional; got shape {score.shape}: pass one "
                        "score per row")
    if score.shape != label.shape:
        raise DataError(f"score has {score.size} rows but label has {label.size}: pass one "
                        "score and one label per row")
    if not np.isfinite(score).all():
        bad = int(np.flatnonzero(~np.isfinite(score))[0])
        raise DataError(f"score is not finite at row {bad} ({score[bad]}): fill or drop "
                        "those rows before evaluating")
    if label.all():
        raise DataError("label has no normal row (all 1): the metrics compare anomalies "
                        "with normal rows, so give a series with both")
    return score, label


def check_label(label: ArrayLike) -> np.ndarray:
    """A 1-D array of 0/1 (bool or numbers) with at least one 1, as int64."""
    raw = np.asarray(label)
    if raw.ndim != 1:
        raise DataError(f"label must be one-dimensional; got shape {raw.shape}")
    if raw.size and not np.isin(raw, (0, 1)).all():
        raise DataError("label must hold only 0 and 1 (1 = anomaly); got values "
                        f"{np.unique(raw)[:5].tolist()}")
    out = raw.astype(np.int64)
    if not out.any():
        raise DataError("label has no anomaly (no 1): the metrics are undefined without one; "
                        "leave such series out of the evaluation")
    return out


def check_pred(pred: ArrayLike, n_rows: int) -> np.ndarray:
    """A binary prediction of ``n_rows`` rows as int64 0/1."""
    raw = np.asarray(pred)
    if raw.shape != (n_rows,) or (raw.size and not np.isin(raw, (0, 1)).all()):
        raise DataError(f"pred must be {n_rows} values of 0/1, one per label row; got shape "
                        f"{raw.shape}")
    return raw.astype(np.int64)


def check_window(sliding_window) -> int:
    """The VUS window: an int >= 0."""
    if isinstance(sliding_window, bool) or not isinstance(sliding_window, (int, np.integer)) \
            or sliding_window < 0:
        raise ConfigError(f"The 'sliding_window' parameter must be an int in [0, inf). Got "
                          f"{sliding_window!r}.")
    return int(sliding_window)


def runs(binary: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and inclusive ends of the runs of ones in a 0/1 vector."""
    padded = np.concatenate(([0], np.asarray(binary, dtype=np.int8), [0]))
    steps = np.diff(padded)
    return np.flatnonzero(steps == 1), np.flatnonzero(steps == -1) - 1


def oracle_levels(score: np.ndarray, n_thresholds: int = N_ORACLE_THRESHOLDS) -> np.ndarray:
    """Level of each row for the thresholds ``linspace(min, max, n)`` with the rule
    ``score > threshold`` (TSB-AD's oracle grid)."""
    thresholds = np.linspace(score.min(), score.max(), n_thresholds)
    return np.searchsorted(thresholds, score, side="left")


def flagged_counts(levels: np.ndarray, n_levels: int, weights=None) -> np.ndarray:
    """``out[k]`` = number (or weight sum) of rows flagged at threshold ``k``."""
    hist = np.bincount(levels, weights=weights, minlength=n_levels + 1)
    return np.cumsum(hist[::-1])[::-1][1:n_levels + 1]


def segment_max(levels: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Largest level in each segment ``[start, end]``; 0 for an empty one (end < start)."""
    out = np.zeros(starts.size, dtype=np.int64)
    nonempty = ends >= starts
    if nonempty.any():
        bounds = np.stack([starts[nonempty], ends[nonempty] + 1], axis=1).ravel()
        padded = np.append(levels, 0)
        out[nonempty] = np.maximum.reduceat(padded, bounds)[::2]
    return out


def iter_flagged_runs(levels: np.ndarray, n_levels: int
                      ) -> Iterator[tuple[int, np.ndarray, np.ndarray, np.ndarray]]:
    """The runs of flagged rows at every threshold, in chunks of thresholds.

    Yields ``(k0, k, start, end)``: arrays of equal length, one entry per run, sorted by
    threshold ``k`` (absolute index) then ``start``; ``end`` is inclusive. A run starts at row
    ``j`` for the thresholds in ``[level[j-1], level[j])`` and ends there for those in
    ``[level[j+1], level[j])``.
    """
    padded = np.concatenate(([0], levels, [0]))
    rise = np.maximum(padded[1:-1] - padded[:-2], 0)
    total = int(rise.sum())
    step = n_levels if total <= _MAX_RUNS_PER_CHUNK else \
        max(1, n_levels * _MAX_RUNS_PER_CHUNK // total)
    for k0 in range(0, n_levels, step):
        k1 = min(k0 + step, n_levels)
        k_start, start = _edges(padded[:-2], levels, k0, k1)
        _, end = _edges(padded[2:], levels, k0, k1)
        yield k0, k_start, start, end


def _edges(neighbour: np.ndarray, levels: np.ndarray, k0: int, k1: int
           ) -> tuple[np.ndarray, np.ndarray]:
    """Rows where a run starts (or ends) for thresholds in [k0, k1), sorted by (k, row)."""
    low = np.clip(neighbour, k0, k1)
    high = np.clip(levels, k0, k1)
    count = np.maximum(high - low, 0)
    rows = np.repeat(np.arange(levels.size), count)
    offsets = np.arange(rows.size) - np.repeat(np.cumsum(count) - count, count)
    k = (np.repeat(low, count) + offsets).astype(np.int16)
    order = np.argsort(k, kind="stable")  # radix sort on int16; keeps rows in order within k
    return k[order].astype(np.int64), rows[order]


def first_max(values) -> float:
    """Python's ``max`` over a sequence, as TSB-AD takes it: NaNs are skipped unless the first
    value is NaN, which then wins (no value compares greater than NaN)."""
    values = np.asarray(values, dtype=np.float64)
    if np.isnan(values[0]):
        return float("nan")
    return float(np.nanmax(values))
