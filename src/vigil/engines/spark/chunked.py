"""Scoring a DataFrame in chunks, so that one long series is scored by many tasks at once.

A *chunk* is one partition of the DataFrame; a *piece* is one series' rows in a chunk.

1. Each row gets an id in input order. An edge pass (narrow: id, series, time, channels)
   collects per piece its row count, its first and last (time, id) and its smallest id,
   whether its rows are in time order, its first and last rows (as many as the detector's
   lookahead and context rows), and the last and first valid value of each channel.
2. The driver orders each series' pieces by time. Where they do not follow one another (a
   piece out of time order, or two pieces whose times overlap) the rows are range-partitioned
   and sorted by (series, time, id) once, persisted, and step 1 runs again: sensor data is
   usually written in time order, and then nothing is shuffled. Each piece gets its position
   in its series, its halo (the neighbouring pieces' edge rows) and the values its gaps are
   filled from, as :func:`vigil.policy.fill_gaps` fills the whole series.
3. A scoring pass scores each piece with its halo around it (:func:`vigil.model.score_series`
   gives the whole series' scores) and sends each piece's scores, as bytes, to a pass per
   series that runs the threshold and the alarm rules through the series in order: its
   events, and for an adaptive threshold the threshold's state at each piece's start. Events
   are numbered through the series in the order each first appears in the input, as locally.
4. The last pass scores each piece again and gives each row its threshold, flag and event.
   Scoring twice costs less than keeping the scores: a persisted DataFrame is slow to read back
   into Python, and sending them to the driver would make its memory grow with the rows.

Driver memory is bounded by the number of pieces (times the halo), never by the rows. The pass
per series holds that series' scores (8 bytes a row) and one piece's temporaries while the
threshold and the alarm rules run through them (:func:`vigil.alarms.events_of_pieces`); the
other passes hold one partition. Sorted or shuffled input is persisted (``MEMORY_AND_DISK``)
under the returned frame: ``spark.catalog.clearCache()`` frees it.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from vigil.alarms import events_of_pieces
from vigil.engines.spark.errors import executor_errors, no_time, no_values
from vigil.engines.spark.summary import to_pandas
from vigil.errors import DataError
from vigil.policy import fill_forward

__all__ = ["score_chunked", "can_chunk"]

_ID = "__vigil_row"
_BATCH = 65_536  # rows per Arrow batch handed back to Spark
_TIME_TYPES = ("timestamp", "timestamp_ntz", "date")


def can_chunk(df: Any, model: Any) -> bool:
    """Whether the frame's types let Spark order and read it without vigil's own parsers: a
    timestamp or date time column (or none) and numeric channels. Other frames (times as text,
    channels as text) are scored a series at a time through the local reader, for its errors."""
    from pyspark.sql import types as T

    types = {f.name: f.dataType for f in df.schema.fields}
    time = model.time_column_
    if time is not None and types[time].typeName() not in _TIME_TYPES:
        return False
    return all(isinstance(types[c], T.NumericType) and not isinstance(types[c], T.DecimalType)
               for c in model.channels_)


def score_chunked(df: Any, model: Any, chunks: int | None = None,
                  failures: dict[Any, dict[str, Any]] | None = None) -> Any:
    """``df`` plus vigil's result columns (see :func:`vigil.engines.spark.score`). Runs steps
    1 to 3 now (step 2's sort only for rows out of time order, into ``chunks`` partitions:
    default, the input's, at least twice the default parallelism; a number given here always
    sorts); the returned frame is the lazy step 4.

    A series that cannot be scored (a row without a time, a channel without any value, no
    model for it in a bundle) stops the job with its reason; given a ``failures`` dict, it is
    left out of the result instead and put there (series: {"rows", "reason"})."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    from vigil.engines.spark.scoring import RESULT_COLUMNS, ship

    spark = df.sparkSession
    series, time = model.series_column_, model.time_column_
    channels = list(model.channels_)
    shipped, digest = ship(spark, model)
    members = list(model.models_.values()) if hasattr(model, "models_") else [model]
    if getattr(model, "fallback_", None) is not None:
        members.append(model.fallback_)
    halo = (max(m.detector._context_rows() for m in members),
            max(m.detector._lookahead_rows() for m in members))
    series_type = df.schema[series].dataType if series else T.LongType()
    roles = (series, time, channels)
    narrow = [_ID, *([series] if series else []), *([time] if time else []), *channels]

    source = df.withColumn(_ID, F.monotonically_increasing_id())
    if "Exchange" in source._jdf.queryExecution().executedPlan().toString():
        # the rows of a shuffle may come in another order when read again: keep them once
        source = source.persist(StorageLevel.MEMORY_AND_DISK)
    pieces = _edges(source.select(*narrow), roles, halo, series_type)
    if chunks is not None or not _in_order(pieces.loc[pieces["error"].isna()]):
        keys = [c for c in (series, time) if c] + [_ID]
        parts = chunks or max(df.rdd.getNumPartitions(), 2 * spark.sparkContext.defaultParallelism)
        source = (source.repartitionByRange(int(parts), *keys).sortWithinPartitions(*keys)
                  .persist(StorageLevel.MEMORY_AND_DISK))
        pieces = _edges(source.select(*narrow), roles, halo, series_type)
    planned = _plan(pieces, channels, series, halo, failures)
    for name in dict.fromkeys(info["series"] for info in planned.values() if "skip" not in info):
        try:
            _member(model, name, series)
        except DataError as error:
            if failures is None:
                raise
            unfitted = getattr(model, "failed_", {}).get(str(name))
            _failed(failures, planned, name, f"not fitted: {unfitted}" if unfitted else str(error))
    if all("skip" in info for info in planned.values()):
        return spark.createDataFrame([], _out_schema(df))
    plan = spark.sparkContext.broadcast(planned)

    def packed(batches: Any) -> Any:
        for key, info, _, scores in _scored(batches, roles, plan.value, shipped, digest):
            yield pd.DataFrame({"series": [info["series"]], "chunk": [key[0]], "piece": [key[1]],
                                "rank": [info["rank"]], "scores": [scores.tobytes()]})

    def decide(rows: pd.DataFrame) -> pd.DataFrame:
        rows = rows.sort_values("rank")
        member = _member(_model(shipped, digest), rows["series"].iloc[0], series)
        stepper = member.threshold.stepper() if _adaptive(member) else None
        states: list[str | None] = []

        def pieces() -> Any:  # one piece's scores and threshold at a time
            for packed_scores in rows["scores"]:
                piece = np.frombuffer(packed_scores, dtype=np.float64)
                states.append(None if stepper is None else json.dumps(stepper.to_dict()))
                yield piece, (member.threshold_ if stepper is None else stepper.update(piece))

        spans = events_of_pieces(member.alarms, pieces())
        return pd.DataFrame({"chunk": rows["chunk"].to_numpy(), "piece": rows["piece"].to_numpy(),
                             "state": states, "events": len(spans),
                             "starts": spans.starts.tobytes(), "stops": spans.stops.tobytes()})

    packed_schema = T.StructType([
        T.StructField("series", series_type), T.StructField("chunk", T.IntegerType()),
        T.StructField("piece", T.IntegerType()), T.StructField("rank", T.IntegerType()),
        T.StructField("scores", T.BinaryType())])
    decided_schema = T.StructType([
        T.StructField("chunk", T.IntegerType()), T.StructField("piece", T.IntegerType()),
        T.StructField("state", T.StringType()), T.StructField("events", T.LongType()),
        T.StructField("starts", T.BinaryType()), T.StructField("stops", T.BinaryType())])
    with executor_errors():
        decided = to_pandas(source.select(*narrow).mapInArrow(_as_arrow(packed, packed_schema),
                                                               packed_schema)
                            .groupBy("series").applyInPandas(decide, decided_schema))
    verdicts = spark.sparkContext.broadcast(_numbered(decided, pieces, plan.value))
    names = [f.name for f in df.schema.fields]

    def finish(batches: Any) -> Any:
        import pyarrow as pa

        out: dict[str, Any] = {}
        for key, info, rows, scores in _scored(batches, roles, plan.value, shipped, digest,
                                               out):
            if "score" not in out:
                n = out["table"].num_rows
                out.update(score=np.empty(n), threshold=np.empty(n),
                           event=np.zeros(n, np.int64), driver=np.full(n, -1, np.int32),
                           filled=np.zeros(n, bool))
            verdict = verdicts.value[key]
            member = _member(_model(shipped, digest), info["series"], series)
            out["score"][rows] = scores
            out["threshold"][rows] = (
                member.threshold.values(scores, state=json.loads(verdict["state"]))
                if _adaptive(member) else member.threshold_)
            numbers = np.zeros(len(scores), dtype=np.int64)
            for start, stop, number in verdict["events"]:
                numbers[max(start - info["pos"], 0):max(stop - info["pos"], 0)] = number
            out["event"][rows] = numbers
            if info["driver"] is not None:
                out["driver"][rows] = info["driver"]
            out["filled"][rows] = info["filled"]
        if "score" not in out:
            return
        if out["dropped"]:  # rows of series that failed (keep going)
            kept = np.ones(out["table"].num_rows, bool)
            kept[np.concatenate(out["dropped"])] = False
            out["table"] = out["table"].filter(pa.array(kept))
            for column in ("score", "threshold", "event", "driver", "filled"):
                out[column] = out[column][kept]
        driver = pa.DictionaryArray.from_arrays(
            pa.array(out["driver"], mask=out["driver"] < 0), pa.array(channels, pa.string()))
        table = out["table"].select(names)
        for column, values in [("score", pa.array(out["score"])),
                               ("threshold", pa.array(out["threshold"])),
                               ("is_anomaly", pa.array(out["event"] > 0)),
                               ("event", pa.array(out["event"])),
                               ("driver", driver.cast(pa.string())),
                               ("filled", pa.array(out["filled"]))]:
            table = table.append_column(column, values)
        yield from table.to_batches(max_chunksize=_BATCH)

    return source.mapInArrow(finish, _out_schema(df)).select(*names, *RESULT_COLUMNS)


