"""Event-aware F1 scores at the best of 100 thresholds: range-based precision, recall and F1
(Tatbul et al., "Precision and Recall for Time Series", NeurIPS 2018), event-wise F1 and
point-adjusted F1, as TSB-AD 1.5 defines them.

Range-based recall (alpha = 0.2, flat positional bias, reciprocal cardinality) credits each
labelled event 0.2 for being hit at all plus 0.8 x (share of its rows flagged) / (number of
flagged runs overlapping it); range-based precision does the same from the flagged runs' side
with alpha = 0. Event-wise F1 combines the share of events hit with point precision.
Point-adjusted F1 first marks every row of a hit event as found.

The oracle functions take the best F1 over ``linspace(min(score), max(score), 100)`` with the
rule ``score > threshold``: a threshold chosen after seeing the labels, so every number here is
an upper bound on what a deployed threshold reaches.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from vigil.evaluation._common import (
    check_pred, check_score_label, flagged_counts, iter_flagged_runs, oracle_levels, runs,
    segment_max, N_ORACLE_THRESHOLDS,
)

#: Weight of "the event was hit at all" in range-based recall (TSB-AD's ``alpha=0.2``).
RANGE_RECALL_ALPHA = 0.2
#: TSB-AD's ``self.eps`` in the event-wise F1 denominator.
_EVENT_F1_EPS = 1e-15

#: Why point-adjusted F1 must not be read as a detector's quality; shown beside every PA-F1.
POINT_ADJUST_NOTE = (
    "PA-F1 is optimistic: point adjustment counts every row of a labelled event as detected as "
    "soon as any one row of it crosses the threshold, so on long events even random scores "
    "reach a high PA-F1 (uniform random scores average 0.95 on the NAB series)."
)


def range_precision_recall(label: ArrayLike, pred: ArrayLike,
                           alpha: float = RANGE_RECALL_ALPHA) -> tuple[float, float]:
    """Range-based ``(precision, recall)`` of a binary prediction (Tatbul et al., flat bias).

    Examples
    --------
    The event [1, 4] is hit (0.2) with half its rows by one run (0.8 x 0.5 / 1); of the two
    runs, [2, 3] lies inside the event (1) and [7, 7] outside (0):

    >>> p, r = range_precision_recall([0, 1, 1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 0, 0, 0, 1])
    >>> round(p, 6), round(r, 6)
    (0.5, 0.6)
    """
    pred = check_pred(pred, np.asarray(label).size)
    _, label = check_score_label(pred.astype(float), label)
    precision, recall = _range_pr(pred, 1, label, alpha)
    return float(precision[0]), float(recall[0])


def range_f1(score: ArrayLike, label: ArrayLike) -> float:
    """Best range-based F1 (Tatbul et al.) over the 100-threshold oracle grid.

    Examples
    --------
    Best below 1: flags rows 1-3 and 7, recall 0.2 + 0.8 x 3/4 = 0.8, precision 0.5:

    >>> round(range_f1([0, 3, 1, 2, 0, 0, 0, 2], [0, 1, 1, 1, 1, 0, 0, 0]), 6)  # 8 / 13
    0.615385
    """
    score, label = check_score_label(score, label)
    precision, recall = _range_pr(oracle_levels(score), N_ORACLE_THRESHOLDS, label,
                                  RANGE_RECALL_ALPHA)
    total = precision + recall
    f1 = np.where(total > 0, 2 * precision * recall / np.where(total > 0, total, 1), 0.0)
    return float(f1.max())


def _range_pr(levels, n_levels, label, alpha) -> tuple[np.ndarray, np.ndarray]:
    """Range-based precision and recall at each threshold."""
    starts, ends = _tsb_ranges(label)
    n_events = starts.size
    rows = np.arange(label.size)
    event_of_row = np.searchsorted(starts, rows, side="right") - 1
    inside = (event_of_row >= 0) & (rows <= ends[np.maximum(event_of_row, 0)])
    # hits[i, k]: rows of event i flagged at threshold k.
    hist = np.bincount(event_of_row[inside] * (n_levels + 1) + levels[inside],
                       minlength=n_events * (n_levels + 1)).reshape(n_events, n_levels + 1)
    hits = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1][:, 1:]
    overlaps = np.zeros(n_levels * (n_events + 1))
    precision_sum = np.zeros(n_levels)
    n_runs = np.zeros(n_levels)
    cum_label = np.r_[0, np.cumsum(label)]
    full = levels.size - 1
    for _, k, run_start, run_end in iter_flagged_runs(levels, n_levels):
        # TSB-AD's range_convers_new finds no run in an all-ones vector.
        keep = ~((run_start == 0) & (run_end == full))
        k, run_start, run_end = k[keep], run_start[keep], run_end[keep]
        first = np.searchsorted(ends, run_start, side="left")
        last = np.searchsorted(starts, run_end, side="right") - 1
        n_overlap = np.maximum(last - first + 1, 0)
        some = n_overlap > 0
        base = k[some] * (n_events + 1)
        overlaps += np.bincount(base + first[some], minlength=overlaps.size)
        overlaps -= np.bincount(base + last[some] + 1, minlength=overlaps.size)
        share = (cum_label[run_end + 1] - cum_label[run_start]) / (run_end - run_start + 1)
        credit = np.where(n_overlap > 0, share / np.maximum(n_overlap, 1), 0.0)
        precision_sum += np.bincount(k, weights=credit, minlength=n_levels)
        n_runs += np.bincount(k, minlength=n_levels)
    overlaps = np.cumsum(overlaps.reshape(n_levels, -1), axis=1)[:, :n_events].T
    cardinality = np.where(overlaps > 0, 1 / np.maximum(overlaps, 1), 0.0)
    lengths = (ends - starts + 1)[:, None]
    reward = alpha * (hits > 0) + (1 - alpha) * hits / lengths * cardinality
    recall = reward.sum(axis=0) / n_events if n_events else np.zeros(n_levels)
    precision = np.where(n_runs > 0, precision_sum / np.maximum(n_runs, 1), 0.0)
    return precision, recall


def _tsb_ranges(binary) -> tuple[np.ndarray, np.ndarray]:
    """Runs as TSB-AD's ``range_convers_new`` finds them: none at all in an all-ones vector."""
    if binary.all():
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return runs(binary)


