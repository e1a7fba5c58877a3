"""Reading CSV/TSV text into a raw frame, refusing what would shift or lose cells and noting what
it repairs. pandas alone renames a duplicate column to 'x.1', makes the first field the index when
rows have one field more than the header, fills short rows with gaps and takes a '#' comment line
for the header; here each of these is one ``DataError`` naming the line (or a note):

- leading ``#`` comment lines (and blank lines) above the header are skipped, with a note;
- a first line that looks like data (a timestamp or a decimal number, no name) is refused: the
  file has no header, and pandas would use its first row as column names;
- the delimiter is the one of ``, ; TAB |`` that cuts the header and the lines under it into the
  same number (at least 2) of fields; the suffix's (TAB for .tsv, else comma) wins ties;
- a column name given twice in the header is refused, and so is a header of one column that
  holds spaces between names (space-separated columns are not read), or a JSON line;
- a line with more or fewer fields than the header is refused, naming it and both counts, and
  so is a quote never closed (it would swallow the lines after it); a quoted cell over several
  lines that is closed is read, with a note;
- a byte that is not UTF-8 is refused naming its line: guessing another encoding would silently
  change names and cells, and the head of the file is already held to UTF-8 (``vigil.readers``);
- decimal commas (``20,1``) in a file not separated by commas are read as numbers, with a note.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd

from vigil.errors import DataError

_DELIMITERS = (",", "\t", ";", "|")
_SHOWN = {",": "','", "\t": "TAB", ";": "';'", "|": "'|'"}
_NEWLINE = re.compile(rb"\r\n|\r|\n")  # what pandas and pyarrow end a line with
_HEAD_LINES, _HEAD_LIMIT, _CHUNK = 50, 1 << 22, 1 << 16
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_INTEGER = re.compile(r"[+-]?\d+")
_DATE = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T]\d{1,2}:\d{2}(:\d{2}(\.\d*)?)?)?"
                   r"(Z|[+-]\d{2}:?\d{2})?")
_JSON = re.compile(r'\s*(\[\s*[{\]]|\{\s*["}])')  # [{... or {"key"...: not a CSV header
_DECIMAL_COMMA = r"[+-]?(\d{1,3}(\.\d{3})+|\d*),\d+([eE][+-]?\d+)?"  # 20,1 and 1.234,5


def read_csv(path: Path, source: str, suffix: str,
             notes: list[str]) -> tuple[pd.DataFrame, CsvLines]:
    """The raw frame of a CSV/TSV file, and the locator of its rows' lines."""
    lines = _head_lines(path)
    skip = next((i for i, line in enumerate(lines)
                 if line.strip() and not line.lstrip().startswith("#")), None)
    if skip is None:
        raise DataError(f"{source}: no header line, only '#' comment lines"
                        f"{'' if len(lines) < _HEAD_LINES else f' in the first {len(lines)}'}")
    comments = sum(line.lstrip().startswith("#") for line in lines[:skip])
    body = [line for line in lines[skip:] if line.strip()]
    if looks_like_json(body[0]):  # JSON from line 1 on is read as JSON by vigil.readers
        raise DataError(f"{source}, line {skip + 1}: JSON, not a CSV header: the file looks like "
                        f"JSON lines with comment lines above; remove them")
    sep = choose_delimiter(body, "\t" if suffix == ".tsv" else ",")
    header = next(csv.reader(body[:1], delimiter=sep))
    _check_header(header, source, skip + 1, comments)
    if len(header) == 1 and len(body) > 1 and min(len(header[0].split()),
                                                   len(body[1].split())) > 1:
        raise DataError(f"{source}, line {skip + 1}: one column only, no ',', ';', TAB or '|' "
                        f"between the names; columns separated by spaces are not read: "
                        f"separate them with commas")
    if comments:
        notes.append(f"{source}: skipped {comments} comment line(s) starting with '#' above the "
                     f"header; the header is line {skip + 1}")
    frame = _read_frame(path, source, sep, (skip, comments), len(header), notes)
    _decimal_commas(frame, sep, source, notes)
    return frame, CsvLines(path, comments)


def looks_like_json(text: str) -> bool:
    return bool(_JSON.match(text))


def _head_lines(path: Path) -> list[str]:
    """The first whole lines of the file (BOM dropped, bad bytes replaced: only for sniffing)."""
    data, ended = b"", False
    with open(path, "rb") as handle:
        while not ended and len(_NEWLINE.findall(data)) <= _HEAD_LINES and len(data) < _HEAD_LIMIT:
            chunk = handle.read(_CHUNK)
            data, ended = data + chunk, not chunk
    pieces = _NEWLINE.split(data.removeprefix(b"\xef\xbb\xbf"))
    if not ended and len(pieces) > 1:
        pieces = pieces[:-1]  # a line cut by the chunk would confuse the delimiter count
    return [piece.decode("utf-8", errors="replace") for piece in pieces[:_HEAD_LINES]]