def _out_schema(df: Any) -> Any:
    from pyspark.sql import types as T

    return T.StructType(list(df.schema.fields) + [
        T.StructField("score", T.DoubleType()), T.StructField("threshold", T.DoubleType()),
        T.StructField("is_anomaly", T.BooleanType()), T.StructField("event", T.LongType()),
        T.StructField("driver", T.StringType()), T.StructField("filled", T.BooleanType())])


# -- the passes over the rows (on the executors) ------------------------------------------
def _edges(narrow: Any, roles: tuple, halo: tuple[int, int], series_type: Any) -> pd.DataFrame:
    """Step 1: a row per piece (see the module docstring), sorted by chunk and piece."""
    from pyspark.sql import types as T

    series, time, channels = roles
    before, after = halo
    d = len(channels)

    def edges(batches: Any) -> Any:
        import pyarrow as pa
        import pyarrow.compute as pc
        from pyspark import TaskContext

        table = _table(batches)
        if table is None:
            return
        chunk = TaskContext.get().partitionId()
        ids = table[_ID].to_numpy()
        times = ids
        untimed = np.zeros(len(ids), bool)
        if time is not None:
            column = table[time]
            if column.null_count:
                untimed = column.is_null().to_numpy(zero_copy_only=False)
            if pa.types.is_date(column.type):
                column = pc.cast(column, pa.date32()).cast(pa.int32())
            times = pc.fill_null(pc.cast(column, pa.int64()), 0).to_numpy()
        values = _floats(table, channels)
        for k, (name, rows) in enumerate(_pieces(table, series)):
            X = values[rows]
            filled = _fill(X, np.full(d, np.nan))  # gaps after its first valid value
            valid = ~np.isnan(X)
            first = np.where(valid.any(axis=0), X[valid.argmax(axis=0), np.arange(d)], np.nan)
            t = times[rows]
            error = None
            if untimed[rows].any():
                error = no_time(time)
            yield pd.DataFrame({
                "chunk": [chunk], "piece": [k], "series": [name], "rows": [len(X)],
                "in_order": [bool((t[1:] >= t[:-1]).all())],
                "first_time": [int(t[0])], "first_id": [int(ids[rows][0])],
                "last_time": [int(t[-1])], "last_id": [int(ids[rows][-1])],
                "min_id": [int(ids[rows].min())],
                "head": [filled[:after].tobytes()],
                "tail": [filled[max(len(X) - before, 0):].tobytes() if before else b""],
                "last": [filled[-1].tobytes()], "first": [first.tobytes()],
                "error": [error]})

    schema = T.StructType([
        T.StructField("chunk", T.IntegerType()), T.StructField("piece", T.IntegerType()),
        T.StructField("series", series_type), T.StructField("rows", T.LongType()),
        T.StructField("in_order", T.BooleanType()),
        *[T.StructField(n, T.LongType()) for n in ("first_time", "first_id", "last_time",
                                                    "last_id", "min_id")],
        *[T.StructField(n, T.BinaryType()) for n in ("head", "tail", "last", "first")],
        T.StructField("error", T.StringType())])
    with executor_errors():
        pieces = to_pandas(narrow.mapInArrow(_as_arrow(edges, schema), schema))
    if not len(pieces):
        raise DataError("the DataFrame has no rows to score.")
    return pieces


