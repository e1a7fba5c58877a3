"""Reading sensor files into raw pandas frames, one reader per format: CSV/TSV (delimiter sniffed,
UTF-8 with or without BOM), Parquet and JSON lines. Each reader also returns a locator that turns a
row position into what the user sees in that file ("line 7" in a CSV, "row 6" elsewhere), so
``vigil.io`` can name the exact place of a bad value. Validation lives in ``vigil.io``."""

from __future__ import annotations

import codecs
import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from vigil.errors import DataError

PARQUET_SUFFIXES = {".parquet", ".pq"}
JSON_SUFFIXES = {".jsonl", ".ndjson", ".json"}
_HEAD_BYTES = 8192  # enough lines to sniff a delimiter and spot binary content
_BOM = codecs.BOM_UTF8

Locate = Callable[[int], str]  # 0-based row position -> "line 7" / "row 6", as the user sees it


def row_locator(pos: int) -> str:
    return f"row {pos + 1}"


def load(path: Path, source: str) -> tuple[pd.DataFrame, Locate]:
    if not path.exists():
        raise DataError(f"{source}: no such file")
    if path.is_dir():
        raise DataError(f"{source}: is a directory, not a data file")
    if path.stat().st_size == 0:
        raise DataError(f"{source}: the file is empty")
    with open(path, "rb") as handle:
        head = handle.read(_HEAD_BYTES)
    suffix = path.suffix.lower()
    # Parquet's magic bytes win over the suffix: a Parquet file saved as .csv still reads.
    if head.startswith(b"PAR1") or suffix in PARQUET_SUFFIXES:
        frame = _read_parquet(path, source)
        if len(frame) == 0:
            raise DataError(f"{source}: no data rows")
        return frame, row_locator
    kind = "JSON" if suffix in JSON_SUFFIXES else "CSV"
    _check_text(path, source, head, kind)
    if kind == "JSON":
        frame = _read_json(path, source, head)
        if len(frame) == 0:
            raise DataError(f"{source}: no data rows")
        return frame, row_locator
    frame = _read_csv(path, source, head, suffix)
    if len(frame) == 0:
        raise DataError(f"{source}: header only, no data rows")
    return frame, _CsvLines(path)


def _check_text(path: Path, source: str, head: bytes, kind: str) -> None:
    if b"\x00" in head:
        raise DataError(f"{source}: not a text {kind} file (it contains binary data)")
    try:  # an incremental decoder tolerates a character cut in half at the end of the head
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as error:
        raise DataError(f"{source}: not a text {kind} file (not valid UTF-8 at byte "
                        f"{error.start})") from None
    blank = head.removeprefix(_BOM).strip() == b""
    if blank and path.read_bytes().removeprefix(_BOM).strip() == b"":
        raise DataError(f"{source}: the file is empty")


def _read_parquet(path: Path, source: str) -> pd.DataFrame:
    try:
        return pd.read_parquet(path, engine="pyarrow")
    except (ValueError, OSError) as error:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"{source}: not a readable Parquet file ({error})") from None


def _sniff_delimiter(head: bytes, fallback: str) -> str:
    text = codecs.getincrementaldecoder("utf-8-sig")().decode(head, final=False)
    if "\n" in text.rstrip("\r\n"):
        text = text[: text.rfind("\n")]  # whole lines only: a cut line would confuse the sniffer
    try:
        return csv.Sniffer().sniff(text, delimiters=",;\t|").delimiter
    except csv.Error:
        return fallback


def _read_csv(path: Path, source: str, head: bytes, suffix: str) -> pd.DataFrame:
    sep = _sniff_delimiter(head, "\t" if suffix == ".tsv" else ",")
    try:
        return pd.read_csv(path, sep=sep, encoding="utf-8-sig", engine="pyarrow")
    except (ValueError, OSError):
        pass  # the C engine copes with more (whitespace-only lines, ragged rows) and says where
    try:
        return pd.read_csv(path, sep=sep, encoding="utf-8-sig", engine="c", low_memory=False)
    except UnicodeDecodeError as error:
        raise DataError(f"{source}: not a text CSV file (not UTF-8: {error.reason})") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{source}: the file is empty") from None
    except (pd.errors.ParserError, ValueError) as error:
        reason = " ".join(str(error).split())
        raise DataError(f"{source}: cannot parse as CSV, delimiter {sep!r} ({reason})") from None


def _read_json(path: Path, source: str, head: bytes) -> pd.DataFrame:
    if head.removeprefix(_BOM).lstrip().startswith(b"["):
        try:
            records = json.loads(path.read_text(encoding="utf-8-sig"))
        except json.JSONDecodeError as error:
            raise DataError(f"{source}: not valid JSON ({error.msg} at line {error.lineno}, "
                            f"column {error.colno})") from None
        if not all(isinstance(record, dict) for record in records):
            raise DataError(f"{source}: expected a JSON array of objects (one per row)")
        return pd.DataFrame.from_records(records)
    import pyarrow.json  # heavy; only needed here

    try:
        return pyarrow.json.read_json(path).to_pandas()
    except (ValueError, OSError):
        pass  # mixed types in a column or a bad line: pandas reads objects, and we say where
    try:
        return pd.read_json(path, lines=True, dtype=False, encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise DataError(f"{source}: not a text JSON file (not UTF-8: {error.reason})") from None
    except ValueError as error:
        raise DataError(f"{source}, {_first_bad_json_line(path)}: not a JSON object per line "
                        f"({error})") from None


def _first_bad_json_line(path: Path) -> str:
    # Error path only: a Python loop is fine here.
    with open(path, encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    if not isinstance(json.loads(line), dict):
                        return f"line {number}"
                except json.JSONDecodeError:
                    return f"line {number}"
    return "somewhere"


class _CsvLines:
    """Maps a data row to its line in the file (header = line 1), skipping blank lines as the
    readers do. Used for messages only: it rereads the file in chunks, stopping at the row.
    Quoted fields spanning several lines are not accounted for (rare in sensor data)."""

    _CHUNK = 1 << 24
    _SPACE = np.isin(np.arange(256), [ord(" "), ord("\t"), ord("\r")])

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self, pos: int) -> str:
        wanted = pos + 2  # the wanted row is the (pos + 2)-th non-blank line, after the header
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
        return f"line {pos + 2}"


# ---------------------------------------------------------------- validating columns