def choose_delimiter(lines: list[str], default: str) -> str:
    """The delimiter that cuts the first line and most lines under it into as many fields."""
    best, best_key = default, (-1.0, 0)
    for rank, sep in enumerate(sorted(_DELIMITERS, key=lambda d: d != default)):
        try:
            counts = [len(row) for row in csv.reader(lines, delimiter=sep)]
        except csv.Error:
            continue
        if not counts or counts[0] < 2:
            continue
        agree = sum(count == counts[0] for count in counts[1:]) / max(len(counts) - 1, 1)
        if (agree, -rank) > best_key:
            best, best_key = sep, (agree, -rank)
    return best


def _check_header(header: list[str], source: str, number: int, comments: int) -> None:
    where = f"{source}, line {number}"
    seen: dict[str, int] = {}
    for index, name in enumerate(header, start=1):
        if name.strip() and name in seen:
            raise DataError(f"{where}: column '{name}' appears twice in the header (fields "
                            f"{seen[name]} and {index}); give each column its own name")
        seen.setdefault(name, index)
    cells = [cell.strip() for cell in header if cell.strip()]
    datalike = all(_NUMBER.fullmatch(cell) or _DATE.fullmatch(cell) for cell in cells)
    if cells and datalike and not all(_INTEGER.fullmatch(cell) for cell in cells):
        hint = (" (a '#' comment line is above it: if that holds the column names, remove "
                "its '#')" if comments else "")
        shown = ", ".join(f"'{cell}'" for cell in cells[:3]) + (", ..." if len(cells) > 3 else "")
        raise DataError(f"{where}: the first line looks like data ({shown}), not a header of "
                        f"column names{hint}; add a header line")


def _read_frame(path: Path, source: str, sep: str, skipped: tuple[int, int], width: int,
                notes: list[str]) -> pd.DataFrame:
    skip, comments = skipped
    options = {"sep": sep, "encoding": "utf-8-sig", "skiprows": skip or None}
    try:  # fast, and strict: every line must have the header's number of fields
        return _spans(pd.read_csv(path, engine="pyarrow", **options), path, source, sep,
                      skipped, width, notes)
    except (ValueError, OSError) as error:
        if isinstance(error, DataError):
            raise
        # the C engine copes with more (whitespace-only lines, quoted newlines, ragged rows)
    try:
        frame = pd.read_csv(path, engine="c", low_memory=False, **options)
    except UnicodeDecodeError:
        raise not_utf8(path, source) from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{source}: the file is empty") from None
    except (pd.errors.ParserError, ValueError) as error:
        _refuse_ragged(path, source, sep, skip, width)
        reason = " ".join(str(error).split())
        raise DataError(f"{source}: cannot parse as CSV, delimiter {_SHOWN[sep]} ({reason})"
                        ) from None
    # Rows longer than the header make pandas index by the first field; short rows end in gaps.
    if not isinstance(frame.index, pd.RangeIndex) or frame.iloc[:, -1].isna().any():
        _refuse_ragged(path, source, sep, skip, width)
        if not isinstance(frame.index, pd.RangeIndex):
            raise DataError(f"{source}: rows have more fields than the header (delimiter "
                            f"{_SHOWN[sep]})")
    return _spans(frame, path, source, sep, skipped, width, notes)


def _spans(frame: pd.DataFrame, path: Path, source: str, sep: str, skipped: tuple[int, int],
           width: int, notes: list[str]) -> pd.DataFrame:
    """Check and note quoted cells over several lines: a quote never closed swallows the lines
    after it into one cell (both engines accept that)."""
    spans = [name for name in frame.columns if _is_text(frame[name])
             and frame[name].str.contains("[\r\n]", na=False).any()]
    if spans:
        skip, comments = skipped
        _refuse_ragged(path, source, sep, skip, width)
        pos = int(np.argmax(frame[spans[0]].str.contains("[\r\n]", na=False).to_numpy()))
        notes.append(f"{source}, {CsvLines(path, comments)(pos)}: a quoted cell in column "
                     f"'{spans[0]}' spans several lines, read as one cell (line numbers named "
                     f"after it may be off)")
    return frame


def _is_text(column: pd.Series) -> bool:  # str cells only (pyarrow makes dates objects too)
    return isinstance(column.dtype, pd.StringDtype) or (
        column.dtype == object and pd.api.types.infer_dtype(column, skipna=True) == "string")


