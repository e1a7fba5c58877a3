"""Scoring a Spark DataFrame with a fitted :class:`vigil.Model`.

A frame with typed columns (a timestamp or date time column, numeric channels) is scored in
chunks, a long series by many tasks (:mod:`vigil.engines.spark.chunked`). Any other frame is
scored a series at a time: each series is one group (``groupBy(series).applyInPandas``), its
rows put back in input order (a row id taken as the data is read) and given to
:meth:`vigil.Model.detect`, which parses the times and channels as the local reader does, with
its errors; such a series must fit in one Python worker's memory. Either way every score, flag
and event equals the local one. The model travels as its ``.vigil`` bytes in a broadcast
variable, loaded once per Python worker. Events are numbered through the series in the order
each series first appears, as locally.
"""

from __future__ import annotations

import hashlib
import io as _io
from typing import Any

import numpy as np
import pandas as pd

from vigil._optional import require
from vigil.errors import DataError

__all__ = ["score", "RESULT_COLUMNS", "FAILURE_COLUMNS"]

#: What :func:`score` adds to a DataFrame.
RESULT_COLUMNS = ("score", "threshold", "is_anomaly", "event", "driver", "filled")
#: The columns of the failures table ``score(..., keep_going=True)`` returns.
FAILURE_COLUMNS = ("series", "rows", "reason")
_ID, _LOCAL, _ERROR = "__vigil_row", "__vigil_event", "__vigil_error"
_MODELS: dict[str, Any] = {}  # per Python worker: model bytes' digest -> loaded model


def score(df: Any, model: Any, *, keep_going: bool = False) -> Any:
    """``df`` plus ``score``, ``threshold``, ``is_anomaly``, ``event``, ``driver`` (the
    channel that drove the score, null where the method cannot tell) and ``filled`` (a missing
    or infinite channel value was filled from the past, see :mod:`vigil.policy`), for each
    row: equal to ``model.detect`` on the same rows. Lazy, as Spark is: nothing runs until an
    action; run it inside :func:`~vigil.engines.spark.executor_errors` for vigil's own
    errors.

    A series that cannot be scored (a row without a time, a value that is not a number, a
    channel with no value at all, no model for it in a bundle) stops the job with an error
    that names it. With ``keep_going`` it is left out of the result instead, and the return
    value is ``(result, failures)``: ``failures`` a DataFrame of ``series`` (as text; null
    for a frame without a series column), ``rows`` and ``reason``, one row per series left
    out. Never a silent zero score.

    On a streaming DataFrame (``spark.readStream``) each series keeps its scorer's state
    across micro-batches and a row comes out once its result is final, with an ``error``
    column too (null, or why a row could not be scored): see
    :mod:`vigil.engines.spark.stream_scoring`."""
    require("pyspark", "spark", "the Spark engine")
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    model._require_fitted()
    _check_columns(df, model)
    if df.isStreaming:
        if keep_going:
            raise DataError("keep_going is for batch DataFrames: a streaming DataFrame gives "
                            "each row that cannot be scored an 'error' instead.")
        if "error" in df.columns:
            raise DataError("the streaming DataFrame already has a column 'error', which vigil "
                            "adds: rename or drop it first.")
        from vigil.engines.spark.stream_scoring import score_stream

        return score_stream(df, model)
    from vigil.engines.spark.chunked import can_chunk, score_chunked

    spark = df.sparkSession
    if can_chunk(df, model):
        if not keep_going:
            return score_chunked(df, model)
        failed: dict[Any, dict[str, Any]] = {}
        result = score_chunked(df, model, failures=failed)
        rows = [(None if k is None else str(k), v["rows"], v["reason"]) for k, v in failed.items()]
        return result, spark.createDataFrame(rows, _failure_schema())
    shipped, digest = ship(spark, model)
    series = model.series_column_
    fields = list(df.schema.fields) + [
        T.StructField("score", T.DoubleType()), T.StructField("threshold", T.DoubleType()),
        T.StructField("is_anomaly", T.BooleanType()), T.StructField(_LOCAL, T.LongType()),
        T.StructField("driver", T.StringType()), T.StructField("filled", T.BooleanType())]
    if keep_going:
        fields.append(T.StructField(_ERROR, T.StringType()))
    schema = T.StructType([T.StructField(_ID, T.LongType(), False), *fields])
    names = [f.name for f in df.schema.fields]

    def detect_series(rows: pd.DataFrame) -> pd.DataFrame:
        return _detect_group(rows, shipped, digest, names, series, keep_going)

    tagged = df.withColumn(_ID, F.monotonically_increasing_id())
    tagged = tagged.select(_ID, *names)
    grouped = tagged.groupBy(series) if series else tagged.groupBy(F.lit(0).alias("__vigil_all"))
    scored = grouped.applyInPandas(detect_series, schema)
    failures = None
    if keep_going:
        scored = scored.persist()  # scored once: the failures below read it too
        failures = scored.where(F.col(_ERROR).isNotNull()).select(
            (F.col(series).cast("string") if series else F.lit(None).cast("string"))
            .alias("series"), F.col(_LOCAL).alias("rows"), F.col(_ERROR).alias("reason"))
        scored = scored.where(F.col(_ERROR).isNull())
    if series is None:  # one series: its numbers are the file's
        out = scored.withColumnRenamed(_LOCAL, "event").select(*names, *RESULT_COLUMNS)
        return (out, failures) if keep_going else out
    if not keep_going:
        scored = scored.persist()  # scored once: the event offsets below read it too
    counts = scored.groupBy(series).agg(F.min(_ID).alias("__first"),
                                        F.max(_LOCAL).alias("__events"))
    from pyspark.sql.window import Window

    before = Window.orderBy("__first").rowsBetween(Window.unboundedPreceding, -1)
    offsets = counts.select(series, F.coalesce(F.sum("__events").over(before), F.lit(0))
                            .alias("__offset"))
    out = scored.join(F.broadcast(offsets), on=series, how="left")
    event = F.when(F.col(_LOCAL) > 0, F.col(_LOCAL) + F.col("__offset")).otherwise(F.lit(0))
    out = out.withColumn("event", event.cast("long")).select(*names, *RESULT_COLUMNS)
    return (out, failures) if keep_going else out