def _scored(batches: Any, roles: tuple, plan: dict, shipped: Any, digest: str,
            keep: dict | None = None) -> Any:
    """Each piece of a partition (Arrow batches) scored with its halo: ``(key, info, rows,
    scores)``; with ``keep``, ``info`` has the piece's ``driver`` (a channel index per row, or
    None) and ``filled``, and ``keep["table"]`` is the partition."""
    from pyspark import TaskContext

    from vigil.model import score_series

    series, _, channels = roles
    table = _table(batches)
    if keep is not None:
        keep.update(table=table, dropped=[])
    if table is None:
        return
    chunk = TaskContext.get().partitionId()
    values = _floats(table, channels)
    loaded = _model(shipped, digest)
    for k, (name, rows) in enumerate(_pieces(table, series)):
        info = dict(plan[(chunk, k)])
        if info["rows"] != len(rows):  # the rows changed between passes: never score them
            raise DataError("the DataFrame gave other rows when read again (is it computed "
                            "from a random sample, or a shuffle?): persist it before scoring.")
        if "skip" in info:
            if keep is not None:
                keep["dropped"].append(rows)
            continue
        det = _member(loaded, name, series).detector
        X = values[rows]
        missing = np.isnan(X)
        X = _fill(X, info["carry"], info["first"])
        whole = np.vstack([info["before"], X, info["after"]])
        m, b = len(X), len(info["before"])
        scores = np.empty(m)
        parts = np.empty(X.shape) if det.attributes else None
        score_series(det, whole, b, b + m, scores, parts)
        if keep is not None:
            info["driver"] = parts.argmax(axis=1) if parts is not None else None
            info["filled"] = missing.any(axis=1)
        yield (chunk, k), info, rows, scores


