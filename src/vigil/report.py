"""Plots of a detection result: each channel over time with its anomalies in red (on the channel
that drove each one, where the method can tell; labeled anomaly windows shaded when labels
exist), and the score with its threshold beneath, each alarm event's extent shaded red.

Long series are reduced to a min/max envelope per pixel column before drawing, so a plot of ten
million rows costs what one of a few thousand does and still shows every spike; anomalous rows
are always drawn, never thinned out. The words both the command line and the HTML report use
for a result (durations, alarm rules) are here too.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pandas as pd

#: Buckets of the min/max envelope: about the pixel width of the figure.
ENVELOPE_BUCKETS = 2000


def roles(result: pd.DataFrame) -> dict[str, Any]:
    """Column roles of a ``Model.detect`` result (set by the model; inferred otherwise)."""
    meta = dict(result.attrs.get("vigil", {}))
    if "channels" not in meta:
        before = list(result.columns[: list(result.columns).index("score")])
        numeric = [c for c in before if pd.api.types.is_numeric_dtype(result[c])]
        meta["channels"] = [c for c in numeric if c != "label"]
        meta.setdefault("label_column", "label" if "label" in before else None)
        times = [c for c in before if pd.api.types.is_datetime64_any_dtype(result[c])]
        meta.setdefault("time_column", times[0] if times else None)
    return meta


def plot(result: pd.DataFrame, path: str | os.PathLike[str], *, title: str | None = None,
         max_channels: int = 12) -> str:
    """Draw ``result`` (from ``Model.detect``) to a PNG at ``path``; return the path."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed; must precede pyplot
    import matplotlib.pyplot as plt

    meta = roles(result)
    channels = meta["channels"][:max_channels]
    x = result[meta["time_column"]].to_numpy() if meta.get("time_column") else np.arange(len(result))
    flagged = result["is_anomaly"].to_numpy(bool)
    labels = result[meta["label_column"]].to_numpy() if meta.get("label_column") else None
    fig, axes = plt.subplots(len(channels) + 1, 1, sharex=True, squeeze=False,
                             figsize=(12, 1.6 * len(channels) + 2.2), layout="constrained")
    axes = axes[:, 0]
    drivers = result["driver"].to_numpy() if "driver" in result else None
    lines = _series_lines(result, meta, x)
    for ax, name in zip(axes, channels):
        values = result[name].to_numpy(float)
        for rows, color, _ in lines:
            _line(ax, x[rows], values[rows], color)
        # red on the channel that drove each anomaly (every channel if the method cannot tell)
        marked = flagged & (drivers == name) if drivers is not None else flagged
        ax.scatter(x[marked], values[marked], s=9, c="#d62728", zorder=3)
        _shade(ax, x, labels)
        ax.set_ylabel(name, rotation=0, ha="right", va="center")
    score = result["score"].to_numpy(float)
    limits = result["threshold"].to_numpy(float)
    threshold = float(limits[-1]) if len(result) else np.nan
    for rows, color, series in lines:
        _line(axes[-1], x[rows], score[rows], "#555555" if len(lines) == 1 else color)
        if series is not None and len(lines) <= 10:
            axes[0].plot([], [], color=color, lw=1, label=str(series))
    if 1 < len(lines) <= 10:
        axes[0].legend(loc="upper left", fontsize=8, frameon=False, ncols=min(len(lines), 5))
    if len(limits) and limits.min() != limits.max():  # adaptive, or one per series: its path
        label = "threshold per series" if meta.get("per_series") else "threshold (adaptive)"
        for k, (rows, _, _) in enumerate(lines):
            axes[-1].plot(x[rows], limits[rows], color="#d62728", ls="--", lw=1,
                          label=None if k else label)
    else:
        axes[-1].axhline(threshold, color="#d62728", ls="--", lw=1,
                         label=f"threshold {threshold:.3g}")
    axes[-1].scatter(x[flagged], score[flagged], s=9, c="#d62728", zorder=3)
    _shade(axes[-1], x, labels)
    if "event" in result:
        _shade_events(axes[-1], x, result["event"].to_numpy())
    axes[-1].set_ylabel("score", rotation=0, ha="right", va="center")
    if np.nanmax(score, initial=0) > 50 * max(abs(threshold), 1e-12):
        axes[-1].set_yscale("symlog", linthresh=max(abs(threshold), 1e-3))
    axes[-1].legend(loc="upper left", fontsize=8, frameon=False)
    fig.suptitle(title or _title(result, flagged), fontsize=11)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return os.fspath(path)


