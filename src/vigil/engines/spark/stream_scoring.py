"""Scoring a **streaming** Spark DataFrame (``spark.readStream...``): what
:func:`vigil.engines.spark.score` does when ``df.isStreaming``.

Each series keeps its :class:`vigil.scoring.StreamScorer` across micro-batches in Spark's state
store (``transformWithStateInPandas``, RocksDB): the last ``context_rows`` rows its method looks
back on, the rows awaiting their lookahead rows or the alarm rules, the open event. A row comes
out once its result is final, so the rows that come out, with their scores, flags and events,
are those batch scoring gives the same rows (a test compares them row by row). The state is
JSON and Arrow IPC bytes, never pickle.

Against batch scoring:

- Rows of a series must arrive in time order across micro-batches (within one, they are sorted
  by time, ties in arrival order). A row older than its series' last scored row, or with an
  infinite value, cannot be scored in its place: it comes out at once with ``error`` saying
  why, and score, threshold and flags null, so nothing is lost and the stream goes on.
- ``event`` numbers the events within each series (1, 2, ...): a stream cannot number them
  through all series in the order each first appears, as batch does.
- The last rows of a series wait for their lookahead rows (a windowed method) or for the alarm
  rules to decide them, as in the Kafka worker.
"""

from __future__ import annotations

import hashlib
import io as _io
from typing import Any, Iterator

import numpy as np
import pandas as pd

from vigil.errors import DataError

__all__ = ["score_stream", "ROCKSDB"]

ROCKSDB = "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
_ID = "vigil_arrival_"  # a name with a leading "__" reaches the processor renamed
_NAT = np.iinfo(np.int64).min
_RESULTS = ("score", "threshold", "is_anomaly", "event", "driver", "filled", "error")


