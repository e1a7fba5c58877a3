"""The data policy: how vigil treats rows, the same in every engine (local, Spark, stream), so
they cannot drift apart. ``vigil.io`` applies it to files and frames; the Spark engine and the
stream import it from here.

- **Roles of columns.** The time column is the one named ``timestamp``, ``time``, ``datetime``,
  ``date`` or ``ts`` (in that priority), else the first datetime column, else none (row order).
  The label is a 0/1 column named like one (``LABEL_NAMES``), else none; it is never a channel,
  and a model never needs it to score. The series column is only ever given. Channels are the
  numeric columns left, or those given.
- **Time order.** Each series is scored on its own, in time order. Rows are sorted by (series,
  time) with a stable sort: rows with equal timestamps keep their input order, so the order is
  defined by the input alone. Output rows stay in input order.
- **Duplicate and late rows.** Kept, all of them, and reported: a repeated timestamp is a row of
  its own; a row out of time order is scored at its place in time order (a stream, which cannot
  go back, refuses it instead: see ``vigil.scoring``; the Kafka worker can hold rows for an
  allowed lateness and put them in order first).
- **Gaps.** A missing or infinite value is filled with the previous value of that channel in the
  same series (causal, as a stream must). A leading gap (no earlier value in the series) takes
  the series' first value, which is the one place a batch looks ahead; a stream holds such rows
  until that value arrives. Values never cross series: a series with no value at all in a
  channel is refused.
- **Refused.** Anything else that cannot be used, with one line naming the file, row and column:
  a non-numeric cell in a channel (with the fix when it has units or thousands separators), an
  unparseable timestamp, dates in both day/month and month/day order, epoch numbers before 1971
  (a sensor column taken as the time), a label that is not 0/1, a channel with no values, an
  empty or binary file, a byte that is not UTF-8. In CSV files also: a line with more or fewer
  fields than the header, a column name given twice, a quote never closed, a first line that is
  data (no header); see ``vigil.readers_csv``.
- **Read, with a note.** Leading ``#`` comment lines (skipped), decimal commas in a file not
  separated by commas, JSON lines or a JSON array in a .csv file, ambiguous dd/mm or mm/dd dates
  (the order chosen is named: the one that keeps time order, else month first; see
  ``vigil.times``), columns of mostly text (not channels). pandas' and numpy's own warnings
  never reach the user.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from vigil.errors import DataError

TIME_NAMES = ("timestamp", "time", "datetime", "date", "ts")

#: Column names taken as the label without --label-column (compared case-insensitively), when
#: the column holds only 0 and 1: a label used as a sensor would flag every labelled row.
LABEL_NAMES = ("label", "labels", "anomaly", "anomalies", "is_anomaly", "anomalous",
               "is_anomalous", "outlier", "is_outlier", "attack", "target")


def find_label_column(frame: pd.DataFrame, taken: set[str | None]) -> str | None:
    """The first column named like a label (``LABEL_NAMES``) whose values are all 0/1."""
    for name in frame.columns:
        if name in taken or str(name).strip().lower() not in LABEL_NAMES:
            continue
        column = frame[name]
        values = column if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(
            column) else pd.to_numeric(column.astype("string").str.strip().str.lower().replace(
                {"true": "1", "false": "0"}), errors="coerce")
        if values.isin([0, 1]).all():
            return name
    return None



def find_time_column(frame: pd.DataFrame) -> str | None:
    """The time column by name (``TIME_NAMES``, in priority order), else the first datetime one."""
    by_name = {str(name).lower(): name for name in reversed(frame.columns)}
    for wanted in TIME_NAMES:  # in priority order, so 'timestamp' beats a later 'date'
        if wanted in by_name:
            return by_name[wanted]
    for name in frame.columns:
        if pd.api.types.is_datetime64_any_dtype(frame[name]):
            return name
    return None


def series_codes(frame: pd.DataFrame, series_column: str | None) -> np.ndarray | None:
    """An int code per row for its series (first seen, first numbered), or None."""
    if series_column is None:
        return None
    codes, _ = pd.factorize(frame[series_column], sort=False, use_na_sentinel=False)
    return codes.astype(np.int64)


def time_order(frame: pd.DataFrame, time_column: str | None, series_column: str | None,
               source: str, locate: Callable[[int], str], notes: list[str]) -> np.ndarray:
    """Row positions in scoring order: by series, then time, ties in input order (stable).
    Rows out of order and repeated timestamps are reported in ``notes``, never dropped."""
    n = len(frame)
    codes = series_codes(frame, series_column)
    if time_column is None:
        return np.arange(n, dtype=np.int64) if codes is None else np.argsort(codes, kind="stable")
    times = frame[time_column].astype("int64").to_numpy()
    if codes is None:
        order = np.argsort(times, kind="stable")
        grouped = np.arange(n)
        same = np.ones(max(n - 1, 0), dtype=bool)
    else:
        order = np.lexsort((times, codes))  # lexsort is stable: ties keep input order
        grouped = np.argsort(codes, kind="stable")
        same = codes[grouped][1:] == codes[grouped][:-1]
    backwards = (times[grouped][1:] < times[grouped][:-1]) & same
    if backwards.any():
        first = int(grouped[1:][backwards].min())
        notes.append(f"{source}: rows are not in time order (first at {locate(first)}); "
                     f"scored in time order, output kept in input order")
    in_order = times[order]
    repeated = in_order[1:] == in_order[:-1]
    if codes is not None:
        repeated &= codes[order][1:] == codes[order][:-1]
    if repeated.any():
        first = int(order[1:][repeated].min())
        notes.append(f"{source}: {int(repeated.sum())} rows repeat an earlier timestamp "
                     f"(first at {locate(first)}); all rows kept")
    return order.astype(np.int64)


def fill_forward(values: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Each NaN cell takes the previous value of its column, the first rows from ``last``
    (NaN where a column has none yet): vectorised, no loop over rows. A stream and a chunk of
    a series fill their gaps with it, carrying ``last`` from the rows before."""
    if not np.isnan(values).any():
        return values
    stacked = np.concatenate([last[None, :], values])
    source = np.where(np.isnan(stacked), 0, np.arange(len(stacked))[:, None])
    np.maximum.accumulate(source, axis=0, out=source)  # the last valid row so far
    return np.take_along_axis(stacked, source, axis=0)[1:]


