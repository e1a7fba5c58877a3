"""Streaming: score one series of a fitted :class:`vigil.Model` row by row (or in batches of any
size) and get exactly what batch scoring gives, for every method.

:class:`StreamScorer` is what the Kafka worker and Spark Structured Streaming score through.
``update(rows)`` takes the next rows of the series, in time order, and returns the rows whose
result is now **final**, each exactly once, in order; ``flush()`` ends the stream and returns the
rest. Concatenated, the outputs equal ``model.detect(whole_series)``: scores bit for bit, and
``is_anomaly``, ``event`` and ``driver`` identical (tested for every registered method, fed one
row at a time and in random batches, and across a save and restore of the state).

How (block scoring with a halo):

- **Scores.** A detector's score of a row depends on at most ``context_rows`` rows before it and
  ``lookahead_rows`` rows after it (``Detector._context_rows`` / ``_lookahead_rows``), and the
  detector contract makes a block that carries them score that row exactly as the whole series
  does (``Model`` scores big series in such blocks too). The scorer keeps the last
  ``context_rows`` input rows and the rows still awaiting their lookahead; on ``update`` it
  scores the block [context, pending, new] and keeps the rows that now have ``lookahead_rows``
  rows after them. A point-wise method (both 0) scores each row once, never an old one.
- **Threshold.** ``model.threshold_``, one number today. The threshold goes through a small
  state object called once per batch of final scores (``update(scores) -> thresholds``, plain
  JSON state), so an adaptive threshold with its own causal state (``dspot``'s stepper) plugs
  in unchanged once batch scoring applies it per row.
- **Alarms.** The model's alarm rules run as a causal state machine
  (:class:`vigil.alarms.AlarmStream`) over the final scores; a row's ``is_anomaly`` / ``event``
  is returned once the rules have decided it. That is usually within
  ``Alarms.lookahead_rows`` rows of its score, but an event not yet confirmed (fewer than
  ``min_rows`` rows above the threshold) keeps its rows until it is confirmed or closes: up to
  ``(min_rows - 1) * (merge_gap + 1)`` rows without hysteresis, without bound with it.
- **State.** ``state()`` is JSON bytes (never pickle): the buffered rows, the positions, the
  threshold and alarm state and the event counter; ``StreamScorer.from_state(model, data)``
  resumes, and refuses a state written for another model.

Input policy, against batch (``vigil.read`` / ``Model.detect``):

- Rows must come in time order: a row whose time is earlier than the row before it is a
  ``DataError`` (batch sorts such rows, a stream cannot). Equal times are kept, as in batch.
- A missing value (NaN, None, an empty or ``"nan"`` cell) is filled with the previous value of
  that channel in the stream, as batch fills it; the output row says ``filled=True``. A leading
  gap (a channel with no value yet since the stream began) is filled, as batch does, with the
  channel's first value: a stream cannot look ahead, so it holds those first rows, unscored,
  until every channel has had a value (then they go on, filled exactly as batch fills them); a
  stream ended while a channel never had one is the ``DataError`` batch raises for it. Only
  the stream's own start can be held: once every channel has had a value, every gap fills from
  the past.
- An infinite value is a ``DataError`` naming the row (batch fills it like a missing one; a
  stream refuses it, so a broken sensor or producer is caught where it happens).
- A channel the model needs that the rows lack, a non-numeric cell, an array with the wrong
  number of columns: a one-line ``DataError``. Other columns are ignored.

Example:
    >>> import numpy as np, pandas as pd, vigil
    >>> rng = np.random.default_rng(0)
    >>> data = pd.DataFrame({"temperature": rng.normal(20, 1, 3000)})
    >>> data.loc[2500:2504, "temperature"] = 35.0
    >>> model = vigil.Model("robust_zscore").fit(data.iloc[:2000])
    >>> scorer = StreamScorer(model)
    >>> first = [scorer.update(data.iloc[i : i + 7]) for i in range(0, 1400, 7)]
    >>> blob = scorer.state()  # JSON bytes: resume in another process, on another machine
    >>> scorer = StreamScorer.from_state(model, blob)
    >>> rest = [scorer.update(data.iloc[i : i + 7]) for i in range(1400, len(data), 7)]
    >>> streamed = pd.concat(first + rest + [scorer.flush()])
    >>> batch = model.detect(data)
    >>> same = streamed[["score", "event"]] == batch[["score", "event"]]
    >>> bool(same.all().all())  # scores bit for bit, events alike
    True
    >>> streamed.index[streamed["is_anomaly"]].tolist()
    [2500, 2501, 2502, 2503, 2504]
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import numpy as np
import pandas as pd

from vigil import io
from vigil.alarms import AlarmStream
from vigil.errors import ConfigError, DataError
from vigil.policy import fill_forward

__all__ = ["StreamScorer"]

_FORMAT, _VERSION = "vigil.stream", 1
_NAT = np.iinfo(np.int64).min  # pandas' NaT as int64 nanoseconds
_SOURCE = "<stream>"
#: The unit pandas parses times to (us in pandas 3, ns before): an empty output before any time
#: has arrived carries it, so concatenating outputs keeps the unit of the times.
_DEFAULT_UNIT = str(pd.DatetimeIndex(pd.to_datetime(["2024-01-01 00:00"])).unit)


class StreamScorer:
    """Score one series of a fitted model as it arrives; equal to ``model.detect`` on the whole.

    Args:
        model: a fitted :class:`vigil.Model`.

    ``update(rows)`` takes the next rows of the series in time order: a DataFrame with the
    model's channel columns (and optionally its time column), or a 2-D float array of the
    channels in ``model.channels_`` order. It returns a DataFrame of the rows whose result is now
    final, indexed by their position in the stream (0, 1, ...), with the columns ``position``,
    the time column (when the model has one; NaT for rows given without it), ``score``,
    ``threshold``, ``is_anomaly``, ``event`` (the event's number within this stream, 1, 2, ...;
    0 outside events), ``driver`` and ``score_<channel>`` (where the method attributes its
    score), and ``filled`` (a missing value of the row was filled). ``flush()`` ends the stream
    and returns the remaining rows. See the module docstring for the guarantees and the policy
    on missing values and time order.

    A row's score is final once ``lookahead_rows`` later rows have arrived; its flag once the
    alarm rules have decided it after that. ``pending`` counts the rows given and not yet
    returned.
    """

    def __init__(self, model: Any) -> None:
        model._require_fitted()
        self.model = model
        detector = model.detector
        self.channels: list[str] = list(model.channels_)
        self.time_column: str | None = model.time_column_
        #: Rows before and after a row that its score depends on (the detector's halo).
        self.context_rows = int(detector._context_rows())
        self.lookahead_rows = int(detector._lookahead_rows())
        self._attributes = bool(detector.attributes)
        # The dtype pandas gives a column of channel names (str in pandas 3, object before), so
        # an empty output has the driver column's dtype too.
        self._driver_dtype = pd.Series(self.channels, dtype=object).infer_objects().dtype
        self._threshold = _threshold_state(model)
        self._alarms = AlarmStream(model.alarms)
        d = len(self.channels)
        # Positions (rows of the stream): [0, out) returned; [out, scored) scored, awaiting the
        # alarm rules; [scored, ready) filled, awaiting their lookahead; [ready, seen) held (a
        # channel has had no value yet). _x holds the filled rows [x_start, ready): the context
        # of the next block and the pending rows.
        self._seen = self._ready = self._scored = self._out = self._x_start = 0
        self._x = np.empty((0, d))
        self._held = np.empty((0, d))
        self._last = np.full(d, np.nan)  # each channel's last value: what fills a gap
        self._times = np.empty(0, dtype=np.int64)  # rows [out, seen), ns (UTC if aware); NaT
        self._filled = np.empty(0, dtype=bool)  # rows [out, seen)
        self._scores = np.empty(0)  # rows [out, scored)
        self._thresholds = np.empty(0)
        self._parts = np.empty((0, d))
        self._last_time: int | None = None
        self._time_zone: str | None = None  # of the times seen ("" when naive)
        self._time_unit = _DEFAULT_UNIT  # until the first times say theirs
        self._series: str | None = None
        self._ended = False
        self._model_id: str | None = None  # the model's fingerprint, once a state needs it

    def __repr__(self) -> str:
        return (f"StreamScorer({self.model.method!r}, rows={self._seen}, returned={self._out}, "
                f"context_rows={self.context_rows}, lookahead_rows={self.lookahead_rows})")

    @property
    def pending(self) -> int:
        """Rows given to ``update`` whose result has not been returned yet."""
        return self._seen - self._out

    # -- the stream ------------------------------------------------------------------------------
    def update(self, rows: pd.DataFrame | np.ndarray) -> pd.DataFrame:
        """Take the next rows of the series (time order); return the rows now final."""
        return self._to_frame(self.update_arrays(rows))

    def flush(self) -> pd.DataFrame:
        """End the stream: score and decide the remaining rows as batch scoring treats the
        series end, and return them. Later calls to ``update`` are refused."""
        return self._to_frame(self.flush_arrays())

    def update_arrays(self, rows: pd.DataFrame | np.ndarray) -> dict[str, np.ndarray]:
        """``update`` without the DataFrame: the same columns, in the same order, as a dict of
        numpy arrays (building a small DataFrame costs more than scoring a row: for a worker
        that writes each row out itself)."""
        if self._ended:
            raise DataError("this stream has ended (flush was called); start a new StreamScorer "
                            "for more rows.")
        values, times, remember = self._parse(rows)
        self._take(values, times, remember)
        return self._advance(final=False)

    def flush_arrays(self) -> dict[str, np.ndarray]:
        """``flush`` without the DataFrame (see ``update_arrays``)."""
        if self._ended:
            return self._columns(0, np.empty(0, dtype=np.int64))
        if len(self._held):
            empty = int(np.flatnonzero(~np.isfinite(self._held).any(axis=0))[0])
            raise DataError(f"{_SOURCE}: channel {self.channels[empty]!r} has no values at all "
                            f"(every cell is missing); nothing to fill its gaps with.")
        out = self._advance(final=True)
        self._ended = True
        return out

    # -- input -----------------------------------------------------------------------------------
    def _where(self, i: int) -> str:
        return f"stream position {self._seen + i} (row {i + 1} of this update)"

    def _parse(self, rows: Any) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """Channel values (NaN where missing), times (int64 ns, NaT where none) and what to
        remember of them; every check is done before any state changes."""
        d = len(self.channels)
        times, remember = None, {}
        if isinstance(rows, pd.DataFrame):
            frame = rows  # read only; positions, not labels, name the rows
            absent = [c for c in self.channels if c not in frame.columns]
            if absent:
                raise DataError(f"{_SOURCE}: channel {absent[0]!r}, which the model was trained "
                                f"on, is missing (the model needs: {', '.join(self.channels)}).")
            values = np.empty((len(frame), d))
            for j, name in enumerate(self.channels):
                column = frame[name]
                if isinstance(column, pd.DataFrame):
                    raise DataError(f"{_SOURCE}: more than one column is named {name!r}.")
                numbers, bad, _ = io._as_numbers(column)
                io._raise_on_bad(column, bad, _SOURCE, self._where)
                values[:, j] = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
            if self.time_column is not None and self.time_column in frame.columns:
                times, remember["time"] = self._parse_times(frame[self.time_column])
            remember["series"] = self._check_series(frame)
        else:
            try:
                values = np.array(rows, dtype=np.float64)
            except (TypeError, ValueError):
                raise DataError(f"{_SOURCE}: expected a DataFrame or a 2-D float array of rows "
                                f"x channels; got a {type(rows).__name__} that is not numeric."
                                ) from None
            if values.ndim != 2 or values.shape[1] != d:
                raise DataError(f"{_SOURCE}: expected a 2-D array of rows x {d} channel(s) "
                                f"({', '.join(self.channels)}); got shape {values.shape} (one "
                                f"row: reshape(1, -1)).")
        infinite = np.isinf(values)
        if infinite.any():
            i, j = np.argwhere(infinite)[0]
            raise DataError(f"{_SOURCE}, {self._where(int(i))}, channel {self.channels[j]!r}: "
                            f"{values[i, j]} is not finite; a stream refuses infinite values.")
        if times is None:
            times = np.full(len(values), _NAT, dtype=np.int64)
        return values, times, remember

    def _parse_times(self, column: pd.Series) -> tuple[np.ndarray, tuple[str, str] | None]:
        parsed = io._parse_times(column, _SOURCE, self._where)  # NaT or garbage: DataError
        index = pd.DatetimeIndex(parsed)
        zone = "" if index.tz is None else str(index.tz)
        if self._time_zone is not None and bool(zone) != bool(self._time_zone):
            raise DataError(f"{_SOURCE}, {self._where(0)}, column {self.time_column!r}: times "
                            f"{'with' if zone else 'without'} a time zone, after times "
                            f"{'with' if self._time_zone else 'without'} one.")
        times = index.as_unit("ns").asi8.copy()
        previous = np.r_[self._last_time if self._last_time is not None else _NAT, times[:-1]]
        backwards = times < np.maximum.accumulate(previous)
        if backwards.any():
            i = int(np.argmax(backwards))
            raise DataError(f"{_SOURCE}, {self._where(i)}, column {self.time_column!r}: "
                            f"{parsed.iloc[i]} is earlier than the row before it; a stream takes "
                            f"rows in time order.")
        return times, (zone, str(index.unit)) if len(times) else None

    def _check_series(self, frame: pd.DataFrame) -> str | None:
        column = self.model.series_column_
        if column is None or column not in frame.columns or not len(frame):
            return None
        ids = frame[column].astype(str).to_numpy()
        first = self._series if self._series is not None else ids[0]
        other = ids != first
        if other.any():
            i = int(np.argmax(other))
            raise DataError(f"{_SOURCE}, {self._where(i)}, column {column!r}: series {ids[i]!r} "
                            f"in the stream of series {first!r}; a StreamScorer scores one "
                            f"series (route rows by {column!r}).")
        return first

    def _take(self, values: np.ndarray, times: np.ndarray, remember: dict[str, Any]) -> None:
        """Fill the new rows' gaps and move every row that can be filled to the ready rows."""
        if remember.get("time") and self._time_zone is None:
            self._time_zone, self._time_unit = remember["time"]
        if remember.get("series") is not None:
            self._series = remember["series"]
        missing = np.isnan(values)
        valid = times != _NAT
        if valid.any():
            self._last_time = int(times[valid][-1])
        self._seen += len(values)
        self._times = np.concatenate([self._times, times])
        self._filled = np.concatenate([self._filled, missing.any(axis=1)])
        raw = np.concatenate([self._held, values]) if len(self._held) else values
        filled = fill_forward(raw, self._last)
        if np.isnan(filled).all(axis=0).any():  # a channel with no value yet: hold the rows
            self._held = raw
            return
        if np.isnan(filled).any():  # leading gaps of the stream: the next value, as batch
            filled = fill_forward(filled[::-1], np.full(len(self.channels), np.nan))[::-1]
        self._last = filled[-1].copy()
        self._held = np.empty((0, len(self.channels)))
        self._x = np.concatenate([self._x, filled]) if len(self._x) else filled
        self._ready += len(filled)

    # -- scoring, threshold, alarms --------------------------------------------------------------
    def _advance(self, final: bool) -> dict[str, np.ndarray]:
        stop = self._ready if final else self._ready - self.lookahead_rows
        if stop > self._scored:
            start = max(self._x_start, self._scored - self.context_rows)
            block = self._x[start - self._x_start :]
            keep = slice(self._scored - start, stop - start)
            detector = self.model.detector
            if self._attributes:  # the same calls as Model._score_dataset
                scores, parts = detector.score_with_channels(block)
                scores, parts = scores[keep], parts[keep]
                self._parts = np.concatenate([self._parts, parts])
            else:
                scores = detector.score(block)[keep]
            thresholds = np.asarray(self._threshold.update(scores), dtype=float)
            self._scores = np.concatenate([self._scores, scores])
            self._thresholds = np.concatenate([self._thresholds, thresholds])
            self._scored = stop
            numbers = self._alarms.update(scores, thresholds)
            keep_from = max(self._x_start, stop - self.context_rows)
            self._x = self._x[keep_from - self._x_start :]
            self._x_start = keep_from
        else:
            numbers = np.empty(0, dtype=np.int64)
        if final:
            numbers = np.concatenate([numbers, self._alarms.flush()]).astype(np.int64)
        return self._columns(len(numbers), numbers)

    def _columns(self, k: int, numbers: np.ndarray) -> dict[str, np.ndarray]:
        """The first ``k`` rows awaiting output, with their event numbers; drop them."""
        positions = np.arange(self._out, self._out + k, dtype=np.int64)
        columns: dict[str, Any] = {"position": positions}
        if self.time_column is not None:
            columns[self.time_column] = self._time_values(self._times[:k])
        columns["score"] = self._scores[:k]
        columns["threshold"] = self._thresholds[:k]
        columns["is_anomaly"] = numbers > 0
        columns["event"] = numbers
        if self._attributes:
            parts = self._parts[:k]
            names = np.asarray(self.channels, dtype=object)
            columns["driver"] = names[parts.argmax(axis=1)] if k else names[:0]
            for j, name in enumerate(self.channels):
                columns[f"score_{name}"] = parts[:, j]
            self._parts = self._parts[k:]
        columns["filled"] = self._filled[:k]
        self._out += k
        self._times, self._filled = self._times[k:], self._filled[k:]
        self._scores, self._thresholds = self._scores[k:], self._thresholds[k:]
        return columns

    def _to_frame(self, columns: dict[str, np.ndarray]) -> pd.DataFrame:
        index = pd.Index(columns["position"])
        if "driver" in columns:
            columns = dict(columns, driver=pd.array(columns["driver"], dtype=self._driver_dtype))
        return pd.DataFrame(columns, index=index, copy=False)

    def _time_values(self, times: np.ndarray) -> np.ndarray | pd.DatetimeIndex:
        """datetime64 in the unit of the input times; a DatetimeIndex when they have a zone."""
        if not self._time_zone:
            return times.view("M8[ns]").astype(f"M8[{self._time_unit}]")
        index = pd.DatetimeIndex(times.view("M8[ns]")).tz_localize("UTC")
        return index.tz_convert(self._time_zone).as_unit(self._time_unit)

    # -- state -----------------------------------------------------------------------------------
    def _fingerprint(self) -> str:
        if self._model_id is None:  # the model is fitted once; a scorer assumes it stays so
            self._model_id = _fingerprint(self.model)
        return self._model_id

    def state(self) -> bytes:
        """The whole stream state as UTF-8 JSON bytes (no pickle): what ``from_state`` resumes."""
        d = {
            "format": _FORMAT, "version": _VERSION, "model": self._fingerprint(),
            "channels": self.channels,
            "positions": {"seen": self._seen, "ready": self._ready, "scored": self._scored,
                          "out": self._out, "x_start": self._x_start},
            "last": _floats(self._last), "x": _floats(self._x), "held": _floats(self._held),
            "times": [None if t == _NAT else int(t) for t in self._times.tolist()],
            "filled": self._filled.tolist(), "scores": _floats(self._scores),
            "thresholds": _floats(self._thresholds),
            "parts": _floats(self._parts) if self._attributes else None,
            "last_time": self._last_time, "time_zone": self._time_zone,
            "time_unit": self._time_unit, "series": self._series, "ended": self._ended,
            "threshold": self._threshold.to_dict(), "alarms": self._alarms.to_dict(),
        }
        return json.dumps(d, separators=(",", ":"), allow_nan=False).encode()

    @classmethod
    def from_state(cls, model: Any, data: bytes) -> StreamScorer:
        """A scorer that continues from ``state()`` bytes, for the same model (else a one-line
        ConfigError); its outputs go on exactly as the original's would have."""
        try:
            d = json.loads(bytes(data).decode("utf-8"))
        except (TypeError, ValueError, UnicodeDecodeError):
            raise ConfigError("a stream state must be the JSON bytes StreamScorer.state() "
                              "writes; these are not JSON.") from None
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise ConfigError("not a StreamScorer state (no 'format': 'vigil.stream').")
        if d.get("version") != _VERSION:
            raise ConfigError(f"stream state version {d.get('version')!r}; this vigil reads "
                              f"version {_VERSION}.")
        scorer = cls(model)
        if d.get("model") != scorer._fingerprint() or d.get("channels") != scorer.channels:
            raise ConfigError("this stream state was written for another model (method, "
                              "parameters, fitted state, threshold or alarm rules differ).")
        try:
            scorer._restore(d)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            if isinstance(error, ConfigError):
                raise
            raise ConfigError(f"a malformed stream state: {error}".rstrip()) from None
        return scorer

    def _restore(self, d: dict[str, Any]) -> None:
        pos = d["positions"]
        seen, ready, scored, out, x_start = (_count(pos[k]) for k in
                                             ("seen", "ready", "scored", "out", "x_start"))
        # The next block must start at the stream's start or context_rows before its first row.
        if not (out <= scored <= ready <= seen and x_start <= scored
                and (x_start == 0 or x_start <= scored - self.context_rows)):
            raise ConfigError(f"a stream state's positions are inconsistent: {pos}.")
        width = len(self.channels)
        self._x = _array(d["x"], (ready - x_start, width), "x")
        self._held = _array(d["held"], (seen - ready, width), "held")
        self._last = _array(d["last"], (width,), "last")
        if not np.isfinite(self._x).all() or (ready and not np.isfinite(self._last).all()):
            raise ConfigError("a stream state's filled rows must be finite.")
        self._times = np.array([_NAT if t is None else _int(t) for t in d["times"]],
                               dtype=np.int64)
        self._filled = np.array([_bool(f) for f in d["filled"]], dtype=bool)
        if len(self._times) != seen - out or len(self._filled) != seen - out:
            raise ConfigError("a stream state's times and filled flags must cover the rows not "
                              "returned yet.")
        self._scores = _array(d["scores"], (scored - out,), "scores")
        self._thresholds = _array(d["thresholds"], (scored - out,), "thresholds")
        if self._attributes:
            self._parts = _array(d["parts"], (scored - out, width), "parts")
        self._seen, self._ready, self._scored, self._out, self._x_start = (
            seen, ready, scored, out, x_start)
        self._last_time = None if d["last_time"] is None else _int(d["last_time"])
        zone, unit = d["time_zone"], d["time_unit"]
        if zone is not None and not isinstance(zone, str) or not isinstance(unit, str):
            raise ConfigError("a stream state's time zone and unit must be text.")
        if zone:
            pd.DatetimeIndex([0]).tz_localize("UTC").tz_convert(zone)  # a zone pandas knows
        pd.DatetimeIndex([0]).as_unit(unit)
        self._time_zone, self._time_unit = zone, unit
        if d["series"] is not None and not isinstance(d["series"], str):
            raise ConfigError("a stream state's series must be text.")
        self._series, self._ended = d["series"], _bool(d["ended"])
        self._threshold = _threshold_state(self.model, d["threshold"])
        self._alarms = AlarmStream.from_dict(self.model.alarms, d["alarms"])
        if self._alarms.seen != scored or self._alarms.decided != out:
            raise ConfigError("a stream state's alarm state does not match its positions.")