def score_stream(df: Any, model: Any) -> Any:
    """``df`` (a streaming DataFrame) plus ``score``, ``threshold``, ``is_anomaly``, ``event``,
    ``driver``, ``filled`` and ``error`` for each row, as each becomes final (see the module
    docstring). Sets the session's state store to RocksDB, which the stateful API needs."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    spark = df.sparkSession
    spark.conf.set("spark.sql.streaming.stateStore.providerClass", ROCKSDB)
    buffer = _io.BytesIO()
    model.save(buffer)
    payload = buffer.getvalue()
    digest = hashlib.sha256(payload).hexdigest()
    names = [f.name for f in df.schema.fields]
    fields = list(df.schema.fields) + [
        T.StructField("score", T.DoubleType()), T.StructField("threshold", T.DoubleType()),
        T.StructField("is_anomaly", T.BooleanType()), T.StructField("event", T.LongType()),
        T.StructField("driver", T.StringType()), T.StructField("filled", T.BooleanType()),
        T.StructField("error", T.StringType())]
    series = model.series_column_
    # Arrival order within a micro-batch, for ties in time (monotonically_increasing_id is
    # not allowed on a stream): the input partition, then the row's place in it.
    tagged = df.mapInPandas(_tag, T.StructType([*df.schema.fields,
                                                T.StructField(_ID, T.LongType(), False)]))
    grouped = tagged.groupBy(series) if series else \
        tagged.withColumn("__vigil_all", F.lit(0)).groupBy("__vigil_all")
    processor = _processor(payload, digest, names, model.time_column_, list(model.channels_),
                           series)
    return grouped.transformWithStateInPandas(processor, T.StructType(fields), "Append", "None")


def _tag(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    from pyspark import TaskContext

    base = TaskContext.get().partitionId() << 40
    for frame in frames:
        yield frame.assign(**{_ID: np.arange(base, base + len(frame), dtype=np.int64)})
        base += len(frame)


def _processor(payload: bytes, digest: str, names: list[str], time_column: str | None,
               channels: list[str], series_column: str | None) -> Any:
    from pyspark.sql.streaming import StatefulProcessor
    from pyspark.sql.types import BinaryType, LongType, StructField, StructType

    class SeriesProcessor(StatefulProcessor):
        """One series' StreamScorer state and its rows awaiting a final result."""

        def init(self, handle: Any) -> None:
            from vigil.engines.spark.scoring import cached_model

            model = cached_model(digest, lambda: payload)
            self.model = model
            self.state = handle.getValueState("scorer", StructType([
                StructField("scorer", BinaryType(), False),
                StructField("pending", BinaryType(), False),
                StructField("last_time", LongType(), True)]))

        def handleInputRows(self, key: Any, rows: Iterator[pd.DataFrame],
                            timerValues: Any) -> Iterator[pd.DataFrame]:
            from vigil.scoring import StreamScorer

            frame = pd.concat(list(rows), ignore_index=True)
            order = [time_column, _ID] if time_column else [_ID]
            frame = frame.sort_values(order, kind="stable", na_position="last")
            frame = frame.drop(columns=[c for c in frame.columns if c not in names])
            frame = frame.reset_index(drop=True)
            if self.state.exists():
                blob, pending, last_time = self.state.get()
                scorer = StreamScorer.from_state(self._model(key), blob)
                pending = _from_arrow(pending)
            else:
                scorer, pending, last_time = StreamScorer(self._model(key)), None, None
            times = (pd.to_datetime(frame[time_column]).to_numpy("M8[ns]").view("i8")
                     if time_column else None)
            bad = _unscorable(frame, channels, times, last_time)
            refused = frame[bad.notna()].assign(error=bad[bad.notna()])
            taken = frame[bad.isna()]
            if times is not None:
                kept = times[bad.isna().to_numpy() & (times != _NAT)]
                if len(kept):
                    last_time = int(kept.max())
            out = scorer.update(taken) if len(taken) else None
            pending = taken if pending is None else pd.concat([pending, taken],
                                                               ignore_index=True)
            k = 0 if out is None else len(out)
            done, pending = pending.iloc[:k].reset_index(drop=True), pending.iloc[k:]
            self.state.update((scorer.state(), _to_arrow(pending), last_time))
            if k:
                done = done.assign(
                    score=out["score"].to_numpy(), threshold=out["threshold"].to_numpy(),
                    is_anomaly=out["is_anomaly"].to_numpy(),
                    event=out["event"].to_numpy(dtype=np.int64),
                    driver=(out["driver"].astype(object).to_numpy() if "driver" in out
                            else None),
                    filled=out["filled"].to_numpy(), error=None)
            parts = [d for d in (done if k else None, _refused(refused))
                     if d is not None and len(d)]
            result = pd.concat(parts, ignore_index=True) if parts else _empty(frame)
            result = result[names + list(_RESULTS)]
            # Arrow-backed text (pandas 3, and the pending rows read back from Arrow) can be
            # chunked, which Spark's serializer refuses: hand it over as objects.
            yield result.astype({c: object for c, t in result.dtypes.items()
                                 if isinstance(t, (pd.StringDtype, pd.ArrowDtype))})

        def _model(self, key: Any) -> Any:
            from vigil.engines.stream.state import _model_for

            return _model_for(self.model, str(key[0])) if series_column else self.model

        def close(self) -> None:
            pass

    return SeriesProcessor()


def _unscorable(frame: pd.DataFrame, channels: list[str], times: np.ndarray | None,
                last_time: int | None) -> pd.Series:
    """Why each row cannot be scored in its place (None where it can); ``times`` are the
    rows' times in ns (NaT where none), None without a time column."""
    why = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    for name in channels:
        values = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)
        infinite = np.isinf(values)
        why[infinite & why.isna().to_numpy()] = f"channel {name!r} is infinite"
    if times is not None and last_time is not None:
        late = (times != _NAT) & (times < last_time) & why.isna().to_numpy()
        last = pd.Timestamp(last_time)
        why[late] = f"time is earlier than the series' last scored row ({last})"
    return why


def _refused(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.assign(score=np.nan, threshold=np.nan, is_anomaly=None, event=None,
                       driver=None, filled=None)


def _empty(frame: pd.DataFrame) -> pd.DataFrame:
    return _refused(frame.iloc[:0]).assign(error=None)


def _to_arrow(frame: pd.DataFrame) -> bytes:
    import pyarrow as pa

    table = pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_arrow(data: bytes) -> pd.DataFrame:
    import pyarrow as pa

    try:
        return pa.ipc.open_stream(data).read_all().to_pandas()
    except pa.ArrowInvalid as error:
        raise DataError(f"a malformed streaming state: {error}") from None
