"""Affiliation precision, recall and F1 (Huet et al., "Local Evaluation of Time Series Anomaly
Detection Algorithms", KDD 2022), as TSB-AD 1.5 computes them, at the best of 100 thresholds.

Row ``j`` stands for the interval ``[j, j + 1)``. The time axis ``[0, n)`` is cut into one zone
per labelled event (boundaries halfway between neighbouring events); in its zone, an event's
precision is the mean over flagged time of the probability that a random point of the zone
lies farther from the event, and its recall the mean over the event of the probability that a
random point lies farther from the nearest flagged interval. Precision averages the zones that
hold flagged time, recall all zones.

Closed forms of those integrals are evaluated for every (threshold, flagged interval, zone)
piece at once, so 100 thresholds cost a few array passes instead of 100 Python loops.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from vigil.evaluation._common import (
    check_pred, check_score_label, first_max, iter_flagged_runs, oracle_levels, runs,
    N_ORACLE_THRESHOLDS,
)

#: TSB-AD's ``self.eps`` in the affiliation F1 denominator.
_F1_EPS = 1e-15


def affiliation_precision_recall(label: ArrayLike, pred: ArrayLike
                                 ) -> tuple[float, float]:
    """Affiliation ``(precision, recall)`` of a binary prediction; precision is NaN when nothing
    is flagged.

    Examples
    --------
    >>> p, r = affiliation_precision_recall([0, 0, 1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 0, 0, 0, 0])
    >>> float(p), float(r)
    (1.0, 1.0)
    """
    pred = check_pred(pred, np.asarray(label).size)
    _, label = check_score_label(pred.astype(float), label)
    precision, recall = _affiliation_pr(pred, 1, label)
    return float(precision[0]), float(recall[0])


def affiliation_f1(score: ArrayLike, label: ArrayLike) -> float:
    """Best affiliation F1 over the 100-threshold oracle grid (NaN for a constant score).

    Examples
    --------
    >>> round(affiliation_f1([0, 0, 1, 4, 3, 0, 0, 0, 1, 0], [0, 0, 0, 1, 1, 0, 0, 0, 0, 0]), 6)
    1.0
    """
    score, label = check_score_label(score, label)
    precision, recall = _affiliation_pr(oracle_levels(score), N_ORACLE_THRESHOLDS, label)
    with np.errstate(invalid="ignore"):
        f1 = 2 * precision * recall / (precision + recall + _F1_EPS)
    return first_max(f1)


def _affiliation_pr(levels, n_levels, label) -> tuple[np.ndarray, np.ndarray]:
    """Affiliation precision (NaN where nothing is flagged) and recall at each threshold."""
    starts, ends = runs(label)
    event_lo, event_hi = starts.astype(float), ends + 1.0
    n_zones = starts.size
    bounds = np.r_[0.0, (event_hi[:-1] + event_lo[1:]) / 2, float(label.size)]
    sums = np.zeros((3, n_levels * n_zones))  # precision integral, flagged length, recall
    for _, k, run_start, run_end in iter_flagged_runs(levels, n_levels):
        run, zone, lo, hi = _split_by_zone(run_start.astype(float), run_end + 1.0, bounds)
        group = k[run] * n_zones + zone
        piece_zone = (event_lo[zone], event_hi[zone], bounds[zone], bounds[zone + 1])
        size = n_levels * n_zones
        sums[0] += np.bincount(group, _precision_integral(lo, hi, *piece_zone), minlength=size)
        sums[1] += np.bincount(group, hi - lo, minlength=size)
        sums[2] += np.bincount(group, _recall_integral(lo, hi, group, *piece_zone),
                               minlength=size)
    integral, flagged, recall_sum = (s.reshape(n_levels, n_zones) for s in sums)
    with np.errstate(invalid="ignore", divide="ignore"):
        zone_precision = np.where(flagged > 0, integral / flagged, np.nan)
    defined = flagged > 0
    precision = np.full(n_levels, np.nan)
    some = defined.any(axis=1)
    precision[some] = np.nansum(zone_precision[some], axis=1) / defined[some].sum(axis=1)
    recall = (recall_sum / (event_hi - event_lo)).mean(axis=1)
    return precision, recall


def _split_by_zone(run_lo, run_hi, bounds) -> tuple[np.ndarray, ...]:
    """Cut flagged intervals at zone boundaries: (run, zone, lo, hi) per piece of positive
    length, in the order of the runs (so also sorted by zone within a threshold)."""
    first = np.searchsorted(bounds, run_lo, side="right") - 1
    last = np.searchsorted(bounds, run_hi, side="left") - 1
    count = last - first + 1
    run = np.repeat(np.arange(run_lo.size), count)
    zone = first[run] + np.arange(run.size) - np.repeat(np.cumsum(count) - count, count)
    lo = np.maximum(run_lo[run], bounds[zone])
    return run, zone, lo, np.minimum(run_hi[run], bounds[zone + 1])


def _precision_integral(lo, hi, j_lo, j_hi, e_lo, e_hi) -> np.ndarray:
    """Integral over the flagged piece [lo, hi] of P(random zone point is farther from J)."""
    inside = np.maximum(np.minimum(hi, j_hi) - np.maximum(lo, j_lo), 0)
    margin = np.minimum(j_lo - e_lo, e_hi - j_hi)
    before_hi = np.minimum(hi, j_lo)
    before = _outside_precision(np.maximum(before_hi - lo, 0), j_lo - np.maximum(before_hi, lo),
                                np.maximum(j_lo - lo, 0), margin, j_hi - j_lo, e_hi - e_lo)
    after_lo = np.maximum(lo, j_hi)
    after = _outside_precision(np.maximum(hi - after_lo, 0), np.minimum(after_lo, hi) - j_hi,
                               np.maximum(hi - j_hi, 0), margin, j_hi - j_lo, e_hi - e_lo)
    return inside + before + after


def _outside_precision(length, d_min, d_max, m, j_len, e_len) -> np.ndarray:
    """TSB-AD's integral_mini_interval_Pprecision_CDFmethod for a piece outside J."""
    d_min = np.where(length > 0, d_min, d_max)  # an empty piece contributes exactly 0
    min_piece = ((np.minimum(d_max, m) ** 2 - np.minimum(d_min, m) ** 2) / 2
                 + m * (np.maximum(d_max, m) - np.maximum(d_min, m)))
    linear = (d_max ** 2 - d_min ** 2) / 2
    return length - (min_piece + linear + j_len * length) / e_len


