"""Volume under the surface, VUS-ROC and VUS-PR (Paparrizos et al., "Volume Under the Surface:
A New Accuracy Evaluation Measure for Time-Series Anomaly Detection", VLDB 2022): range-aware
ROC and PR areas averaged over buffer widths 0..``sliding_window``. VUS-PR is the measure the
TSB-AD benchmark ranks detectors by.

For buffer width ``w`` every labelled event is widened by ``w // 2`` rows on each side, with
weight ``sqrt(1 - d / w)`` at distance ``d`` (overlapping buffers add, capped at 1). At each of
250 thresholds (``score >= sorted_score[i]`` for ``i`` evenly spaced over the ranks) a row's
buffer weight counts as a partial true positive, recall is scaled by the share of widened
events hit at all, and the curve areas follow. This computes exactly what TSB-AD 1.5's
``RangeAUC_volume_opt`` computes, but in O(rows log rows + widths x rows near events) instead
of O(rows x widths x thresholds): counts come from one sort of the scores, buffer weights only
touch the rows near events, and event hits come from running minima of each row's first
threshold.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from vigil.evaluation._common import check_score_label, check_window, runs, segment_max

#: Thresholds per curve in TSB-AD's ``get_metrics`` (``thre=250``).
N_VUS_THRESHOLDS = 250

#: Cells of the (widths x buffer rows) weight block built at once: about 16 MB of float64.
_BLOCK_CELLS = 2_000_000


def vus_roc(score: ArrayLike, label: ArrayLike, sliding_window: int) -> float:
    """VUS-ROC: the range-aware ROC area averaged over buffer widths ``0..sliding_window``.

    Examples
    --------
    With width 0 this is the range-aware ROC area of one curve; a normal row outranks the event:

    >>> vus_roc([3, 2, 1, 0], [0, 1, 1, 0], 0)
    0.5
    >>> round(vus_roc([3, 2, 1, 0], [0, 1, 1, 0], 2), 4)  # row 0 is now in the event's buffer
    0.6163
    """
    return volume_under_surface(score, label, sliding_window)[0]


def vus_pr(score: ArrayLike, label: ArrayLike, sliding_window: int) -> float:
    """VUS-PR: the range-aware average precision averaged over buffer widths ``0..sliding_window``.

    Examples
    --------
    >>> round(vus_pr([3, 2, 1, 0], [0, 1, 1, 0], 0), 6)  # 0.5 x 1/2 + 0.5 x 2/3
    0.583333
    >>> round(vus_pr([3, 2, 1, 0], [0, 1, 1, 0], 2), 4)
    0.6632
    """
    return volume_under_surface(score, label, sliding_window)[1]


def volume_under_surface(score: ArrayLike, label: ArrayLike, sliding_window: int,
                         n_thresholds: int = N_VUS_THRESHOLDS) -> tuple[float, float]:
    """``(VUS-ROC, VUS-PR)`` in one pass."""
    score, label = check_score_label(score, label)
    max_width = check_window(sliding_window)
    n = score.size
    thresholds = -np.sort(-score)[np.linspace(0, n - 1, n_thresholds).astype(int)]
    # First threshold index at which each row is flagged (n_thresholds = never).
    first = np.searchsorted(-thresholds, -score, side="left")
    n_flagged = np.cumsum(np.bincount(first, minlength=n_thresholds + 1))[:n_thresholds]
    tp_core = np.cumsum(np.bincount(first[label == 1], minlength=n_thresholds + 1))
    starts, ends = runs(label)
    widths = np.arange(max_width + 1)
    buffer_tp = _buffer_true_positives(first, label, starts, ends, widths, n_thresholds)
    hit_share = _event_hit_share(first, starts, ends, widths, n_thresholds)
    positives = float(label.sum())
    tp = tp_core[:n_thresholds] + buffer_tp
    # TSB-AD's P_new = (P + N_labels) / 2, with N_labels = P + buffer weight flagged.
    positives_new = positives + buffer_tp / 2
    tpr = np.minimum(tp / positives_new, 1.0) * hit_share
    fpr = (n_flagged - tp) / (n - positives_new)
    precision = tp / n_flagged
    ones = np.ones((widths.size, 1))
    tpr = np.hstack([0 * ones, tpr, ones])
    fpr = np.hstack([0 * ones, fpr, ones])
    roc = np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]) / 2, axis=1)
    pr = np.sum(np.diff(tpr[:, :-1], axis=1) * precision, axis=1)
    return float(roc.mean()), float(pr.mean())


def _buffer_true_positives(first, label, starts, ends, widths, n_thresholds) -> np.ndarray:
    """``out[w, k]``: summed buffer weight of the normal rows flagged at threshold ``k``.

    A buffer weight ``sqrt(1 - d / w)`` with ``d <= w // 2`` is at least ``sqrt(1/2)``, so two
    buffers reaching one row always sum past the cap of 1: a row's weight depends only on its
    nearest and second-nearest event edge (``d1``, ``d2``), which keeps the work at
    widths x buffer rows whatever the events' layout.
    """
    out = np.zeros((widths.size, n_thresholds))
    half = int(widths[-1]) // 2
    if half == 0:
        return out
    rows, d1, d2 = _nearest_edges(label, starts, ends, half)
    if rows.size == 0:
        return out
    order = np.argsort(d1, kind="stable")  # width w only uses rows with d1 <= w // 2: a prefix
    d1, d2, row_first = d1[order], d2[order], first[rows[order]]
    chunk = max(1, _BLOCK_CELLS // rows.size)
    for lo in range(0, widths.size, chunk):
        w = widths[lo:lo + chunk, None]
        used = np.searchsorted(d1, int(w[-1, 0]) // 2, side="right")
        near, second = d1[:used], d2[:used]
        weight = np.where(second <= w // 2, 1.0, np.where(
            near <= w // 2, np.sqrt(np.abs(1 - near / np.maximum(w, 1))), 0.0))
        block = np.arange(w.shape[0])[:, None]
        index = (block * (n_thresholds + 1) + row_first[:used]).ravel()
        hist = np.bincount(index, weights=weight.ravel(),
                           minlength=w.shape[0] * (n_thresholds + 1))
        out[lo:lo + w.shape[0]] = np.cumsum(hist.reshape(w.shape[0], -1), axis=1)[:, :-1]
    return out


def _nearest_edges(label, starts, ends, half) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Normal rows within ``half`` rows of an event edge, with their smallest and second
    smallest distance to one (``inf`` where there is no second)."""
    dist = np.arange(1, half + 1)
    left = starts[:, None] - dist
    right = ends[:, None] + dist
    rows = np.concatenate([left.ravel(), right.ravel()])
    dists = np.tile(dist, 2 * starts.size)
    keep = (rows >= 0) & (rows < label.size)
    keep[keep] = label[rows[keep]] == 0  # labelled rows have weight 1 already
    rows, dists = rows[keep], dists[keep]
    order = np.lexsort((dists, rows))
    rows, dists = rows[order], dists[order]
    head = np.r_[True, rows[1:] != rows[:-1]]
    first_at = np.flatnonzero(head)
    has_second = np.r_[first_at[1:], rows.size] - first_at > 1
    d2 = np.full(first_at.size, np.inf)
    d2[has_second] = dists[first_at[has_second] + 1]
    return rows[first_at], dists[first_at].astype(np.float64), d2