def fill_gaps(raw: np.ndarray, order: np.ndarray, codes: np.ndarray | None,
              channels: Sequence[str], series: Sequence[object] = ()) -> np.ndarray:
    """Fill non-finite cells of ``raw`` in place: the previous value of the channel in its
    series, in time order (a leading gap: the series' first value). ``series`` names the codes,
    for the error when a series has no value at all in a channel."""
    gappy = np.flatnonzero((~np.isfinite(raw)).any(axis=0))
    if not len(gappy):
        return raw
    in_order = bool((order[1:] > order[:-1]).all())  # identity: skip the gathers and scatters
    sorted_codes = codes if codes is None or in_order else codes[order]
    for j in gappy:  # a loop over channels, not rows
        column = raw[:, j] if in_order else raw[order, j]
        empty = _fill_column(column, sorted_codes)
        if empty is not None:
            name = series[empty] if empty < len(series) else empty
            raise DataError(f"series {name!r} has no value at all in channel '{channels[j]}': "
                            "give it values, or leave the channel out (--channels)")
        if in_order:
            raw[:, j] = column
        else:
            raw[order, j] = column
    return raw


def _fill_column(values: np.ndarray, codes: np.ndarray | None) -> int | None:
    """Fill the gaps of one time-ordered column in place from the nearest valid value before
    (else after) in the same series; the code of a series with no valid value, else None."""
    valid = np.isfinite(values)
    good, gaps = np.flatnonzero(valid), np.flatnonzero(~valid)
    if not len(good):
        raise DataError("a channel has no finite values at all; nothing to fill its gaps with")
    after = np.searchsorted(good, gaps)  # index in `good` of the first valid value after each gap
    has_previous, has_following = after > 0, after < len(good)
    previous = good[np.maximum(after - 1, 0)]
    following = good[np.minimum(after, len(good) - 1)]
    if codes is not None:  # never carry a value across series
        has_previous &= codes[previous] == codes[gaps]
        has_following &= codes[following] == codes[gaps]
        stranded = ~(has_previous | has_following)
        if stranded.any():
            return int(codes[gaps[np.argmax(stranded)]])
    values[gaps] = values[np.where(has_previous, previous, following)]
    return None
