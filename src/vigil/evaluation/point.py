"""Point-wise, threshold-free metrics: AUC-ROC, AUC-PR (average precision) and the best point F1
over every distinct threshold. Each row counts on its own, with no notion of events; the
numbers equal scikit-learn's ``roc_auc_score``, ``average_precision_score`` and the maximum F1
along ``precision_recall_curve`` (as TSB-AD 1.5 reports them) to rounding."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from vigil.evaluation._common import check_score_label

#: TSB-AD's ``metric_PointF1`` adds 1e-5 to the F1 denominator; kept so the values agree.
_F1_EPS = 1e-5


def _curve(score: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """True and false positives when flagging ``score >= t``, for each distinct ``t``,
    from the highest threshold down."""
    order = np.argsort(score, kind="stable")[::-1]
    sorted_score = score[order]
    tps = np.cumsum(label[order])
    last_of_tie = np.r_[np.flatnonzero(np.diff(sorted_score)), sorted_score.size - 1]
    tps = tps[last_of_tie]
    fps = last_of_tie + 1 - tps
    return tps.astype(np.float64), fps.astype(np.float64)


def auc_roc(score: ArrayLike, label: ArrayLike) -> float:
    """Area under the ROC curve (ties share a trapezoid).

    Examples
    --------
    >>> auc_roc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
    """
    score, label = check_score_label(score, label)
    tps, fps = _curve(score, label)
    tpr = np.r_[0.0, tps / tps[-1]]
    fpr = np.r_[0.0, fps / fps[-1]]
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))


def auc_pr(score: ArrayLike, label: ArrayLike) -> float:
    """Average precision: the sum over distinct thresholds of precision times the gain in recall.

    Examples
    --------
    >>> round(auc_pr([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]), 6)
    0.833333
    """
    score, label = check_score_label(score, label)
    tps, fps = _curve(score, label)
    precision = tps / (tps + fps)
    recall_gain = np.diff(np.r_[0.0, tps / tps[-1]])
    return float(np.sum(recall_gain * precision))


def best_f1(score: ArrayLike, label: ArrayLike) -> float:
    """Best point-wise F1 over every distinct threshold (an oracle threshold: optimistic, since
    a deployed detector cannot choose its threshold after seeing the labels).

    Examples
    --------
    >>> round(best_f1([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]), 4)
    0.8
    """
    score, label = check_score_label(score, label)
    tps, fps = _curve(score, label)
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    f1 = 2 * precision * recall / (precision + recall + _F1_EPS)
    return float(max(f1.max(), 0.0))