def event_f1(score: ArrayLike, label: ArrayLike) -> float:
    """Best event-wise F1 over the oracle grid: recall = share of labelled events with a
    flagged row, precision = point precision. As in TSB-AD 1.5, an event that runs to the last
    row loses that row.

    Examples
    --------
    >>> round(event_f1([0, 3, 1, 2, 0, 0, 0, 2], [0, 1, 1, 1, 1, 0, 0, 0]), 6)
    1.0
    """
    score, label = check_score_label(score, label)
    levels = oracle_levels(score)
    starts, ends = runs(label)
    # TSB-AD's _get_events closes an event that reaches the end at row n - 2.
    ends = np.where(ends == label.size - 1, label.size - 2, ends)
    event_level = segment_max(levels, starts, ends)
    recall = flagged_counts(event_level, N_ORACLE_THRESHOLDS) / starts.size
    flagged = flagged_counts(levels, N_ORACLE_THRESHOLDS)
    true_pos = flagged_counts(levels[label == 1], N_ORACLE_THRESHOLDS)
    precision = np.where(flagged > 0, true_pos / np.maximum(flagged, 1), 0.0)
    f1 = 2 * recall * precision / (recall + precision + _EVENT_F1_EPS)
    return float(f1.max())


def point_adjusted_f1(score: ArrayLike, label: ArrayLike) -> float:
    """Best point-adjusted F1 over the oracle grid. OPTIMISTIC, see ``POINT_ADJUST_NOTE``:
    any one flagged row of an event counts the whole event as found.

    Examples
    --------
    >>> point_adjusted_f1([0, 3, 0, 0, 0, 0, 0, 0], [0, 1, 1, 1, 1, 0, 0, 0])
    1.0
    """
    score, label = check_score_label(score, label)
    levels = oracle_levels(score)
    starts, ends = runs(label)
    event_level = segment_max(levels, starts, ends)
    k = np.arange(N_ORACLE_THRESHOLDS)
    hit = event_level[:, None] > k
    true_pos = ((ends - starts + 1)[:, None] * hit).sum(axis=0)
    if label[0] == 1:
        # TSB-AD's _adjust_predicts walks back to row 1, never row 0: row 0 keeps its own flag.
        true_pos = true_pos - (hit[0] & (levels[0] <= k))
    flagged = flagged_counts(levels, N_ORACLE_THRESHOLDS)
    false_pos = flagged - flagged_counts(levels[label == 1], N_ORACLE_THRESHOLDS)
    false_neg = label.sum() - true_pos
    f1 = 2 * true_pos / (2 * true_pos + false_pos + false_neg)
    return float(f1.max())
