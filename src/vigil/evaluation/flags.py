"""What a user of a deployed model sees: how good the model's own flags (``is_anomaly``) are
against labels, as rows and as events (runs of consecutive rows), with no threshold chosen in
hindsight. The threshold-free TSB-AD metrics rank scores; these judge the decisions acted on.

Every count is over the evaluated rows only: an event or a flagged run cut by the start or end
of those rows counts as the part that lies inside them.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from vigil.errors import DataError
from vigil.evaluation._common import runs as _inclusive_runs

#: The keys of :func:`flag_metrics`, in the order reports show them.
FLAG_METRICS = (
    "flagged", "precision", "recall", "F1", "oracle F1", "F1 / oracle", "events caught",
    "false alarms / 1k rows", "false alarms / day", "event-F1", "delay",
)

_DAY = np.timedelta64(86_400_000_000_000, "ns")


def runs(mask: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Starts and stops (exclusive, as in a slice) of the runs of True in ``mask``.

    >>> runs([False, True, True, False, True])
    (array([1, 4]), array([3, 5]))
    """
    starts, ends = _inclusive_runs(np.asarray(mask, dtype=bool))
    return starts, ends + 1


def flag_metrics(flags: ArrayLike, label: ArrayLike, *, oracle_f1: float | None = None,
                 times: ArrayLike | None = None) -> dict[str, float]:
    """Point and event quality of binary ``flags`` against 0/1 ``label`` (one per row).

    Keys, in :data:`FLAG_METRICS` order:

    - ``flagged``: share of rows flagged.
    - ``precision``, ``recall``, ``F1``: point-wise, of the flags (precision 0 when nothing is
      flagged, as nothing flagged was right).
    - ``oracle F1``: ``oracle_f1`` as given (the best point F1 any threshold could give, TSB-AD's
      Standard-F1), and ``F1 / oracle``: how much of it the model's own threshold keeps (NaN
      without a positive oracle; it can pass 1, as the oracle tries only 100 thresholds).
    - ``events caught``: share of labelled events (runs of label 1) with a flagged row inside.
    - ``false alarms / 1k rows``: flagged runs that contain no labelled row, per 1,000 rows;
      ``false alarms / day`` the same per day of the span of ``times`` (NaN without them).
    - ``event-F1``: F1 of recall = events caught and precision = the share of flagged runs
      that contain a labelled row (0 when nothing is flagged).
    - ``delay``: mean rows from a caught event's start to its first flag (NaN if none caught).

    Recall, F1, events caught and event-F1 are NaN when there is no labelled row.

    Example:
        Rows 2-4 are an event flagged from row 3 (caught, delay 1), rows 8-9 an event never
        flagged, and the flag at row 6 touches no label (one false alarm in 10 rows):

        >>> label = [0, 0, 1, 1, 1, 0, 0, 0, 1, 1]
        >>> flags = [0, 0, 0, 1, 1, 0, 1, 0, 0, 0]
        >>> m = flag_metrics(flags, label, oracle_f1=0.8)
        >>> [round(m[k], 3) for k in ("precision", "recall", "F1", "F1 / oracle")]
        [0.667, 0.4, 0.5, 0.625]
        >>> m["events caught"], m["event-F1"], m["false alarms / 1k rows"], m["delay"]
        (0.5, 0.5, 100.0, 1.0)
    """
    flags, truth = _check(flags, label)
    n = flags.size
    hits = int(np.count_nonzero(flags & truth))
    n_flagged, n_true = int(np.count_nonzero(flags)), int(np.count_nonzero(truth))
    precision = hits / n_flagged if n_flagged else 0.0
    recall = hits / n_true if n_true else np.nan
    f1 = _f1(precision, recall)

    event_starts, event_stops = runs(truth)
    caught, delays = _caught(flags, event_starts, event_stops)
    run_starts, run_stops = runs(flags)
    labelled_before = np.concatenate(([0], np.cumsum(truth)))
    true_runs = int(np.count_nonzero(labelled_before[run_stops] > labelled_before[run_starts]))
    false_alarms = run_starts.size - true_runs
    events_caught = caught.mean() if caught.size else np.nan
    run_precision = true_runs / run_starts.size if run_starts.size else 0.0

    oracle = np.nan if oracle_f1 is None else float(oracle_f1)
    values = {
        "flagged": n_flagged / n,
        "precision": precision,
        "recall": recall,
        "F1": f1,
        "oracle F1": oracle,
        "F1 / oracle": f1 / oracle if oracle > 0 else np.nan,
        "events caught": events_caught,
        "false alarms / 1k rows": 1000 * false_alarms / n,
        "false alarms / day": false_alarms / _span_days(times, n),
        "event-F1": _f1(run_precision, events_caught),
        "delay": delays[caught].mean() if caught.any() else np.nan,
    }
    return {key: float(values[key]) for key in FLAG_METRICS}


def _check(flags: ArrayLike, label: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Both as 1-D bool arrays of one length, so a mismatch (or scores passed as flags) fails
    here and not as a wrong count."""
    flags, label = np.asarray(flags), np.asarray(label)
    if flags.ndim != 1 or flags.shape != label.shape or not flags.size:
        raise DataError(f"flags and label must be 1-D, non-empty and of one length; got shapes "
                        f"{flags.shape} and {label.shape}")
    for name, values in (("flags", flags), ("label", label)):
        if not np.isin(values, (0, 1)).all():
            raise DataError(f"{name} must hold only 0 and 1 (or False and True); got values "
                            f"{np.unique(values)[:5].tolist()}")
    return flags.astype(bool), label.astype(bool)


def _f1(precision: float, recall: float) -> float:
    """Harmonic mean; 0 when both are 0, NaN when either is undefined."""
    if np.isnan(precision) or np.isnan(recall):
        return np.nan
    total = precision + recall
    return 2 * precision * recall / total if total else 0.0


def _caught(flags: np.ndarray, starts: np.ndarray, stops: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """Per event: whether a flag lies in ``[start, stop)`` and rows from start to the first one
    (found by binary search over the flagged rows, so the cost is per event, not per row)."""
    flagged_rows = np.flatnonzero(flags)
    at = np.searchsorted(flagged_rows, starts)
    first = np.append(flagged_rows, flags.size)[at]
    return first < stops, first - starts


def _span_days(times: ArrayLike | None, n: int) -> float:
    """Days from the first to the last valid timestamp; NaN without times or with a zero span."""
    if times is None:
        return np.nan
    stamps = np.asarray(times, dtype="datetime64[ns]")
    if stamps.shape != (n,):
        raise DataError(f"times must have one timestamp per row ({n}); got shape {stamps.shape}")
    stamps = stamps[~np.isnat(stamps)]
    span = (stamps.max() - stamps.min()) / _DAY if stamps.size else 0.0
    return span if span > 0 else np.nan


__all__ = ["FLAG_METRICS", "flag_metrics", "runs"]