def _failure_schema() -> Any:
    from pyspark.sql import types as T

    kinds = (T.StringType(), T.LongType(), T.StringType())
    return T.StructType([T.StructField(n, k) for n, k in zip(FAILURE_COLUMNS, kinds)])


def _detect_group(rows: pd.DataFrame, shipped: Any, digest: str, names: list[str],
                  series: str | None, keep_going: bool = False) -> pd.DataFrame:
    """One series through ``Model.detect`` (on a Python worker). With ``keep_going`` a series
    that fails is one row: its first row id, its series, its row count (in the local event
    column) and the reason."""
    model = cached_model(digest, lambda: shipped.value)
    rows = rows.sort_values(_ID, kind="stable").reset_index(drop=True)
    try:
        result = model.detect(rows[names])
    except DataError as error:
        if keep_going:
            reason = str(error).replace("<DataFrame>: ", "", 1).replace("<DataFrame>", "the "
                                                                          "series", 1)
            failed = rows.iloc[:1].copy()
            for column in names:
                if column != series:
                    failed[column] = None
            return failed.assign(score=np.nan, threshold=np.nan, is_anomaly=None,
                                 **{_LOCAL: len(rows), "driver": None, "filled": None,
                                    _ERROR: reason})
        where = f"series {rows[series].iloc[0]!r}" if series else "the DataFrame"
        raise DataError(str(error).replace("<DataFrame>", where, 1)) from None
    out = rows.copy()
    out["score"] = result["score"].to_numpy()
    out["threshold"] = result["threshold"].to_numpy()
    out["is_anomaly"] = result["is_anomaly"].to_numpy()
    out[_LOCAL] = result["event"].to_numpy(dtype=np.int64)
    out["driver"] = result["driver"].astype(object).to_numpy() if "driver" in result else None
    out["filled"] = result["filled"].to_numpy() if "filled" in result else False
    if keep_going:
        out[_ERROR] = None
    return out


def ship(spark: Any, model: Any) -> tuple[Any, str]:
    """The model's ``.vigil`` bytes as a broadcast variable, and their digest (the key of
    :func:`cached_model`)."""
    buffer = _io.BytesIO()
    model.save(buffer)
    payload = buffer.getvalue()
    return spark.sparkContext.broadcast(payload), hashlib.sha256(payload).hexdigest()


def cached_model(digest: str, payload: Any) -> Any:
    """The model whose ``.vigil`` bytes have this digest, loaded once per Python worker
    (``payload()`` gives the bytes when it is not loaded yet)."""
    model = _MODELS.get(digest)
    if model is None:
        from vigil.model import load

        model = _MODELS[digest] = load(payload())
    return model


def _check_columns(df: Any, model: Any) -> None:
    present = set(df.columns)
    needed = list(model.channels_) + [c for c in (model.time_column_, model.series_column_) if c]
    missing = [c for c in needed if c not in present]
    if missing:
        raise DataError(f"column {missing[0]!r}, which the model needs, is not in the "
                        f"DataFrame (it has: {', '.join(df.columns)}).")
    clash = [c for c in RESULT_COLUMNS if c in present]
    if clash:
        raise DataError(f"the DataFrame already has a column {clash[0]!r}, which vigil adds: "
                        f"rename or drop it first.")
