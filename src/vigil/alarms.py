"""Alarms: rows whose score crosses the threshold become **events**, the thing a user acts on.

A raw flag per row fragments one incident into dozens of short runs and raises an alarm for
every lone noisy row. :class:`Alarms` turns scores into events with four rules, applied per
series, in time order, and causal up to a fixed delay (so a stream decides as a batch does):

- **hysteresis**: an event opens on a row above the threshold and stays open while the score
  stays at or above a lower *exit level*, ``center + exit_level * (threshold - center)``, where
  ``center`` is the median training score;
- **merge gap**: an event survives up to ``merge_gap`` rows below the exit level; a return to
  the exit level within that gap continues the same event (the gap rows are part of it);
- **minimum duration**: an event with fewer than ``min_rows`` rows above the threshold is
  dropped, unless its peak is ``certain`` times as far above the center as the threshold is
  (a short, huge spike is still news);
- **cool-down**: for ``cooldown`` rows after an event ends, no new event opens.

Merlion's post-rules (alarms need several exceedances within a window, then later ones are
suppressed for a while) are the anchor; vigil's events also carry their extent, so a flagged
run covers the incident instead of marking its first minute.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from vigil.errors import ConfigError


@dataclass(frozen=True)
class EventSpans:
    """Events of one scored series: ``starts[i]`` to ``stops[i]`` (exclusive), row positions."""

    starts: np.ndarray
    stops: np.ndarray

    def __len__(self) -> int:
        return int(self.starts.size)

    def mask(self, n: int) -> np.ndarray:
        """Boolean ``[n]``: True on rows inside an event."""
        return self.numbers(n) > 0

    def numbers(self, n: int, offset: int = 0) -> np.ndarray:
        """``int64[n]``: each row's event number (``offset + 1``, ... in order), 0 outside."""
        number = np.arange(offset + 1, offset + 1 + len(self), dtype=np.int64)
        edges = np.zeros(n + 1, dtype=np.int64)
        edges[self.starts] += number  # events never overlap, so each edge is set once
        edges[self.stops] -= number
        return np.cumsum(edges[:-1])