def _event_hit_share(first, starts, ends, widths, n_thresholds) -> np.ndarray:
    """``out[w, k]``: share of widened events (merged where buffers meet) with a flagged row."""
    n = first.size
    half = int(widths[-1]) // 2
    # Earliest threshold flagging a row of the event, or of its first h buffer rows on a side.
    core = n_thresholds - segment_max(n_thresholds - first, starts, ends)
    dist = np.arange(1, half + 1)
    left = np.minimum.accumulate(first[np.clip(starts[:, None] - dist, 0, n - 1)], axis=1)
    right = np.minimum.accumulate(first[np.clip(ends[:, None] + dist, 0, n - 1)], axis=1)
    gaps = starts[1:] - ends[:-1]
    out = np.empty((widths.size, n_thresholds))
    for w in widths:
        h = int(w) // 2
        event_first = core if h == 0 else np.minimum(core, np.minimum(left[:, h - 1],
                                                                         right[:, h - 1]))
        # TSB-AD's new_sequence: neighbours stay apart when end + h < next start - h.
        group_starts = np.r_[0, np.flatnonzero(gaps > 2 * h) + 1]
        group_first = np.minimum.reduceat(event_first, group_starts)
        hits = np.cumsum(np.bincount(group_first, minlength=n_thresholds + 1))[:n_thresholds]
        out[w] = hits / group_starts.size
    return out