# -- the driver's part --------------------------------------------------------------------
def _in_order(pieces: pd.DataFrame) -> bool:
    """Whether each piece is in time order and a series' pieces follow one another."""
    if not pieces["in_order"].all():
        return False
    ordered = pieces.sort_values(["first_time", "first_id"], kind="stable")
    for _, group in ordered.groupby("series", sort=False, dropna=False):
        ends = list(zip(group["last_time"], group["last_id"]))[:-1]
        starts = list(zip(group["first_time"], group["first_id"]))[1:]
        if any(end >= start for end, start in zip(ends, starts)):
            return False
    return True


def _plan(pieces: pd.DataFrame, channels: list[str], series: str | None,
          halo: tuple[int, int], failures: dict[Any, dict[str, Any]] | None = None
          ) -> dict[tuple[int, int], dict[str, Any]]:
    """Per piece (chunk, index): its series, rank and position in it, halo rows and the
    values its gaps are filled from. A series that cannot be scored raises its DataError, or
    with ``failures`` is put there and its pieces marked ``skip``."""
    d = len(channels)
    before, after = halo
    plan: dict[tuple[int, int], dict[str, Any]] = {}
    ordered = pieces.sort_values(["first_time", "first_id"], kind="stable")
    for name, group in ordered.groupby("series", sort=False, dropna=False):
        for chunk, k, count in zip(group["chunk"], group["piece"], group["rows"]):
            plan[(int(chunk), int(k))] = {"series": name, "rows": int(count)}
        errors = group["error"].dropna()
        if len(errors):
            _failed(failures, plan, name, errors.iloc[0], series)
            continue
        rows = group["rows"].to_numpy()
        heads = [np.frombuffer(b).reshape(-1, d) for b in group["head"]]
        tails = [np.frombuffer(b).reshape(-1, d) for b in group["tail"]]
        lasts = [np.frombuffer(b) for b in group["last"]]
        firsts = np.vstack([np.frombuffer(b) for b in group["first"]])
        valid = np.isfinite(firsts)
        if not valid.any(axis=0).all():
            empty = channels[int(np.argmin(valid.any(axis=0)))]
            _failed(failures, plan, name, no_values(empty), series)
            continue
        first = firsts[valid.argmax(axis=0), np.arange(d)]
        carries = [np.full(d, np.nan)]
        for last in lasts[:-1]:
            carries.append(np.where(np.isfinite(last), last, carries[-1]))
        heads = [_fill(h, c, first) for h, c in zip(heads, carries)]
        tails = [_fill(t, c, first) for t, c in zip(tails, carries)]
        starts = np.r_[0, np.cumsum(rows)[:-1]]
        for i, (chunk, k) in enumerate(zip(group["chunk"], group["piece"])):
            plan[(int(chunk), int(k))] = {
                "series": name, "rank": i, "pos": int(starts[i]), "rows": int(rows[i]),
                "carry": carries[i], "first": first,
                "before": _gather(tails[:i][::-1], before, d, at_end=True),
                "after": _gather(heads[i + 1:], after, d, at_end=False)}
    return plan


