"""Reading sensor data into a Spark DataFrame: CSV (with a header), Parquet or JSON lines, from a
file, a folder, a glob or any Hadoop file system URI, the format told by the name."""

from __future__ import annotations

import glob as _glob
import os
from typing import Any

from vigil.engines.spark.errors import executor_errors
from vigil.errors import DataError

__all__ = ["read", "FORMATS"]

FORMATS = ("csv", "parquet", "json")
_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".parquet": "parquet",
             ".pq": "parquet", ".jsonl": "json", ".json": "json", ".ndjson": "json"}


def read(spark: Any, path: str, format: str | None = None) -> Any:
    """A DataFrame of ``path``. ``format`` (csv, parquet, json) defaults to the one the name's
    suffix tells (for a local folder, its files'), else csv. CSV files are read with their
    header and typed columns (``inferSchema``): timestamps stay timestamps."""
    kind = format or _format_of(path)
    if kind not in FORMATS:
        raise DataError(f"unknown format {kind!r}: use one of {', '.join(FORMATS)}.")
    if "://" not in path and not _glob.glob(path):
        raise DataError(f"{path}: no such file or folder.")
    reader = spark.read
    if kind == "csv":
        reader = reader.option("header", True).option("inferSchema", True).option(
            "sep", "\t" if path.lower().rstrip("/").endswith(".tsv") else ",")
    with executor_errors():
        try:
            return getattr(reader, kind)(path)
        except Exception as error:  # AnalysisException: a path or a schema it cannot read
            first = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            raise DataError(f"{path}: Spark cannot read it as {kind}: {first[:300]}") from None


def _format_of(path: str) -> str:
    name = path.rstrip("/")
    suffix = os.path.splitext(name)[1].lower()
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    if "://" not in path and os.path.isdir(path):
        kinds = {_SUFFIXES[s] for s in (os.path.splitext(f)[1].lower() for f in os.listdir(path))
                 if s in _SUFFIXES}
        if len(kinds) == 1:
            return kinds.pop()
    return "csv"
