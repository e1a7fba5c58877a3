"""Parsing a time column, the same for files, frames and the stream (``vigil.scoring``):

- **Text** is tried as ISO 8601 first (fast). Dates written ``01/02/2024`` (also with ``.`` or
  ``-``) are read in one order for the whole column: day first when some value starts above 12
  (``13/02/2024``), month first when some second field is above 12; a column with both orders is
  refused. A column where every such date fits both orders is ambiguous: it is read in the order
  that keeps the rows in time order if only one does, else month first, and a note says so.
- **Numbers** are epoch timestamps, the unit (s, ms, us, ns) chosen by magnitude. Numbers that
  would fall before 1971 in that unit are not plausible epochs (a sensor column chosen as the time,
  e.g. temperatures read as seconds after midnight on 1 January 1970): refused, naming the column
  (the row, when only some are).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from vigil.errors import DataError, DataWarning

# day/month or month/day, then the year (RE2 syntax, for pyarrow)
_DMY = r"^\s*(?P<first>\d{1,2})[/.\-](?P<second>\d{1,2})[/.\-]\d{2,4}(?:\D|$)"
_EARLIEST = pd.Timestamp("1971-01-01")  # an epoch number before this is not a sensor's time
_UNITS = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}


def show(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return "an empty cell"
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(value))
    return f"'{text if len(text) <= 40 else text[:37] + '...'}'"


def parse_times(column: pd.Series, source: str, locate: Callable[[int], str],
                notes: list[str] | None = None) -> pd.Series:
    """Datetimes for ``column``, or a DataError naming the first cell that is not a time. Notes
    (an ambiguous date order) go to ``notes``, or are warned as DataWarnings without it."""
    name = column.name
    if pd.api.types.is_datetime64_any_dtype(column):
        parsed = column
    elif pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        parsed = _parse_epochs(column, source, locate)
    else:
        said: list[str] = [] if notes is None else notes
        parsed = _parse_text(column, source, locate, said)
        if notes is None:
            for note in said:
                warnings.warn(note, DataWarning, stacklevel=3)
    bad = parsed.isna().to_numpy()
    if bad.any():
        pos = int(np.argmax(bad))
        raise DataError(f"{source}, {locate(pos)}, column '{name}': {show(column.iloc[pos])} "
                        f"is not a timestamp")
    return parsed


def _parse_epochs(column: pd.Series, source: str, locate: Callable[[int], str]) -> pd.Series:
    name, unit = column.name, _epoch_unit(column)
    try:
        parsed = pd.to_datetime(column, unit=unit)
    except (ValueError, OverflowError):  # beyond year 2262 in nanoseconds
        raise DataError(f"{source}, column '{name}': numbers too large for epoch timestamps "
                        f"(largest {column.max()})") from None
    early = (parsed < _EARLIEST).to_numpy()
    given = parsed.notna().to_numpy()
    if early.any() and early[given].all():
        low, high = column.min(), column.max()
        numbers = f"{low}" if low == high else f"{low} to {high}"
        raise DataError(f"{source}, column '{name}': numbers ({numbers}) are not epoch "
                        f"timestamps: as {_UNITS[unit]} since 1970 they would all fall before "
                        f"1971 ({parsed.min()} to {parsed.max()}); name the time column with "
                        f"--time-column, or write the times as dates")
    if early.any():
        pos = int(np.argmax(early))
        raise DataError(f"{source}, {locate(pos)}, column '{name}': {show(column.iloc[pos])} is "
                        f"not a plausible epoch timestamp (as {_UNITS[unit]}: {parsed.iloc[pos]}"
                        f", before 1971)")
    return parsed


def _epoch_unit(column: pd.Series) -> str:
    # Epoch numbers: today's seconds are ~1.7e9, milliseconds ~1.7e12, and so on by 1000.
    biggest = float(column.abs().max()) if column.notna().any() else 0.0
    for unit, limit in (("s", 1e12), ("ms", 1e15), ("us", 1e18)):
        if biggest < limit:
            return unit
    return "ns"


def _parse_text(column: pd.Series, source: str, locate: Callable[[int], str],
                notes: list[str]) -> pd.Series:
    try:  # fast, and never day/month: most columns end here
        return pd.to_datetime(column, format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        pass
    dated, first, second = _day_month(column)
    if not dated.any():
        return _parse_uniform(column, dayfirst=False, iso=False)
    day_first, month_first = first > 12, second > 12
    name = column.name
    if day_first.any() and month_first.any():
        i, j = int(np.argmax(day_first)), int(np.argmax(month_first))
        raise DataError(f"{source}, column '{name}': dates in both orders, day first at "
                        f"{locate(i)} ({show(column.iloc[i])}) and month first at {locate(j)} "
                        f"({show(column.iloc[j])}); write them one way, best as yyyy-mm-dd")
    if day_first.any() or month_first.any():
        return _parse_dated(column, dated, dayfirst=bool(day_first.any()))
    parsed, chosen, why = _tie_break(*(_parse_dated(column, dated, dayfirst=order)
                                       for order in (False, True)))
    example = column.iloc[int(np.argmax(dated))]
    notes.append(f"{source}, column '{name}': dates such as '{example}' can be read day/month or "
                 f"month/day (no day above 12); read as {chosen}, {why}; write yyyy-mm-dd dates "
                 f"to be sure")
    return parsed


def _day_month(column: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which cells start like dd/mm/yyyy (or mm/dd), and their first two numbers (0 elsewhere).
    pyarrow's regular expressions: ten times faster than pandas' on a million cells."""
    found = pc.extract_regex(pa.array(column.astype("string[pyarrow]").array), _DMY)

    def numbers(name: str) -> np.ndarray:
        field = pc.fill_null(pc.cast(pc.struct_field(found, name), pa.int16()), 0)
        return np.asarray(field, dtype=np.int16)

    return np.asarray(pc.is_valid(found), dtype=bool), numbers("first"), numbers("second")