def _failed(failures: dict | None, plan: dict, name: Any, reason: str,
            series: str | None = "series") -> None:
    """Series ``name`` cannot be scored: raise, or note it in ``failures`` and skip its pieces."""
    if failures is None:
        where = f"series {name!r}: " if series else ""
        raise DataError(where + reason)
    pieces = [info for info in plan.values() if _key(info["series"]) == _key(name)]
    failures[name] = {"rows": sum(info["rows"] for info in pieces), "reason": reason}
    for info in pieces:
        info["skip"] = True


def _numbered(decided: pd.DataFrame, pieces: pd.DataFrame, plan: dict) -> dict:
    """Per piece: its threshold state and the events ``(start, stop, number)`` that touch it,
    in series positions, numbered through the series in the order each first appears."""
    decided = decided.set_index(["chunk", "piece"])
    plan = {key: info for key, info in plan.items() if "skip" not in info}
    totals = {_key(info["series"]): int(decided.loc[key, "events"]) for key, info in plan.items()}
    first_seen = pieces.groupby("series", sort=False, dropna=False)["min_id"].min()
    offsets, found = {}, 0
    for name in first_seen.sort_values(kind="stable").index:
        if _key(name) not in totals:
            continue
        offsets[_key(name)] = found
        found += totals[_key(name)]
    out = {}
    for key, info in plan.items():
        row = decided.loc[key]
        starts = np.frombuffer(row["starts"], np.int64)
        stops = np.frombuffer(row["stops"], np.int64)
        lo, hi = info["pos"], info["pos"] + info["rows"]
        near = np.flatnonzero((starts < hi) & (stops > lo))
        offset = offsets[_key(info["series"])]
        out[key] = {"state": row["state"],
                    "events": [(int(starts[i]), int(stops[i]), offset + int(i) + 1)
                               for i in near]}
    return out


