"""Loading and validating sensor time series: CSV/TSV, Parquet and JSON lines files (or a pandas
DataFrame) become a `Dataset` whose time, label, series and numeric channel columns are found and
checked. Bad input raises a one-line `DataError` naming the file, the line (or row) and the column;
repairable input (missing or infinite values, duplicate or unsorted timestamps) is kept, repaired
where needed and reported with one `DataWarning` per kind. No row is ever dropped: the frame keeps
the input order, `Dataset.order` gives the time order the detectors score in. Warnings of pandas
and numpy never reach the caller: those about the data become DataWarnings, the rest are dropped."""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from vigil.errors import DataError, DataWarning
from vigil.policy import fill_gaps, find_label_column, find_time_column, series_codes, time_order
from vigil.readers import Locate, load, row_locator
from vigil.times import parse_times as _parse_times
from vigil.times import show as _show

_WRITE_SUFFIXES = (".csv", ".parquet", ".jsonl", ".json")
# Text cells that mean "no value" (lower-cased; a subset of pandas' default na_values).
_MISSING_TOKENS = {"", "nan", "-nan", "na", "n/a", "null", "none", "#n/a", "<na>", "nat"}
# How to fix a text cell in a number column, by what it looks like: (pattern, fix, repair).
_FIXES = ((r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?", "strip the thousands separators", ",", ""),
          (r"[+-]?\d*,\d+", "write a decimal point, not a comma", ",", "."),
          (r"([+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)(\s+[^\d\s.,+-].*|[A-Za-z°%µΩ/]+)",
           "remove the units from the cells", None, None))


@dataclass(eq=False)
class Dataset:
    """Validated rows of one file or frame, in input order, with the roles of their columns."""

    frame: pd.DataFrame
    channels: list[str]
    time_column: str | None
    label_column: str | None
    series_column: str | None
    source: str
    order: np.ndarray
    _values: np.ndarray | None = field(default=None, init=False, repr=False)
    _mask: np.ndarray | None = field(default=None, init=False, repr=False)

    def __len__(self) -> int:
        return len(self.frame)

    def missing_mask(self) -> np.ndarray:
        """bool [n, d]: True where a channel value was missing or infinite before the repair."""
        if self._mask is None:
            raw = self.frame[self.channels].to_numpy(dtype=np.float64)
            self._mask = ~np.isfinite(raw)
            self._mask.flags.writeable = False
        return self._mask

    def values(self) -> np.ndarray:
        """float64 [n, d] channels in input order, gaps filled with the previous value in time
        order (the next one for leading gaps). Cached and read-only: copy before changing it."""
        if self._values is None:
            raw = self.frame[self.channels].to_numpy(dtype=np.float64, copy=True)
            codes = series_codes(self.frame, self.series_column)
            names = (pd.unique(self.frame[self.series_column]) if self.series_column else ())
            self._values = fill_gaps(raw, self.order, codes, self.channels, list(names))
            self._values.flags.writeable = False
        return self._values

    def labels(self) -> np.ndarray | None:
        """int8 0/1 per row, or None without a label column."""
        if self.label_column is None:
            return None
        return self.frame[self.label_column].to_numpy(dtype=np.int8)


def read(path: str | os.PathLike, *, time_column: str | None = None,
         channels: Sequence[str] | None = None, label_column: str | None = None,
         series_column: str | None = None) -> Dataset:
    """Read a CSV/TSV, Parquet or JSON lines file (by suffix; CSV if unknown) and validate it."""
    source = os.fspath(path)
    notes: list[str] = []
    with _own_warnings(source, notes):
        frame, locate = load(Path(source), source, notes)
        dataset = _build(frame, source, locate, time_column, channels, label_column,
                         series_column, notes)
    for note in notes:
        warnings.warn(_printable(note), DataWarning, stacklevel=2)
    return dataset


def from_frame(frame: pd.DataFrame, *, time_column: str | None = None,
               channels: Sequence[str] | None = None, label_column: str | None = None,
               series_column: str | None = None, source: str = "<DataFrame>") -> Dataset:
    """Validate an in-memory frame like a file; messages name rows by 1-based position.

    >>> frame = pd.DataFrame({"time": ["2024-01-01 00:00", "2024-01-01 00:01"], "x": [1.0, 2.0]})
    >>> data = from_frame(frame)
    >>> data.channels, data.time_column, data.values().tolist()
    (['x'], 'time', [[1.0], [2.0]])
    """
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{source}: expected a pandas DataFrame, got {type(frame).__name__}")
    if len(frame) == 0:
        raise DataError(f"{source}: no data rows")
    frame = frame.reset_index(drop=True)  # a new frame: the caller's stays untouched
    notes: list[str] = []
    with _own_warnings(source, notes):
        dataset = _build(frame, source, row_locator, time_column, channels, label_column,
                         series_column, notes)
    for note in notes:
        warnings.warn(_printable(note), DataWarning, stacklevel=2)
    return dataset


def write_scores(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a result frame as .csv, .parquet or .jsonl/.json (JSON lines), creating the folder."""
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in _WRITE_SUFFIXES:
        raise DataError(f"{os.fspath(path)}: cannot write '{suffix or '(no suffix)'}' files; "
                        f"use one of {', '.join(_WRITE_SUFFIXES)}")
    # A meaningful index (not 0..n-1) becomes a column, so nothing the caller indexed by is lost.
    out = frame if isinstance(frame.index, pd.RangeIndex) else frame.reset_index()
    # Write beside the target and rename, so a failed write never leaves half a file behind.
    partial = target.with_name(f".{target.name}.partial")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".csv":
            out.to_csv(partial, index=False)
        elif suffix == ".parquet":
            out.to_parquet(partial, index=False, engine="pyarrow")
        else:
            out.to_json(partial, orient="records", lines=True, date_format="iso", date_unit="us")
        os.replace(partial, target)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise DataError(f"{os.fspath(path)}: cannot write ({error.strerror or error})") from error


@contextmanager
def _own_warnings(source: str, notes: list[str]) -> Iterator[None]:
    """Run readers and checks with warnings caught: DataWarnings and pandas' warnings about the
    data (ParserWarning, DtypeWarning) become notes; numpy's and pandas' others (date-format
    inference, runtime and deprecation warnings) say nothing a user can act on: dropped."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        except DataError as error:  # one line, whatever names and cells it quotes
            message = str(error)
            if not message.isprintable():
                raise DataError(_printable(message)) from None
            raise
    for warning in caught:
        if issubclass(warning.category, DataWarning):
            notes.append(str(warning.message))
        elif issubclass(warning.category, (pd.errors.ParserWarning, pd.errors.DtypeWarning)):
            notes.append(f"{source}: {' '.join(str(warning.message).split())}")


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _build(frame: pd.DataFrame, source: str, locate: Locate, time_column: str | None,
           channels: Sequence[str] | None, label_column: str | None,
           series_column: str | None, notes: list[str]) -> Dataset:
    columns = list(frame.columns)
    for role, name in (("time", time_column), ("label", label_column), ("series", series_column)):
        if name is not None and name not in columns:
            raise DataError(f"{source}: no {role} column '{name}'; columns are {_names(columns)}")
    time_column = time_column if time_column is not None else find_time_column(frame)
    if label_column is None and channels is None:
        label_column = find_label_column(frame, {time_column, series_column})
    roles = {time_column, label_column, series_column} - {None}
    if time_column is not None:
        frame[time_column] = _parse_times(frame[time_column], source, locate, notes)
    if label_column is not None:
        frame[label_column] = _parse_labels(frame[label_column], source, locate)
    chosen = _choose_channels(frame, source, locate, channels, roles, notes)
    dataset = Dataset(frame=frame, channels=chosen, time_column=time_column,
                      label_column=label_column, series_column=series_column, source=source,
                      order=np.arange(len(frame), dtype=np.int64))
    _note_missing(dataset, locate, notes)
    dataset.order = time_order(frame, time_column, series_column, source, locate, notes)
    return dataset


def _names(columns: Sequence[object]) -> str:
    return ", ".join(f"'{name}'" for name in columns)


def _parse_labels(column: pd.Series, source: str, locate: Locate) -> pd.Series:
    if pd.api.types.is_bool_dtype(column):
        return column.astype(np.int8)
    values = column
    if not pd.api.types.is_numeric_dtype(column):
        words = column.astype("string").str.strip().str.lower()
        values = pd.to_numeric(words.replace({"true": "1", "false": "0"}), errors="coerce")
    ok = values.isin([0, 1]).to_numpy()
    if not ok.all():
        pos = int(np.argmin(ok))
        raise DataError(f"{source}, {locate(pos)}, column '{column.name}': "
                        f"{_show(column.iloc[pos])} is not a label (expected 0 or 1)")
    return values.astype(np.int8)


def _as_numbers(column: pd.Series) -> tuple[pd.Series, np.ndarray, np.ndarray]:
    """Numeric view of a column: (float64 values, bad-cell mask, non-empty-cell mask)."""
    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        numbers = column.astype(np.float64)
        return numbers, np.zeros(len(column), bool), numbers.notna().to_numpy()
    numbers = pd.to_numeric(column, errors="coerce").astype(np.float64)
    unparsed = numbers.isna().to_numpy() & column.notna().to_numpy()
    empty = column.isna().to_numpy().copy()
    if unparsed.any():  # tokens like 'NaN' or 'null' are missing values, not bad ones
        words = column[unparsed].astype("string").str.strip().str.lower()
        empty[unparsed] = words.isin(_MISSING_TOKENS).to_numpy()
    return numbers, unparsed & ~empty, ~empty


def _choose_channels(frame: pd.DataFrame, source: str, locate: Locate,
                     requested: Sequence[str] | None, roles: set, notes: list[str]) -> list[str]:
    if requested is not None:
        return _requested_channels(frame, source, locate, requested, roles)
    chosen, empty, texty = [], [], []
    for name in frame.columns:
        column = frame[name]
        if name in roles or pd.api.types.is_bool_dtype(column) \
                or pd.api.types.is_datetime64_any_dtype(column):
            continue
        numbers, bad, filled = _as_numbers(column)
        if not filled.any():
            empty.append(name)
        elif (filled & ~bad).sum() >= 0.5 * filled.sum():  # "mostly numeric"
            _raise_on_bad(column, bad, source, locate)
            frame[name] = column if pd.api.types.is_numeric_dtype(column) else numbers
            chosen.append(name)
        elif (filled & ~bad).any() or _fix(column[bad].iloc[0]):  # "20.1 C", "4,899.5", ...
            cell = column[bad].iloc[0]
            texty.append(f"'{name}' ({int((filled & ~bad).sum())} numbers, {int(bad.sum())} text "
                         f"cells such as {_show(cell)}): {_fix(cell) or 'clean the cells'}")
    mostly_text = (f"column(s) mostly text, not used as channels: {'; '.join(texty)}; or name "
                   f"them with --channels to see the first bad cell") if texty else ""
    if not chosen:
        raise DataError(f"{source}: no numeric channel columns found among "
                        f"{_names(frame.columns)}; " + (mostly_text or "pass --channels to name "
                                                         "them"))
    if texty:
        notes.append(f"{source}: {mostly_text}")
    if empty:
        notes.append(f"{source}: {len(empty)} empty column(s) not used as channels: "
                     f"{_names(empty)}")
    return chosen


def _requested_channels(frame: pd.DataFrame, source: str, locate: Locate,
                        requested: Sequence[str], roles: set) -> list[str]:
    requested = [requested] if isinstance(requested, str) else list(requested)
    if not requested:
        raise DataError(f"{source}: the list of channels is empty")
    for name in requested:
        if name not in frame.columns:
            raise DataError(f"{source}: no channel column '{name}'; columns are "
                            f"{_names(frame.columns)}")
        if name in roles:
            raise DataError(f"{source}: column '{name}' is the time, label or series column, "
                            f"not a channel")
        numbers, bad, filled = _as_numbers(frame[name])
        _raise_on_bad(frame[name], bad, source, locate)
        frame[name] = frame[name] if pd.api.types.is_numeric_dtype(frame[name]) else numbers
    return requested


def _raise_on_bad(column: pd.Series, bad: np.ndarray, source: str, locate: Locate) -> None:
    if bad.any():
        pos = int(np.argmax(bad))
        fix = _fix(column.iloc[pos])
        raise DataError(f"{source}, {locate(pos)}, column '{column.name}': "
                        f"{_show(column.iloc[pos])} is not a number{f'; {fix}' if fix else ''}")


def _fix(cell: object) -> str:
    """How to fix a text cell that should be a number, when it looks like a known kind."""
    text = str(cell).strip()
    for pattern, fix, old, new in _FIXES:
        if match := re.fullmatch(pattern, text):
            return f"{fix}, as in {text.replace(old, new) if old else match.group(1)}"
    return ""


# ---------------------------------------------------------------- repairs and time order


def _note_missing(dataset: Dataset, locate: Locate, notes: list[str]) -> None:
    mask = dataset.missing_mask()
    counts = mask.sum(axis=0)
    if not counts.any():
        return
    whole = np.flatnonzero(counts == len(mask))
    if len(whole):
        raise DataError(f"{dataset.source}: channel '{dataset.channels[whole[0]]}' has no values "
                        f"at all (every cell is missing or infinite)")
    firsts = mask.argmax(axis=0)
    parts = [(int(counts[j]), dataset.channels[j], locate(int(firsts[j])))
             for j in np.flatnonzero(counts)]
    if len(parts) == 1:
        count, name, where = parts[0]
        text = f"{count} missing or infinite values in '{name}' (first at {where})"
    else:
        listed = ", ".join(f"{count} in '{name}' (first at {where})" for count, name, where
                           in parts)
        text = f"{counts.sum()} missing or infinite values: {listed};"
    notes.append(f"{dataset.source}: {text} filled with the previous value in time order "
                 f"(leading ones with the first value; see vigil.policy)")