def _tie_break(as_month: pd.Series, as_day: pd.Series) -> tuple[pd.Series, str, str]:
    """For dates that fit both orders: the order that keeps the rows in time order, else the one
    with the more regular steps (the other jumps by months between days), else month first."""
    steps = {}
    for order, times in (("month/day", as_month), ("day/month", as_day)):
        gaps = times.dropna().diff().iloc[1:]
        steps[order] = (bool((gaps >= pd.Timedelta(0)).all()),
                        gaps.max() if len(gaps) else pd.Timedelta(0))
    (month_ordered, month_step), (day_ordered, day_step) = steps["month/day"], steps["day/month"]
    if day_ordered != month_ordered:
        better, worse = ("day/month", "month/day") if day_ordered else ("month/day", "day/month")
        why = f"as {worse} the rows would be out of time order"
    elif day_ordered and day_step != month_step:
        better, worse = ("day/month", "month/day") if day_step < month_step else \
            ("month/day", "day/month")
        why = (f"as {worse} the rows would jump by up to {steps[worse][1]} (up to "
               f"{steps[better][1]} as {better})")
    else:
        better, why = "month/day", "the default"
    chosen = "day/month (dd/mm)" if better == "day/month" else "month/day (mm/dd)"
    return (as_day if better == "day/month" else as_month), chosen, why


def _parse_dated(column: pd.Series, dated: np.ndarray, dayfirst: bool) -> pd.Series:
    """The dd/mm (or mm/dd) cells in one order; the other cells (ISO and such) on their own, as
    dateutil would read '2024-01-02' as 1 February with ``dayfirst``."""
    if dated.all():
        return _parse_uniform(column, dayfirst=dayfirst, iso=False)
    rest = _parse_uniform(column.where(~dated), dayfirst=False)
    ours = _parse_uniform(column.where(dated), dayfirst=dayfirst, iso=False)
    if str(rest.dt.tz) != str(ours.dt.tz):  # naive and aware, or two offsets: compare in UTC
        rest, ours = _utc(rest), _utc(ours)
    return rest.where(~dated, ours)


def _utc(times: pd.Series) -> pd.Series:
    return times.dt.tz_localize("UTC") if times.dt.tz is None else times.dt.tz_convert("UTC")


def _parse_uniform(column: pd.Series, dayfirst: bool, iso: bool = True) -> pd.Series:
    # Fast, vectorised formats first; None infers one format from the first value.
    for fmt in ("ISO8601", None) if iso else (None,):
        try:
            return pd.to_datetime(column, format=fmt, dayfirst=dayfirst)
        except (ValueError, TypeError, OverflowError):
            pass
    try:  # per-value parsing: slow, but only reached for odd or bad input
        return pd.to_datetime(column, format="mixed", dayfirst=dayfirst, errors="coerce")
    except ValueError:  # several UTC offsets in one column: compare them in UTC
        return pd.to_datetime(column, format="mixed", dayfirst=dayfirst, errors="coerce",
                              utc=True)
