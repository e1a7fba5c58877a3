"""Reading sensor files into raw pandas frames, one reader per format: CSV/TSV (delimiter sniffed,
UTF-8 with or without BOM; see ``vigil.readers_csv``), Parquet and JSON lines (also when a .csv
file holds them). Each reader also returns a locator that turns a row position into what the user
sees in that file ("line 7" in a CSV, "row 6" elsewhere), so ``vigil.io`` can name the exact place
of a bad value; repairs go to ``notes``, one line each. Validation lives in ``vigil.io``."""

from __future__ import annotations

import codecs
import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from vigil.errors import DataError
from vigil.readers_csv import looks_like_json, not_utf8, not_utf8_error, read_csv

PARQUET_SUFFIXES = {".parquet", ".pq"}
JSON_SUFFIXES = {".jsonl", ".ndjson", ".json"}
_HEAD_BYTES = 8192  # enough to spot binary content
_BOM = codecs.BOM_UTF8

Locate = Callable[[int], str]  # 0-based row position -> "line 7" / "row 6", as the user sees it


def row_locator(pos: int) -> str:
    return f"row {pos + 1}"


def load(path: Path, source: str, notes: list[str]) -> tuple[pd.DataFrame, Locate]:
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
    if kind == "CSV" and looks_like_json(head.removeprefix(_BOM).decode("utf-8", "replace")):
        what = "a JSON array" if head.removeprefix(_BOM).lstrip().startswith(b"[") else \
            "JSON lines"
        notes.append(f"{source}: the file holds {what}, not CSV; read as JSON")
        kind = "JSON"
    if kind == "JSON":
        frame = _read_json(path, source, head)
        if len(frame) == 0:
            raise DataError(f"{source}: no data rows")
        return frame, row_locator
    frame, locate = read_csv(path, source, suffix, notes)
    if len(frame) == 0:
        raise DataError(f"{source}: header only, no data rows")
    return frame, locate


def _check_text(path: Path, source: str, head: bytes, kind: str) -> None:
    if b"\x00" in head:
        raise DataError(f"{source}: not a text {kind} file (it contains binary data)")
    try:  # an incremental decoder tolerates a character cut in half at the end of the head
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError as error:
        start = head.rfind(b"\n", 0, error.start) + 1
        raise not_utf8_error(source, kind, head.count(b"\n", 0, start) + 1, head[error.start],
                             error.start - start) from None
    blank = head.removeprefix(_BOM).strip() == b""
    if blank and path.read_bytes().removeprefix(_BOM).strip() == b"":
        raise DataError(f"{source}: the file is empty")


def _read_parquet(path: Path, source: str) -> pd.DataFrame:
    try:
        return pd.read_parquet(path, engine="pyarrow")
    except (ValueError, OSError) as error:  # pyarrow's ArrowInvalid is a ValueError
        raise DataError(f"{source}: not a readable Parquet file ({error})") from None


def _read_json(path: Path, source: str, head: bytes) -> pd.DataFrame:
    if head.removeprefix(_BOM).lstrip().startswith(b"["):
        try:
            records = json.loads(path.read_text(encoding="utf-8-sig"))
        except UnicodeDecodeError:
            raise not_utf8(path, source, "JSON") from None
        except json.JSONDecodeError as error:
            raise DataError(f"{source}: not valid JSON ({error.msg} at line {error.lineno}, "
                            f"column {error.colno})") from None
        except RecursionError:
            raise DataError(f"{source}: not a JSON array of objects (nested too deeply)") from None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise DataError(f"{source}: expected a JSON array of objects (one per row)")
        return pd.DataFrame.from_records(records)
    import pyarrow.json  # heavy; only needed here

    try:
        return pyarrow.json.read_json(path).to_pandas()
    except (ValueError, OSError):
        pass  # mixed types in a column or a bad line: pandas reads objects, and we say where
    try:
        return pd.read_json(path, lines=True, dtype=False, encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise not_utf8(path, source, "JSON") from None
    except (ValueError, TypeError) as error:  # TypeError: a line that is a number, not an object
        reason = "a JSON value that is not an object" if isinstance(error, TypeError) else error
        raise DataError(f"{source}, {_first_bad_json_line(path)}: not a JSON object per line "
                        f"({reason})") from None


def _first_bad_json_line(path: Path) -> str:
    # Error path only: a Python loop is fine here.
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    if not isinstance(json.loads(line), dict):
                        return f"line {number}"
                except (json.JSONDecodeError, RecursionError):
                    return f"line {number}"
    return "somewhere"