# -- thresholds ---------------------------------------------------------------------------------
class _FixedThreshold:
    """One cut-off for every row: ``model.threshold_``."""

    def __init__(self, value: float) -> None:
        self.value = float(value)

    def update(self, scores: np.ndarray) -> np.ndarray:
        return np.full(len(scores), self.value)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "fixed", "value": self.value}


class _SteppedThreshold:
    """A threshold with its own causal state (``threshold.stepper()``, e.g. dspot's): one call
    per batch of final scores gives their thresholds, in any batch sizes, as batch does."""

    def __init__(self, stepper: Any) -> None:
        self.stepper = stepper

    def update(self, scores: np.ndarray) -> np.ndarray:
        return self.stepper.update(scores)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "stepped", "state": self.stepper.to_dict()}


def _threshold_state(model: Any, saved: dict[str, Any] | None = None) -> Any:
    """The stream's threshold: per row through the threshold's stepper for an adaptive
    threshold (one with ``values``, which ``Model.detect`` applies per row), else the one
    fitted number."""
    stepped = callable(getattr(model.threshold, "values", None)) and callable(
        getattr(model.threshold, "stepper", None))
    kind = "stepped" if stepped else "fixed"
    if saved is not None and (not isinstance(saved, dict) or saved.get("kind") != kind):
        raise ConfigError(f"a stream state's threshold must be of kind {kind!r} for this model. "
                          f"Got {str(saved)[:80]}.")
    if stepped:
        return _SteppedThreshold(model.threshold.stepper(None if saved is None
                                                         else saved["state"]))
    return _FixedThreshold(model.threshold_)