def _refuse_ragged(path: Path, source: str, sep: str, skip: int, width: int) -> None:
    """Raise naming the first line whose number of fields is not the header's (error path)."""
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        for _ in range(skip):
            handle.readline()
        reader = csv.reader(handle, delimiter=sep, strict=True)
        start, header = skip + 1, None
        try:
            for row in reader:
                if row and not (len(row) == 1 and not row[0].strip()):  # blank lines: skipped
                    if header is None:
                        header = start
                    elif len(row) != width:
                        hint = ("a delimiter too many, or a value with no column?" if len(row)
                                > width else "a delimiter missing, or a line cut short?")
                        raise DataError(f"{source}, line {start}: {_fields(len(row))}, but the "
                                        f"header (line {header}) has {width}, delimiter "
                                        f"{_SHOWN[sep]} ({hint})")
                start = skip + reader.line_num + 1
        except csv.Error as error:
            reason = ("a quote opened here is never closed" if "end of data" in str(error) else
                      f"cannot parse as CSV: {error}")
            raise DataError(f"{source}, line {start}: {reason} (delimiter {_SHOWN[sep]})"
                            ) from None


def _fields(count: int) -> str:
    return "1 field" if count == 1 else f"{count} fields"


def not_utf8(path: Path, source: str, kind: str = "CSV") -> DataError:
    """The error naming the first line that is not UTF-8 (error path: a line-by-line loop)."""
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as error:
                return not_utf8_error(source, kind, number, line[error.start], error.start)
    return DataError(f"{source}: not a text {kind} file in UTF-8")


def not_utf8_error(source: str, kind: str, number: int, byte: int, column: int) -> DataError:
    return DataError(f"{source}, line {number}: not a text {kind} file in UTF-8 (byte "
                     f"0x{byte:02x} at position {column + 1} of the line); save it as UTF-8, "
                     f"e.g. iconv -f latin1 -t utf-8")


def _decimal_commas(frame: pd.DataFrame, sep: str, source: str, notes: list[str]) -> None:
    """Read text columns of decimal-comma numbers (mostly) as numbers, where the delimiter is
    not a comma; '1,234' is taken for 1.234 only in ';' files (elsewhere it may be 1234)."""
    if sep == ",":
        return
    fixed, example = [], ""
    for name in frame.columns:
        column = frame[name]
        if not _is_text(column):
            continue
        cells = column.dropna().astype(str).str.strip()
        comma = cells.str.fullmatch(_DECIMAL_COMMA)
        if not comma.any() or (comma | cells.str.fullmatch(_NUMBER.pattern)).mean() < 0.5:
            continue
        if sep != ";" and cells[comma].str.fullmatch(r"[+-]?\d{1,3},\d{3}").all():
            continue  # could be thousands separators
        example = example or cells[comma].iloc[0]
        repaired = cells[comma].str.replace(".", "", regex=False).str.replace(",", ".",
                                                                              regex=False)
        frame[name] = column.astype(object)
        frame.loc[repaired.index, name] = repaired
        fixed.append(name)
    if fixed:
        names = ", ".join(f"'{name}'" for name in fixed)
        notes.append(f"{source}: decimal commas read as decimal points in column(s) {names} "
                     f"(e.g. '{example}' as {example.replace('.', '').replace(',', '.')})")


class CsvLines:
    """Maps a data row to its line in the file (header = the first line that is not blank or a
    skipped comment), skipping blank lines as the readers do. Used for messages only: it rereads
    the file in chunks, stopping at the row. Quoted fields spanning lines are not accounted for
    (rare in sensor data)."""

    _CHUNK = 1 << 24
    _SPACE = np.isin(np.arange(256), [ord(" "), ord("\t"), ord("\r")])

    def __init__(self, path: Path, skipped: int = 0) -> None:
        self.path, self.skipped = path, skipped

    def __call__(self, pos: int) -> str:
        wanted = pos + 2 + self.skipped  # the (pos + 2)-th non-blank line after the comments
        seen = lines = 0
        after_newline = True  # at the start of a line
        with open(self.path, "rb") as handle:
            while chunk := handle.read(self._CHUNK):
                data = np.frombuffer(chunk, dtype=np.uint8)
                kept = data[~self._SPACE[data]]  # now a blank line is two newlines in a row
                if not len(kept):
                    continue
                newline = kept == ord("\n")
                follows_newline = np.concatenate(([after_newline], newline[:-1]))
                ends = np.flatnonzero(newline)
                found = lines + 1 + np.flatnonzero(~follows_newline[ends])
                if seen + len(found) >= wanted:
                    return f"line {found[wanted - seen - 1]}"
                seen, lines, after_newline = seen + len(found), lines + len(ends), bool(newline[-1])
        if not after_newline and seen + 1 == wanted:  # the last line has no newline
            return f"line {lines + 1}"
        return f"line {pos + 2 + self.skipped}"