@dataclass
class Alarms:
    """Rules that turn per-row threshold crossings into events (see the module docstring).

    Args:
        exit_level: where an open event ends, as a fraction of the way from the median
            training score (0) to the threshold (1); 1 turns hysteresis off.
        merge_gap: rows below the exit level an event survives.
        min_rows: rows above the threshold an event needs (unless its peak is ``certain``).
        certain: a peak this many times as far above the center as the threshold keeps an
            event of any length.
        cooldown: rows after an event during which no new event opens.

    Examples:
        >>> import numpy as np
        >>> scores = np.array([0, 5, 0, 5, 4, 0, 0, 0, 0, 0, 9, 0, 0, 0, 5, 0], dtype=float)
        >>> alarms = Alarms(exit_level=0.5, merge_gap=2, min_rows=2, certain=1.5).fit(np.zeros(100))
        >>> events = alarms.events(scores, threshold=4.5)
        >>> list(zip(events.starts.tolist(), events.stops.tolist()))  # 14: one row, not certain
        [(1, 5), (10, 11)]
    """

    # Defaults chosen on shared/datasets and the bundled data by benchmarks/choose_decisions.py
    # (results/choose_decisions.md): no hysteresis, gaps of up to 60 rows merged, 3 rows above the
    # threshold (or one twice as far above). A gap of 120 scores a little higher there (merit
    # 0.653 against 0.629) but doubles how long a stream must wait for a row's final flag.
    exit_level: float = 1.0
    merge_gap: int = 60
    min_rows: int = 3
    certain: float = 2.0
    cooldown: int = 0
    #: Fitted: the median training score, the zero of ``exit_level`` and ``certain``.
    center_: float = field(default=np.nan, repr=False)

    _INT_RULES: ClassVar[tuple[str, ...]] = ("merge_gap", "min_rows", "cooldown")

    def __post_init__(self) -> None:
        for name in self._INT_RULES:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < (
                    1 if name == "min_rows" else 0):
                low = 1 if name == "min_rows" else 0
                raise ConfigError(f"The {name!r} alarm rule must be an int >= {low}. "
                                  f"Got {value!r}.")
            object.__setattr__(self, name, int(value))
        if not _real_in(self.exit_level, 0.0, 1.0):
            raise ConfigError(f"The 'exit_level' alarm rule must be a float in [0, 1]. "
                              f"Got {self.exit_level!r}.")
        if not _real_in(self.certain, 1.0, np.inf):
            raise ConfigError(f"The 'certain' alarm rule must be a float >= 1. "
                              f"Got {self.certain!r}.")
        self.exit_level, self.certain = float(self.exit_level), float(self.certain)

    # -- fitting and persistence -----------------------------------------------------------
    def fit(self, training_scores: np.ndarray) -> Alarms:
        """Learn the center (median training score) the exit level is measured from."""
        scores = np.asarray(training_scores, dtype=float)
        self.center_ = float(np.median(scores)) if scores.size else 0.0
        return self

    @property
    def lookahead_rows(self) -> int:
        """Rows a stream waits after a row below the threshold before its flag is final (a
        gap is part of an event only once the event resumes after it). Rows of an event not
        yet confirmed (fewer than ``min_rows`` rows above the threshold) wait longer: without
        hysteresis at most ``(min_rows - 1) * (merge_gap + 1)`` rows, with it as long as the
        event stays open (``vigil.scoring.StreamScorer`` holds them until they are decided)."""
        return max(self.merge_gap, self.min_rows - 1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe rules, and the center once fitted."""
        d = asdict(self)
        if not np.isfinite(self.center_):
            del d["center_"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Alarms:
        """Rebuild from :meth:`to_dict` output."""
        if not isinstance(d, dict):
            raise ConfigError(f"alarm rules must be a dict. Got {d!r}.")
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown alarm rule {unknown[0]!r}; the rules are: "
                              f"{', '.join(sorted(known - {'center_'}))}.")
        alarms = cls(**{k: v for k, v in d.items() if k != "center_"})
        if "center_" in d:  # fitted rules
            if not _real_in(d["center_"], -np.inf, np.inf):
                raise ConfigError(f"alarm rules: 'center_' must be a finite float. "
                                  f"Got {d['center_']!r}.")
            alarms.center_ = float(d["center_"])
        return alarms

    # -- deciding --------------------------------------------------------------------------
    def events(self, scores: np.ndarray, threshold: float | np.ndarray) -> EventSpans:
        """The events of one series' scores (time order) against ``threshold`` (one value, or
        one per row for an adaptive threshold)."""
        scores = np.asarray(scores, dtype=float)
        threshold = np.broadcast_to(np.asarray(threshold, dtype=float), scores.shape)
        center = self.center_ if np.isfinite(self.center_) else 0.0
        center = np.minimum(center, threshold)  # a threshold below the median: no hysteresis
        above = scores > threshold
        active = above | (scores >= center + self.exit_level * (threshold - center))
        run_starts, run_stops = _runs(active)
        if not run_starts.size:
            return EventSpans(run_starts, run_stops)
        # Active runs closer than merge_gap rows chain into one cluster; an event opens on the
        # cluster's first row above the threshold and ends with the cluster.
        new_cluster = np.r_[True, run_starts[1:] - run_stops[:-1] > self.merge_gap]
        cl_starts = run_starts[new_cluster]
        cl_stops = run_stops[np.r_[np.flatnonzero(new_cluster)[1:] - 1, run_stops.size - 1]]
        above_at = np.flatnonzero(above)
        above_count = np.r_[0, np.cumsum(above)]
        certain = scores >= center + self.certain * (threshold - center)
        certain_count = np.r_[0, np.cumsum(certain)]
        starts, stops, free_from = [], [], 0
        for c_start, c_stop in zip(cl_starts.tolist(), cl_stops.tolist()):
            first = max(c_start, free_from)
            i = int(np.searchsorted(above_at, first))
            if i == above_at.size or above_at[i] >= c_stop:
                continue
            start = int(above_at[i])
            if (above_count[c_stop] - above_count[start] < self.min_rows
                    and certain_count[c_stop] == certain_count[start]):
                continue
            starts.append(start)
            stops.append(c_stop)
            free_from = c_stop + self.cooldown
        return EventSpans(np.asarray(starts, dtype=np.int64), np.asarray(stops, dtype=np.int64))


#: Rules that flag exactly the rows above the threshold: one event per run of such rows.
OFF = {"exit_level": 1.0, "merge_gap": 0, "min_rows": 1, "certain": 1.0, "cooldown": 0}


def make_alarms(spec: str | dict[str, Any] | Alarms | None) -> Alarms:
    """Alarm rules from ``"default"`` (or None), ``"off"``, a dict of rules, or an instance.

    >>> make_alarms("off").events(np.array([0.0, 2, 2, 0, 2]), threshold=1).stops.tolist()
    [3, 5]
    """
    if isinstance(spec, Alarms):
        return spec
    if spec is None or spec == "default":
        return Alarms()
    if spec == "off":
        return Alarms(**OFF)
    if isinstance(spec, dict):
        return Alarms.from_dict(spec)
    raise ConfigError(f"alarms must be 'default', 'off', a dict of rules or an Alarms. "
                      f"Got {spec!r}.")


def event_table(result: pd.DataFrame) -> pd.DataFrame:
    """One row per event of a :meth:`vigil.Model.detect` result: ``event``, the series (when
    there is one), ``start`` and ``end`` (times, or row labels without a time column),
    ``duration`` (without a time column, a row count), ``rows``, ``peak score``, and
    ``driver`` (the channel that drove the peak, where the method can tell)."""
    meta = result.attrs.get("vigil", {})
    inside = result[result["event"].to_numpy() > 0]
    time_col, series_col = meta.get("time_column"), meta.get("series_column")
    columns = ["event"] + ([series_col] if series_col else []) + ["start", "end", "duration",
                                                                  "rows", "peak score"]
    if "driver" in result:
        columns.append("driver")
    if inside.empty:
        return pd.DataFrame(columns=columns)
    when = inside[time_col] if time_col else pd.Series(inside.index, index=inside.index)
    groups = inside.assign(_when=when.to_numpy()).groupby("event", sort=True)
    peak_at = groups["score"].idxmax()
    table = pd.DataFrame({"start": groups["_when"].min(), "end": groups["_when"].max(),
                          "rows": groups.size(), "peak score": groups["score"].max()})
    table["duration"] = table["end"] - table["start"] if time_col else table["rows"]
    if series_col:
        table[series_col] = inside.loc[peak_at.to_numpy(), series_col].to_numpy()
    if "driver" in result:
        table["driver"] = inside.loc[peak_at.to_numpy(), "driver"].to_numpy()
    return table.reset_index()[columns]


def _runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Starts and (exclusive) stops of the runs of True in ``mask``."""
    edges = np.diff(np.r_[0, mask.astype(np.int8), 0])
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def _real_in(value: Any, low: float, high: float) -> bool:
    """A finite real number in ``[low, high]`` (a huge int such as 10**30 is compared as a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return False
    try:
        number = float(value)
    except OverflowError:
        return False
    return bool(np.isfinite(number)) and low <= number <= high


__all__ = ["OFF", "Alarms", "EventSpans", "event_table", "make_alarms"]


# -- streaming ----------------------------------------------------------------------------------
class AlarmStream:
    """The rules of an :class:`Alarms` as a causal state machine, for a stream of one series.

    ``update(scores, threshold)`` takes the next final scores in time order (any batch sizes,
    one row at a time too) with their threshold (one value, or one per row), and returns the
    final event number (0: no event) of every row the rules have now decided, in order, each row
    exactly once; ``flush()`` ends the series and returns the rest (as :meth:`Alarms.events`
    treats the series end). Concatenated, the outputs equal
    ``alarms.events(all_scores, all_thresholds).numbers(n)``, bit for bit (tested against it and
    against a row-by-row loop).

    When a row is decided: a row that opens no event, at once; a row of an event that has its
    ``min_rows`` rows above the threshold (or one ``certain`` row), at once; a gap row, when the
    event resumes or the gap passes ``merge_gap`` rows; a row of an unconfirmed event, when it is
    confirmed or closes. So with hysteresis off, and no score exactly equal to its threshold, a
    row waits at most ``(min_rows - 1) * (merge_gap + 1)`` rows (``merge_gap`` once confirmed),
    which can be more than :attr:`Alarms.lookahead_rows`; with hysteresis (``exit_level`` below
    1) an unconfirmed event held between the exit level and the threshold has no bound. The work
    is vectorised: a Python step per event, not per row.

    State is plain JSON (``to_dict`` / ``from_dict``): counts and the open event, never rows.

    Examples:
        >>> alarms = Alarms(merge_gap=1, min_rows=2).fit(np.zeros(10))
        >>> stream = AlarmStream(alarms)
        >>> stream.update([0.0, 1.5], 1.0).tolist()  # row 1 opens an event, unconfirmed
        [0]
        >>> stream.update([0.0, 1.5, 0.0], 1.0).tolist()  # row 3 confirms it; row 4 is a gap
        [1, 1, 1]
        >>> stream.flush().tolist()
        [0]
    """

    def __init__(self, alarms: Alarms) -> None:
        self.alarms = alarms
        self.seen = 0  # rows fed
        self.decided = 0  # rows whose number was returned
        self.found = 0  # events numbered so far
        self.free_from = 0  # first row that may open an event (cool-down)
        #: The open event, absolute rows: start, last active row, rows above, a certain row
        #: seen, its number (0 until confirmed). None when no event is open.
        self.open: dict[str, int] | None = None

    @property
    def undecided(self) -> int:
        """Rows fed whose number is not returned yet."""
        return self.seen - self.decided

    def update(self, scores: Any, threshold: float | np.ndarray) -> np.ndarray:
        """Feed the next scores (time order) and their threshold; return ``int64`` event
        numbers of the rows decided now, continuing from the last row returned."""
        s = np.asarray(scores, dtype=float).ravel()
        thr = np.broadcast_to(np.asarray(threshold, dtype=float), s.shape)
        rules = self.alarms
        center = rules.center_ if np.isfinite(rules.center_) else 0.0
        center = np.minimum(center, thr)  # exactly as Alarms.events computes it
        above = s > thr
        active = above | (s >= center + rules.exit_level * (thr - center))
        certain = s >= center + rules.certain * (thr - center)
        act, ab, ce = np.flatnonzero(active), np.flatnonzero(above), np.flatnonzero(certain)
        limit = rules.merge_gap + 1  # a run of this many rows below the exit level ends an event
        breaks = np.flatnonzero(np.diff(act) > limit) + 1  # act[k] starts a new cluster
        base, n = self.seen, s.size
        values: list[int] = []
        counts: list[int] = []

        def decide(number: int, upto: int) -> None:  # rows [decided, upto) get `number`
            if upto > self.decided:
                values.append(number)
                counts.append(upto - self.decided)
                self.decided = upto

        i = 0
        while i < n:
            current = self.open
            if current is None:
                k = int(np.searchsorted(ab, max(i, self.free_from - base)))
                if k == ab.size:
                    decide(0, base + n)
                    break
                j = int(ab[k])
                decide(0, base + j)
                current = self.open = {"start": base + j, "last": base + j - 1, "above": 0,
                                       "certain": 0, "number": 0}
                i = j
            last = current["last"] - base  # relative; negative when it was in an earlier batch
            k0 = int(np.searchsorted(act, i))
            if k0 < act.size and act[k0] - last <= limit:  # the event goes on from row i
                kb = int(np.searchsorted(breaks, k0 + 1))
                new_last = int(act[(int(breaks[kb]) if kb < breaks.size else act.size) - 1])
                lo, hi = np.searchsorted(ab, i), np.searchsorted(ab, new_last, side="right")
                current["above"] += int(hi - lo)
                c = int(np.searchsorted(ce, i))
                if c < ce.size and ce[c] <= new_last:
                    current["certain"] = 1
                current["last"] = base + new_last
                if not current["number"] and (current["above"] >= rules.min_rows
                                              or current["certain"]):
                    self.found += 1
                    current["number"] = self.found
            else:
                new_last = last
            if current["number"]:
                decide(current["number"], current["last"] + 1)
            close = new_last + limit  # the row where the gap passes merge_gap
            if close < n:
                if current["number"]:
                    self.free_from = current["last"] + 1 + rules.cooldown
                decide(0, base + close + 1)
                self.open = None
                i = close + 1
            else:
                i = n
        self.seen = base + n
        return np.repeat(np.asarray(values, dtype=np.int64), np.asarray(counts, dtype=np.int64))

    def flush(self) -> np.ndarray:
        """End the series: the rows still undecided are outside any event (an open confirmed
        event ends at its last active row, an unconfirmed one is dropped)."""
        out = np.zeros(self.undecided, dtype=np.int64)
        self.decided, self.open = self.seen, None
        return out

    def to_dict(self) -> dict[str, Any]:
        """The state as plain JSON (the rules themselves live in the model)."""
        return {"seen": self.seen, "decided": self.decided, "found": self.found,
                "free_from": self.free_from, "open": None if self.open is None else dict(self.open)}

    @classmethod
    def from_dict(cls, alarms: Alarms, d: Any) -> AlarmStream:
        """Resume from :meth:`to_dict` output; a malformed state is a one-line ConfigError."""
        def whole(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool) and value >= 0

        keys = {"seen", "decided", "found", "free_from", "open"}
        if not isinstance(d, dict) or set(d) != keys or not all(
                whole(d[k]) for k in keys - {"open"}) or d["decided"] > d["seen"]:
            raise ConfigError(f"an alarm stream state must be a dict of counts with the keys "
                              f"{sorted(keys)}. Got {str(d)[:80]}.")
        current = d["open"]
        if current is not None:
            fields = {"start", "last", "above", "certain", "number"}
            if (not isinstance(current, dict) or set(current) != fields
                    or not all(whole(v) for v in current.values())
                    or not current["start"] <= current["last"] < d["seen"]
                    or current["number"] > d["found"]):
                raise ConfigError(f"an alarm stream state's open event must hold {sorted(fields)} "
                                  f"as row counts. Got {str(current)[:80]}.")
        stream = cls(alarms)
        stream.seen, stream.decided, stream.found = d["seen"], d["decided"], d["found"]
        stream.free_from = d["free_from"]
        stream.open = None if current is None else {k: int(v) for k, v in current.items()}
        return stream


__all__ += ["AlarmStream"]


def events_of_pieces(alarms: Alarms, pieces: Any) -> EventSpans:
    """The events of one series given as consecutive pieces ``(scores, threshold)`` in time
    order, equal to ``alarms.events`` of the whole series (through :class:`AlarmStream`), while
    holding one piece's temporaries at a time, not the series' (a long series on Spark).

    >>> rules = Alarms(merge_gap=1, min_rows=2).fit(np.zeros(4))
    >>> spans = events_of_pieces(rules, [([0.0, 2.0], 1.0), ([0.0, 2.0, 0.0], 1.0)])
    >>> spans.starts.tolist(), spans.stops.tolist()
    ([1], [4])
    """
    stream = AlarmStream(alarms)
    starts: list[int] = []
    stops: list[int] = []
    done, last = 0, 0  # rows decided so far; the number of the last span

    def take(numbers: np.ndarray) -> None:
        nonlocal done, last
        if numbers.size:
            edges = np.flatnonzero(np.diff(numbers)) + 1
            for a, b in zip(np.r_[0, edges].tolist(), np.r_[edges, numbers.size].tolist()):
                number = int(numbers[a])
                if not number:
                    continue
                if number == last and stops and stops[-1] == done + a:
                    stops[-1] = done + b  # the event goes on from the previous rows
                else:
                    starts.append(done + a)
                    stops.append(done + b)
                    last = number
            done += numbers.size

    for scores, threshold in pieces:
        take(stream.update(scores, threshold))
    take(stream.flush())
    return EventSpans(np.asarray(starts, dtype=np.int64), np.asarray(stops, dtype=np.int64))


__all__ += ["events_of_pieces"]