# -- helpers ------------------------------------------------------------------------------------
def _floats(values: np.ndarray) -> list[Any]:
    """A float array as JSON lists; floats round-trip exactly, NaN and infinities as text."""
    def one(v: float) -> Any:
        return v if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else
                                                                        "-inf"))
    if values.ndim == 1:
        return [one(v) for v in values.tolist()]
    return [[one(v) for v in row] for row in values.tolist()]


def _array(values: Any, shape: tuple[int, ...], key: str) -> np.ndarray:
    def one(v: Any) -> float:
        if isinstance(v, str) and v in ("nan", "inf", "-inf"):
            return float(v)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        raise ConfigError(f"a stream state's {key!r} holds {str(v)[:40]}, not a number.")

    if not isinstance(values, list) or (len(shape) == 2 and not all(
            isinstance(row, list) and len(row) == shape[1] for row in values)):
        raise ConfigError(f"a stream state's {key!r} must be a list of shape {shape}.")
    flat = [one(v) for row in values for v in row] if len(shape) == 2 else [
        one(v) for v in values]
    if len(flat) != math.prod(shape):
        raise ConfigError(f"a stream state's {key!r} must be a list of shape {shape}.")
    return np.array(flat, dtype=np.float64).reshape(shape)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"a stream state holds {str(value)[:40]} where an integer belongs.")
    return value


def _count(value: Any) -> int:
    if _int(value) < 0:
        raise ConfigError(f"a stream state holds {value} where a row count belongs.")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"a stream state holds {str(value)[:40]} where true or false belongs.")
    return value


def _fingerprint(model: Any) -> str:
    """SHA-256 of what decides a row: method, parameters, channels, the detector's fitted
    arrays, the threshold and the alarm rules."""
    digest = hashlib.sha256()
    head = {"method": model.method, "params": model.params, "channels": list(model.channels_),
            "threshold": model.threshold.to_dict(), "alarms": model.alarms.to_dict()}
    digest.update(json.dumps(head, sort_keys=True, default=repr).encode())
    for key, value in sorted(model.detector.get_state().items()):
        array = np.ascontiguousarray(value)
        digest.update(f"{key}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes() if array.dtype != object else repr(array.tolist()).encode())
    return digest.hexdigest()
