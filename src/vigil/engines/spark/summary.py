"""What the CLI prints and plots of a scored Spark DataFrame, computed on the cluster: the
anomaly events (one row each, as :func:`vigil.alarms.event_table` gives them) and the totals;
for a plot, a bounded piece of the result on the driver."""

from __future__ import annotations

import warnings
from typing import Any

import pandas as pd

__all__ = ["events_and_totals", "plot_sample", "to_pandas", "PLOT_ROWS"]

#: Most rows a plot or report of a Spark result draws (the first rows of one series).
PLOT_ROWS = 100_000


def events_and_totals(result: Any, model: Any) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The events table (event, series, start, end, duration, rows, peak score, driver) and
    ``{"rows", "flagged", "threshold_min", "threshold_max", "filled"}``, in two small aggregates."""
    from pyspark.sql import functions as F

    time_col, series_col = model.time_column_, model.series_column_
    totals = result.agg(F.count(F.lit(1)).alias("rows"),
                        F.sum(F.col("is_anomaly").cast("long")).alias("flagged"),
                        F.min("threshold").alias("threshold_min"),
                        F.max("threshold").alias("threshold_max"),
                        F.sum(F.col("filled").cast("long")).alias("filled")).first().asDict()
    totals["flagged"], totals["filled"] = int(totals["flagged"] or 0), int(totals["filled"] or 0)
    when = F.col(time_col) if time_col else F.lit(None)
    parts = [F.min(when).alias("start"), F.max(when).alias("end"),
             F.count(F.lit(1)).alias("rows"), F.max("score").alias("peak score"),
             F.max_by("driver", "score").alias("driver")]
    if series_col:
        parts.insert(0, F.max_by(series_col, "score").alias(series_col))
    table = to_pandas(result.where(F.col("event") > 0).groupBy("event").agg(*parts)
                    .orderBy("event"))
    table["duration"] = table["end"] - table["start"] if time_col else table["rows"]
    columns = ["event"] + ([series_col] if series_col else []) + [
        "start", "end", "duration", "rows", "peak score"]
    if model.detector.attributes:
        columns.append("driver")
    return table[columns], totals


def plot_sample(result: Any, model: Any, rows: int = PLOT_ROWS) -> tuple[pd.DataFrame, str]:
    """The first ``rows`` rows in time order of the result's first series, as a
    ``Model.detect`` frame, and a sentence saying what they are."""
    from pyspark.sql import functions as F

    time_col, series_col = model.time_column_, model.series_column_
    part, what = result, "the result"
    if series_col:
        first = result.select(series_col).orderBy(series_col).first()[0]
        part, what = result.where(F.col(series_col) == first), f"series {first!r}"
    if time_col:
        part = part.orderBy(time_col)
    frame = to_pandas(part.limit(rows))
    frame.attrs["vigil"] = {"time_column": time_col, "channels": list(model.channels_),
                            "label_column": None, "method": model.method,
                            "series_column": series_col}
    if not model.detector.attributes:
        frame = frame.drop(columns="driver")
    return frame, f"the first {len(frame):,} rows in time order of {what}"


def to_pandas(df: Any) -> pd.DataFrame:
    """``df.toPandas()`` without pyspark's notes on pandas 3."""
    with warnings.catch_warnings():  # pyspark's own notes on pandas 3
        warnings.filterwarnings("ignore", module=r"pyspark\.")
        return df.toPandas()
