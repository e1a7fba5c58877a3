"""Kafka messages in and out of ``vigil stream``: decoding a sensor reading (JSON or a CSV line)
into a series, a time and the model's channel values, and encoding a result as JSON.

Formats taken (the first non-blank byte tells them apart):

- nested JSON, ``{"ts": "2024-03-19 12:02:00", "series": "pump-7", "values": {"temperature":
  100.0, ...}}``; the time may also be called ``time``, ``timestamp`` or the model's time column;
- flat JSON, ``{"timestamp": "2024-03-19 12:02:00", "temperature": 100.0, ...}``;
- a CSV line, ``2024-03-19 12:02:00,100.0,950.0``, its fields in the model's column order (the
  time column, if the model has one, then the channels) or in the order given by ``columns``.

The series is the payload's ``series`` (or the model's series column), else the message key,
else the one unnamed series ``""``. A channel's value is a number, a numeric string, or null /
NaN (a missing value: filled from the series' previous value, as batch scoring fills it).
Everything else is a :class:`BadMessage` naming what is wrong; a worker sends those to its
dead-letter topic and goes on.
"""

from __future__ import annotations

import csv
import json
import math
from typing import Any, Sequence

import numpy as np
import pandas as pd

__all__ = ["BadMessage", "Decoder", "dead_letter_headers", "encode", "parse_times",
           "TIME_FIELDS"]

#: Field names taken as the reading's time, besides the model's own time column.
TIME_FIELDS = ("ts", "time", "timestamp")
_NAT = np.iinfo(np.int64).min


class BadMessage(Exception):
    """A message the worker cannot score; ``reason`` is a short code (``decode``, ``channel``,
    ``value``, ``time``, ``late``, ``partition``, ``size``, ``series``), ``str()`` the whole
    sentence."""

    def __init__(self, reason: str, text: str) -> None:
        super().__init__(text)
        self.reason = reason


def _constant(name: str) -> float:
    return float(name)  # NaN, Infinity, -Infinity: NaN is a missing value, infinities refused


#: One decoder for every message (json.loads with options builds a new one per call).
_JSON = json.JSONDecoder(parse_constant=_constant)


class Decoder:
    """Turns message bytes into ``(series, raw_time, values)`` for a model's channels.

    Args:
        channels: the model's channels, in its order.
        time_column: the model's time column, or None.
        series_column: the model's series column, or None.
        columns: the CSV field order (default: ``[time_column] + channels``).
        max_bytes: larger messages are refused unread (a hostile or broken producer cannot make
            the worker parse megabytes).
    """

    def __init__(self, channels: Sequence[str], time_column: str | None = None,
                 series_column: str | None = None, columns: Sequence[str] | None = None,
                 max_bytes: int = 1 << 20) -> None:
        self.channels = list(channels)
        self.time_column = time_column
        self.series_column = series_column
        self.max_bytes = int(max_bytes)
        self.time_fields = tuple(dict.fromkeys(
            ([time_column] if time_column else []) + list(TIME_FIELDS)))
        self.series_fields = tuple(dict.fromkeys(
            ["series"] + ([series_column] if series_column else [])))
        if columns is None:
            columns = ([time_column] if time_column else []) + self.channels
        self.columns = list(columns)
        missing = [c for c in self.channels if c not in self.columns]
        if missing:
            from vigil.errors import ConfigError

            raise ConfigError(f"--columns must name every channel of the model; it lacks "
                              f"{', '.join(missing)} (the model needs: {', '.join(self.channels)}).")
        self._csv_time = next((i for i, c in enumerate(self.columns)
                               if c in self.time_fields), None)
        self._csv_series = next((i for i, c in enumerate(self.columns)
                                 if c in self.series_fields), None)
        self._csv_channels = [self.columns.index(c) for c in self.channels]

    def decode(self, key: bytes | None, value: bytes | None) -> tuple[str, Any, list[Any]]:
        """``(series, raw time or None, channel values)``; a value is a float (NaN: missing).
        Raises :class:`BadMessage`."""
        if value is None:
            raise BadMessage("decode", "an empty message (no value)")
        if len(value) > self.max_bytes:
            raise BadMessage("size", f"a message of {len(value)} bytes, over the limit of "
                                     f"{self.max_bytes} bytes")
        head = value.lstrip()[:1]
        if head == b"{":
            series, when, values = self._json(value)
        else:
            series, when, values = self._csv(value)
        if series is None:
            series = _text(key) if key is not None else ""
        return series, when, values

    def _json(self, value: bytes) -> tuple[str | None, Any, list[float]]:
        try:
            obj = _JSON.decode(value.decode("utf-8"))
        except RecursionError:
            raise BadMessage("decode", "JSON nested too deeply") from None
        except (ValueError, UnicodeDecodeError) as error:
            raise BadMessage("decode", f"not valid UTF-8 JSON ({str(error)[:80]})") from None
        if not isinstance(obj, dict):
            raise BadMessage("decode", f"a JSON {type(obj).__name__}, not an object")
        when = next((obj[f] for f in self.time_fields if f in obj), None)
        if when is not None and not isinstance(when, (str, int, float)) or isinstance(when, bool):
            raise BadMessage("time", f"time {str(when)[:40]!r} is not text or a number")
        series = next((obj[f] for f in self.series_fields if f in obj), None)
        if series is not None:
            if not isinstance(series, (str, int)) or isinstance(series, bool):
                raise BadMessage("decode", f"series {str(series)[:40]!r} is not text or a whole "
                                           f"number")
            series = str(series)
        source = obj.get("values", obj)
        if not isinstance(source, dict):
            raise BadMessage("decode", "'values' is not a JSON object of channel values")
        values = []
        for name in self.channels:
            if name not in source:
                raise BadMessage("channel", f"channel {name!r}, which the model needs, is "
                                            f"missing (it needs: {', '.join(self.channels)})")
            values.append(_number(source[name], name))
        return series, when, values

    def _csv(self, value: bytes) -> tuple[str | None, Any, list[float]]:
        try:
            line = value.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise BadMessage("decode", "not valid UTF-8 text") from None
        fields = next(csv.reader([line])) if '"' in line else line.split(",")
        if len(fields) != len(self.columns):
            raise BadMessage("decode", f"a CSV line of {len(fields)} fields; expected "
                                       f"{len(self.columns)} ({','.join(self.columns)})")
        when = fields[self._csv_time].strip() if self._csv_time is not None else None
        series = fields[self._csv_series].strip() if self._csv_series is not None else None
        values = [_number(fields[i].strip(), self.channels[j])
                  for j, i in enumerate(self._csv_channels)]
        return series, when or None, values


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadMessage("decode", "the message key is not valid UTF-8") from None