def _key(name: Any) -> Any:
    return "\0null" if name is None or (isinstance(name, float) and np.isnan(name)) else name


def _gather(edges: list[np.ndarray], rows: int, width: int, at_end: bool) -> np.ndarray:
    """Up to ``rows`` rows of neighbouring pieces' edges (nearest first), in time order."""
    taken, count = [], 0
    for edge in edges:
        if count >= rows:
            break
        part = edge[-(rows - count):] if at_end else edge[: rows - count]
        taken.append(part)
        count += len(part)
    if at_end:
        taken = taken[::-1]
    return np.vstack(taken) if taken else np.empty((0, width))


# -- helpers ------------------------------------------------------------------------------
def _model(shipped: Any, digest: str) -> Any:
    from vigil.engines.spark.scoring import cached_model

    return cached_model(digest, lambda: shipped.value)


def _member(model: Any, name: Any, series: str | None) -> Any:
    return model.for_series(name) if series and hasattr(model, "models_") else model


def _adaptive(model: Any) -> bool:
    return hasattr(model.threshold, "values")


def _as_arrow(pass_: Any, schema: Any) -> Any:
    """A pass that yields small pandas frames, as ``mapInArrow`` takes it: Arrow batches in,
    Arrow batches of the Spark ``schema`` out."""
    from pyspark.sql.pandas.types import to_arrow_schema

    arrow = to_arrow_schema(schema)

    def run(batches: Any) -> Any:
        import pyarrow as pa

        for frame in pass_(batches):
            yield pa.RecordBatch.from_pandas(frame, schema=arrow, preserve_index=False)
    return run


def _table(batches: Any) -> Any:
    """A partition's Arrow batches as one table (None when it is empty)."""
    import pyarrow as pa

    batches = [b for b in batches if b.num_rows]
    return pa.Table.from_batches(batches) if batches else None


def _floats(table: Any, channels: list[str]) -> np.ndarray:
    """float64 ``[n, d]`` of the channels, nulls and infinite values as NaN (gaps)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    out = np.empty((table.num_rows, len(channels)))
    for j, name in enumerate(channels):
        out[:, j] = pc.cast(table[name], pa.float64()).to_numpy()
    out[np.isinf(out)] = np.nan
    return out


def _pieces(table: Any, series: str | None) -> list[tuple[Any, np.ndarray]]:
    """Each series' rows in a partition, in order: ``(name, row positions)``, in the order
    the series first appear."""
    if series is None:
        return [(0, np.arange(table.num_rows))]
    import pyarrow.compute as pc

    encoded = pc.dictionary_encode(table[series].combine_chunks(), null_encoding="encode")
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    names = encoded.dictionary.to_pylist()
    order = np.argsort(codes, kind="stable")
    cuts = np.flatnonzero(np.diff(codes[order])) + 1
    return list(zip(names, np.split(order, cuts)))


def _fill(X: np.ndarray, carry: np.ndarray, first: np.ndarray | None = None) -> np.ndarray:
    """The piece's gaps (NaN) filled as the whole series' would be: the previous value in the
    piece, else the last one before it (``carry``), else the series' ``first`` value."""
    X = fill_forward(X, carry)
    if first is not None and np.isnan(X).any():
        X = np.where(np.isnan(X), first, X)
    return X