def duration_text(value: Any) -> str:
    """A readable duration: ``1h 35m``, ``2d 4h``, ``45s`` (the two largest units); a row
    count (the duration of an event without a time column) as ``12 rows``.

    >>> duration_text(pd.Timedelta(minutes=95)), duration_text(pd.Timedelta(days=2, seconds=5))
    ('1h 35m', '2d 5s')
    >>> duration_text(12)
    '12 rows'
    """
    if not isinstance(value, (pd.Timedelta, np.timedelta64)):
        return f"{int(value)} row{'s' if int(value) != 1 else ''}"
    seconds = pd.Timedelta(value).total_seconds()
    if seconds < 1:
        return f"{seconds:.3g}s"
    parts, rest = [], round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, rest = divmod(rest, size)
        if count:
            parts.append(f"{count}{unit}")
    return " ".join(parts[:2])


def rules_text(alarms: Any) -> str:
    """The alarm rules in a few words: ``off``, or each rule with its value."""
    from vigil.alarms import OFF

    rules = alarms.to_dict()
    if all(rules[name] == value for name, value in OFF.items()):
        return "off (each run of rows above the threshold is an event)"
    return (f"exit level {rules['exit_level']:g}, merge gap {rules['merge_gap']}, "
            f"min rows {rules['min_rows']} (unless the peak is {rules['certain']:g}x as high), "
            f"cool-down {rules['cooldown']}")


def _series_lines(result: pd.DataFrame, meta: dict[str, Any],
                  x: np.ndarray) -> list[tuple[np.ndarray, str, Any]]:
    """(rows in time order, colour, series name) for each series to draw as its own line: one
    line through every row when there is no series column."""
    column = meta.get("series_column")
    if not column or column not in result:
        return [(np.argsort(x, kind="stable"), "#3b6ea8", None)]
    codes, names = pd.factorize(result[column], sort=False)
    palette = ["#3b6ea8", "#e08a1e", "#2c9c69", "#8e5bb5", "#c2477a", "#5d8a9e", "#a88c3b",
               "#6b6b6b", "#3fa8c2", "#b5533b"]
    out = []
    for k, name in enumerate(names):
        rows = np.flatnonzero(codes == k)
        out.append((rows[np.argsort(x[rows], kind="stable")], palette[k % len(palette)], name))
    return out


def _title(result: pd.DataFrame, flagged: np.ndarray) -> str:
    """``K anomaly events (R rows of N)``; without an ``event`` column, the flagged rows."""
    n_flag = int(flagged.sum())
    rows = f"{n_flag} anomalous {'row' if n_flag == 1 else 'rows'} of {len(result)}"
    if "event" not in result:
        return rows
    k = int(result["event"][result["event"] > 0].nunique())
    return f"{k} anomaly {'event' if k == 1 else 'events'} ({rows})"


def _line(ax: Any, x: np.ndarray, y: np.ndarray, color: str) -> None:
    """A line, or for long series the min/max envelope per bucket (keeps every extreme)."""
    if len(y) <= 2 * ENVELOPE_BUCKETS:
        ax.plot(x, y, lw=0.7, color=color)
        return
    edges = np.linspace(0, len(y), ENVELOPE_BUCKETS + 1).astype(int)
    lo = np.minimum.reduceat(y, edges[:-1])
    hi = np.maximum.reduceat(y, edges[:-1])
    ax.fill_between(x[edges[:-1]], lo, hi, color=color, lw=0.5, alpha=0.8)


def _shade(ax: Any, x: np.ndarray, labels: np.ndarray | None) -> None:
    """Shade each labeled anomaly window (runs of label 1)."""
    if labels is None or not np.any(labels == 1):
        return
    inside = np.concatenate([[0], (labels == 1).astype(np.int8), [0]])
    starts = np.flatnonzero(np.diff(inside) == 1)
    stops = np.flatnonzero(np.diff(inside) == -1) - 1
    for start, stop in zip(starts, stops):
        ax.axvspan(x[start], x[stop], color="#f5a623", alpha=0.25, lw=0)


def _shade_events(ax: Any, x: np.ndarray, events: np.ndarray) -> None:
    """Shade each alarm event from its first row to its last (``events``: the ``event``
    column, 0 outside events); an edge line keeps a one-row event visible."""
    inside = events > 0
    if not inside.any():
        return
    spans = pd.Series(x[inside]).groupby(events[inside]).agg(["min", "max"])
    for number, (first, last) in enumerate(spans.itertuples(index=False)):
        ax.axvspan(first, last, color="#d62728", alpha=0.18, lw=0.8,
                   label="anomaly event" if number == 0 else None)