def _number(raw: Any, name: str) -> float:
    if type(raw) is float and raw - raw == 0:  # the common case: a finite JSON number
        return raw
    if raw is None or raw == "":
        return math.nan
    if isinstance(raw, bool) or not isinstance(raw, (int, float, str)):
        raise BadMessage("value", f"channel {name!r}: {str(raw)[:40]!r} is not a number")
    try:
        number = float(raw)
    except (ValueError, OverflowError):
        raise BadMessage("value", f"channel {name!r}: {str(raw)[:40]!r} is not a number"
                         ) from None
    if math.isinf(number):
        raise BadMessage("value", f"channel {name!r}: {raw!r} is not finite")
    return number


def parse_times(raw: Sequence[Any]) -> np.ndarray:
    """Times to int64 nanoseconds (UTC when a zone is given; naive times as they are), NaT
    where a time is absent or cannot be read. Numbers are epoch times, the unit chosen by
    magnitude (s, ms, us, ns) as for a file's epoch column. Vectorised over a batch."""
    out = np.full(len(raw), _NAT, dtype=np.int64)
    kinds = np.array([0 if r is None else (1 if isinstance(r, str) else 2) for r in raw])
    text = np.flatnonzero(kinds == 1)
    if len(text):
        strings = pd.Series([raw[i] for i in text], dtype=object)
        parsed = pd.to_datetime(strings, errors="coerce", format="ISO8601", utc=True)
        if parsed.isna().any():  # other spellings pandas reads, one by one
            rest = parsed.isna().to_numpy()
            parsed[rest] = pd.to_datetime(strings[rest], errors="coerce", utc=True,
                                          format="mixed")
        out[text] = pd.DatetimeIndex(parsed).as_unit("ns").asi8
    numeric = np.flatnonzero(kinds == 2)
    if len(numeric):
        numbers = np.array([float(raw[i]) for i in numeric])
        ok = np.isfinite(numbers) & (numbers > 0)
        scale = np.select([numbers < 1e11, numbers < 1e14, numbers < 1e17],
                          [1e9, 1e6, 1e3], 1.0)
        with np.errstate(invalid="ignore", over="ignore"):
            ns = numbers * scale
        ok &= ns < 9.2e18
        out[numeric[ok]] = ns[ok].astype(np.int64)
    return out


def dead_letter_headers(message: Any, bad: BadMessage) -> list[tuple[str, bytes]]:
    """The headers of a dead letter: why (``vigil.reason``, ``vigil.error``) and where the
    message came from (``vigil.topic``, ``vigil.partition``, ``vigil.offset``)."""
    return [("vigil.reason", bad.reason.encode()), ("vigil.error", str(bad).encode()),
            ("vigil.topic", message.topic().encode()),
            ("vigil.partition", str(message.partition()).encode()),
            ("vigil.offset", str(message.offset()).encode())]


def encode(result: dict[str, Any]) -> bytes:
    """A result as compact JSON (NaN as null)."""
    return json.dumps(result, separators=(",", ":"), allow_nan=False,
                      default=_plain).encode()


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")