def _recall_integral(lo, hi, group, j_lo, j_hi, e_lo, e_hi) -> np.ndarray:
    """Integral, over the part of J closer to this flagged piece than to the zone's other
    pieces, of P(random zone point is farther from the piece)."""
    same_prev = np.r_[False, group[1:] == group[:-1]]
    same_next = np.r_[group[1:] == group[:-1], False]
    cell_lo = np.where(same_prev, (np.r_[0.0, hi[:-1]] + lo) / 2, e_lo)
    cell_hi = np.where(same_next, (hi + np.r_[lo[1:], 0.0]) / 2, e_hi)
    t_lo = np.maximum(cell_lo, j_lo)
    t_hi = np.maximum(np.minimum(cell_hi, j_hi), t_lo)
    inside = np.maximum(np.minimum(t_hi, hi) - np.maximum(t_lo, lo), 0)
    before = _outside_recall(t_lo, np.maximum(np.minimum(t_hi, lo), t_lo), lo, e_lo, e_hi, True)
    after = _outside_recall(np.minimum(np.maximum(t_lo, hi), t_hi), t_hi, hi, e_lo, e_hi, False)
    return inside + before + after


def _outside_recall(a, b, pivot, e_lo, e_hi, pivot_after) -> np.ndarray:
    """TSB-AD's integral_mini_interval_Precall_CDFmethod: J part [a, b] on one side of the
    flagged piece, whose nearest point is ``pivot``; J is cut at the zone's middle and at the
    midpoints between the pivot and the zone's ends, each part with its own closed form."""
    e_mid, near_lo, near_hi = (e_lo + e_hi) / 2, (e_lo + pivot) / 2, (e_hi + pivot) / 2

    def part(lo, hi):
        lo = np.maximum(lo, a)
        hi = np.maximum(np.minimum(hi, b), lo)
        return lo, hi, hi - lo, hi ** 2 - lo ** 2

    _, _, w1, q1 = part(a, np.minimum(e_mid, near_lo))
    _, _, w2, q2 = part(near_lo, e_mid)
    _, _, w3, q3 = part(e_mid, near_hi)
    _, _, w4, q4 = part(np.maximum(e_mid, near_hi), b)
    if pivot_after:
        total = ((pivot - e_lo) * w1 + 2 * pivot * w2 - q2 + 2 * pivot * w3 - q3
                 + (e_hi + pivot) * w4 - q4)
    else:
        total = (q1 - (e_lo + pivot) * w1 + q2 - 2 * pivot * w2 + q3 - 2 * pivot * w3
                 + (e_hi - pivot) * w4)
    value = (b - a) - total / (e_hi - e_lo)
    return np.where((pivot <= e_lo) | (pivot >= e_hi), 0.0, value)
