"""Accuracy metrics for anomaly scores against labelled series, matching the TSB-AD benchmark
(TSB-AD 1.5) to 1e-6 with numpy alone: ``evaluate_scores`` gives all nine of its metrics at once,
``dominant_period`` its VUS window. Each metric is also a function of its own::

    from vigil.evaluation import dominant_period, evaluate_scores
    report = evaluate_scores(score, label, sliding_window=dominant_period(series))
    report["VUS-PR"]        # the measure TSB-AD ranks detectors by

PA-F1 (point-adjusted F1) is optimistic by construction and marked so in every report.
``flag_metrics`` judges a model's own flags (``is_anomaly``) instead: point precision, recall and
F1, events caught, false alarms per 1,000 rows and per day, event-F1 and detection delay.
"""

from __future__ import annotations

from vigil.evaluation.affiliation import affiliation_f1, affiliation_precision_recall
from vigil.evaluation.flags import FLAG_METRICS, flag_metrics, runs
from vigil.evaluation.metrics import (
    METRIC_NAMES, OPTIMISTIC, MetricReport, evaluate_scores,
)
from vigil.evaluation.period import dominant_period
from vigil.evaluation.point import auc_pr, auc_roc, best_f1
from vigil.evaluation.range_based import (
    POINT_ADJUST_NOTE, event_f1, point_adjusted_f1, range_f1, range_precision_recall,
)
from vigil.evaluation.vus import volume_under_surface, vus_pr, vus_roc

__all__ = [
    "FLAG_METRICS", "METRIC_NAMES", "OPTIMISTIC", "POINT_ADJUST_NOTE", "MetricReport",
    "affiliation_f1", "affiliation_precision_recall", "auc_pr", "auc_roc", "best_f1",
    "dominant_period", "evaluate_scores", "event_f1", "flag_metrics", "point_adjusted_f1",
    "range_f1", "range_precision_recall", "runs", "volume_under_surface", "vus_pr", "vus_roc",
]
