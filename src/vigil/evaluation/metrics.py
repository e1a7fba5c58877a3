"""All of TSB-AD's metrics for one scored series in one call, ``evaluate_scores``: the same keys,
meanings and values (to 1e-6) as ``TSB_AD.evaluation.metrics.get_metrics(score, label,
slidingWindow)`` of TSB-AD 1.5 with its defaults, so vigil's numbers sit in the same table as the
published baselines. Use ``dominant_period`` on the series for ``sliding_window`` to follow the
baseline protocol exactly.

The F1-type metrics take the best of 100 thresholds chosen with the labels in hand (an oracle),
so they are upper bounds; point-adjusted F1 is in addition optimistic by construction and is
marked so wherever a report is shown.
"""

from __future__ import annotations

from typing import ClassVar

from numpy.typing import ArrayLike

from vigil.evaluation._common import check_score_label, check_window
from vigil.evaluation.affiliation import affiliation_f1
from vigil.evaluation.point import auc_pr, auc_roc, best_f1
from vigil.evaluation.range_based import (
    POINT_ADJUST_NOTE, event_f1, point_adjusted_f1, range_f1,
)
from vigil.evaluation.vus import volume_under_surface

#: Metric names, in TSB-AD's ``get_metrics`` order.
METRIC_NAMES = (
    "AUC-PR", "AUC-ROC", "VUS-PR", "VUS-ROC", "Standard-F1", "PA-F1", "Event-based-F1",
    "R-based-F1", "Affiliation-F",
)

#: Metrics that overstate a detector's quality whatever its threshold: label them in any output.
OPTIMISTIC = ("PA-F1",)

ORACLE_NOTE = ("Standard-F1, PA-F1, Event-based-F1, R-based-F1 and Affiliation-F use the best "
               "threshold chosen with the labels (an oracle): upper bounds, not deployed results.")


class MetricReport(dict):
    """A ``dict`` of metric name -> value (TSB-AD's keys) that shows PA-F1 as optimistic.

    ``notes`` holds the caveats; ``str(report)`` prints one metric per line, PA-F1 marked.
    """

    notes: ClassVar[dict[str, str]] = {"PA-F1": POINT_ADJUST_NOTE, "oracle": ORACLE_NOTE}

    def label(self, name: str) -> str:
        """The display name: ``"PA-F1 (optimistic)"`` for PA-F1, the key itself otherwise."""
        return f"{name} (optimistic)" if name in OPTIMISTIC else name

    def __str__(self) -> str:
        width = max(len(self.label(name)) for name in self)
        lines = [f"{self.label(name):<{width}}  {value:.4f}" for name, value in self.items()]
        return "\n".join(lines + ["", POINT_ADJUST_NOTE, ORACLE_NOTE])

    def __repr__(self) -> str:
        body = ", ".join(f"{self.label(name)!r}: {value:.6g}" for name, value in self.items())
        return f"MetricReport({{{body}}})"


def evaluate_scores(score: ArrayLike, label: ArrayLike, sliding_window: int) -> MetricReport:
    """TSB-AD's nine metrics for one series (higher score = more anomalous, label 1 = anomaly).

    ``sliding_window`` is the VUS buffer width; the TSB-AD protocol takes
    ``dominant_period(series)``.

    Examples
    --------
    >>> score = [0.1, 0.2, 0.1, 0.9, 0.3, 0.2, 0.1, 0.8, 0.1, 0.2]
    >>> label = [0, 0, 0, 1, 1, 1, 0, 0, 0, 0]
    >>> report = evaluate_scores(score, label, sliding_window=2)
    >>> round(report["VUS-PR"], 4), round(report["AUC-ROC"], 4)
    (0.7222, 0.8571)
    >>> print(str(report).splitlines()[5])
    PA-F1 (optimistic)  1.0000
    """
    score, label = check_score_label(score, label)
    window = check_window(sliding_window)
    vus_roc, vus_pr = volume_under_surface(score, label, window)
    values = (
        auc_pr(score, label), auc_roc(score, label), vus_pr, vus_roc, best_f1(score, label),
        point_adjusted_f1(score, label), event_f1(score, label), range_f1(score, label),
        affiliation_f1(score, label),
    )
    return MetricReport(zip(METRIC_NAMES, values))
