"""Fitting a :class:`vigil.Model` on a Spark DataFrame.

The model is fitted on the driver, on a bounded and reproducible sample: the first rows of each
series in time order (ties in input order), at most ``sample_rows`` in all, split evenly over
the series; with ``train_rows``, at most that many per series, as ``vigil detect --train-rows``
takes them locally. The first rows of a series are the usual clean reference period, and a
contiguous sample keeps every window of a windowed method intact. The model's training summary
states the sample (``training_["sample"]``). The same rows fitted locally give the same model.

The statistical methods (zscore, robust_zscore, iqr) are fitted as Spark aggregates over every
training row instead (:mod:`vigil.engines.spark.aggregates`), with no sample.
"""

from __future__ import annotations

import math
from typing import Any

from vigil._optional import require
from vigil.engines.spark.errors import executor_errors, no_time, no_values
from vigil.engines.spark.summary import to_pandas
from vigil.errors import ConfigError, DataError
from vigil.policy import LABEL_NAMES, TIME_NAMES

__all__ = ["fit", "SAMPLE_ROWS"]

#: Default bound on the rows collected to the driver to fit on.
SAMPLE_ROWS = 1_000_000


def fit(df: Any, method: str = "auto", *, time_column: str | None = None,
        channels: list[str] | str | None = None, series_column: str | None = None,
        label_column: str | None = None, train_rows: int | None = None,
        sample_rows: int = SAMPLE_ROWS, threshold: Any = "pot", alarms: Any = "default",
        per_series: bool = False, unseen: str = "error", keep_going: bool = False,
        exact: bool = False, **params: Any) -> Any:
    """A fitted :class:`vigil.Model` of ``method`` (``params`` are its parameters), from the
    first rows of each series of ``df`` (see the module docstring). Columns are found as the
    local reader finds them: the time column by name or type, a 0/1 label column by name
    (never a channel), the numeric columns left as channels.

    With ``per_series`` a :class:`vigil.ModelBundle`: one model per series, each fitted on an
    executor (``applyInPandas``) on the first ``train_rows`` (at most ``sample_rows``) rows of
    its series; with ``unseen="fallback"`` one more, fitted on the driver's sample of all
    series, scores series not seen here. A series that cannot be fitted (a row without a
    time, a channel without any value) stops the job with its reason; with ``keep_going`` it
    is left out instead (of the bundle, or of the rows one model is fitted on), its reason in
    the model's ``failed_`` (series: reason; not saved with the model).

    The statistical methods (zscore, robust_zscore, iqr; thresholds pot, quantile, fixed) are
    fitted as Spark aggregates instead, on every training row (all rows, or the first
    ``train_rows`` of each series), with nothing but a few numbers and the top training
    scores brought to the driver; ``exact`` makes their quantiles exact
    (:mod:`vigil.engines.spark.aggregates`)."""
    require("pyspark", "spark", "the Spark engine")
    from vigil.io import from_frame
    from vigil.model import Model

    if int(sample_rows) < 1:
        raise DataError(f"sample_rows must be 1 or more. Got {sample_rows}.")
    if isinstance(channels, str):
        channels = [channels]
    time_column = time_column or _time_column(df)
    label_column = label_column or _label_column(df, {time_column, series_column})
    for name in (time_column, series_column, label_column, *(channels or [])):
        if name is not None and name not in df.columns:
            raise DataError(f"column {name!r} is not in the DataFrame (it has: "
                            f"{', '.join(df.columns)}).")
    from pyspark.sql import functions as F

    from vigil.engines.spark.aggregates import AGGREGATED, can_aggregate, fit_aggregated

    aggregated = not per_series and can_aggregate(method, threshold, params)
    if exact and not aggregated:
        raise ConfigError(f"exact is for the statistical methods fitted as Spark aggregates "
                          f"({', '.join(AGGREGATED)}, with a pot, quantile or fixed threshold, "
                          f"one model for all series); {method} is fitted on a sample.")
    if aggregated:
        rows = df if train_rows is None else _first_rows(df, time_column, series_column,
                                                          int(train_rows))
        chosen = channels or _channels(df, time_column, series_column, label_column)
        failed = {}
        if keep_going and series_column:
            failed = _unusable_series(rows, time_column, chosen, series_column)
            rows = rows.where(~F.col(series_column).isin(list(failed))) if failed else rows
        model = fit_aggregated(rows, method, chosen, time_column=time_column,
                               series_column=series_column, label_column=label_column,
                               threshold=threshold, alarms=alarms, exact=exact, **params)
        if series_column:
            model.training_["series"] = df.select(series_column).distinct().count()
        if failed:
            model.training_["sample"] += _less(failed)
        model.failed_ = failed
        return model
    if per_series:
        if not series_column:
            raise DataError("a model per series needs series_column (--series-column).")
        return _fit_per_series(df, method, time_column, channels, series_column, label_column,
                               min(int(train_rows or sample_rows), int(sample_rows)), unseen,
                               sample_rows, keep_going,
                               dict(threshold=threshold, alarms=alarms, **params))
    if keep_going and not series_column:
        raise DataError("keep_going leaves failed series out: it needs series_column.")
    n_series = df.select(series_column).distinct().count() if series_column else 1
    quota = max(1, math.ceil(int(sample_rows) / n_series))
    if train_rows is not None:
        quota = min(quota, int(train_rows))
    first = _first_rows(df, time_column, series_column, quota)
    failed = {}
    if keep_going and series_column:
        failed = _unusable_series(first, time_column, channels or _channels(
            df, time_column, series_column, label_column), series_column)
        first = first.where(~F.col(series_column).isin(list(failed))) if failed else first
    rows = (to_pandas(first).sort_values("__vigil_row", kind="stable")
            .drop(columns=["__vigil_row", "__vigil_rank"]).reset_index(drop=True))
    if not len(rows):
        raise DataError("the DataFrame has no rows to fit on.")
    model = Model(method, threshold=threshold, alarms=alarms, **params)
    model.fit(from_frame(rows, time_column=time_column, channels=channels,
                         series_column=series_column, label_column=label_column))
    model.training_.update(
        engine="spark", series=int(n_series), per_series=int(quota),
        sample=(f"the first {quota} rows of each of {n_series} series in time order"
                if series_column else f"the first {quota} rows in time order"))
    if failed:
        model.training_["sample"] += _less(failed)
    model.failed_ = failed
    return model


def _less(failed: dict[Any, str]) -> str:
    names = ", ".join(map(str, list(failed)[:3])) + (", ..." if len(failed) > 3 else "")
    return f", less {len(failed)} series that could not be fitted ({names})"


def _unusable_series(rows: Any, time_column: str | None, channels: list[str],
                     series_column: str) -> dict[Any, str]:
    """The series of ``rows`` that no model can be fitted on (a row without a time, a channel
    without any value), with the reason: one aggregate per series, none of its rows moved."""
    from pyspark.sql import functions as F

    from vigil.engines.spark.aggregates import _valid

    parts = [F.count(_valid(c)).alias(f"c{j}") for j, c in enumerate(channels)]
    if time_column:
        parts.append(F.sum(F.col(time_column).isNull().cast("long")).alias("untimed"))
    failed = {}
    for row in to_pandas(rows.groupBy(series_column).agg(*parts)).to_dict("records"):
        if time_column and row["untimed"]:
            failed[row[series_column]] = no_time(time_column)
            continue
        empty = [c for j, c in enumerate(channels) if not row[f"c{j}"]]
        if empty:
            failed[row[series_column]] = no_values(empty[0])
    return failed


def _first_rows(df: Any, time_column: str | None, series_column: str | None,
                quota: int) -> Any:
    """The first ``quota`` rows of each series in time order (ties in input order), with their
    row id ``__vigil_row`` and rank ``__vigil_rank``."""
    from pyspark.sql import functions as F
    from pyspark.sql.window import Window

    tagged = df.withColumn("__vigil_row", F.monotonically_increasing_id())
    order = [F.col(time_column).asc_nulls_first()] if time_column else []
    window = (Window.partitionBy(series_column) if series_column else Window.partitionBy()
              ).orderBy(*order, "__vigil_row")
    return (tagged.withColumn("__vigil_rank", F.row_number().over(window))
            .where(F.col("__vigil_rank") <= quota))


def _fit_per_series(df: Any, method: str, time_column: str | None, channels: Any,
                    series_column: str, label_column: str | None, quota: int, unseen: str,
                    sample_rows: int, keep_going: bool, settings: dict[str, Any]) -> Any:
    """One model per series, fitted on the executors; the models come back as .vigil bytes."""
    import pandas as pd
    from pyspark.sql import types as T

    from vigil.bundle import ModelBundle
    from vigil.model import load

    bundle = ModelBundle(method, series_column=series_column, unseen=unseen,
                         channels=channels, time_column=time_column,
                         label_column=label_column, **settings)
    names = df.columns
    roles = {"channels": channels, "time_column": time_column, "label_column": label_column}
    kwargs = {**settings, **roles}

    def fit_series(rows: pd.DataFrame) -> pd.DataFrame:
        import io as _io

        from vigil.errors import DataError as _DataError
        from vigil.model import Model

        rows = rows.sort_values("__vigil_row", kind="stable")
        name = rows[series_column].iloc[0]
        first = int(rows["__vigil_row"].iloc[0])
        try:
            model = Model(method, **kwargs).fit(rows[[c for c in names if c != series_column]])
        except _DataError as error:
            reason = str(error).replace("<DataFrame>: ", "", 1)
            if keep_going:
                return pd.DataFrame({"series": [str(name)], "model": [None],
                                     "first": [first], "reason": [reason]})
            raise _DataError(f"series {name!r}: {reason}") from None
        buffer = _io.BytesIO()
        model.save(buffer)
        return pd.DataFrame({"series": [str(name)], "model": [buffer.getvalue()],
                             "first": [first], "reason": [None]})

    schema = T.StructType([T.StructField("series", T.StringType()),
                           T.StructField("model", T.BinaryType()),
                           T.StructField("first", T.LongType()),
                           T.StructField("reason", T.StringType())])
    fitted = (_first_rows(df, time_column, series_column, quota)
              .groupBy(series_column).applyInPandas(fit_series, schema))
    with executor_errors():
        models = to_pandas(fitted).sort_values("first", kind="stable")
    bundle.models_ = {row.series: load(bytes(row.model)) for row in models.itertuples()
                      if row.model is not None}
    bundle.failed_ = {row.series: row.reason for row in models.itertuples()
                      if row.model is None}
    if not bundle.models_:
        name, reason = next(iter(bundle.failed_.items()))
        raise DataError(f"no series could be fitted (series {name!r}: {reason})")
    if unseen == "fallback":
        bundle.fallback_ = fit(df, method, time_column=time_column, channels=channels,
                               series_column=series_column, label_column=label_column,
                               train_rows=quota, sample_rows=sample_rows, **settings)
    return bundle


def _channels(df: Any, time_column: str | None, series_column: str | None,
              label_column: str | None) -> list[str]:
    """The channels the local reader would find, from the DataFrame's first rows."""
    import warnings

    from vigil.io import from_frame

    head = to_pandas(df.limit(1000))
    with warnings.catch_warnings():  # the rows' order, gaps: said when they are scored
        warnings.simplefilter("ignore")
        return list(from_frame(head, time_column=time_column, series_column=series_column,
                               label_column=label_column).channels)


def _time_column(df: Any) -> str | None:
    """As the local reader: by name (``TIME_NAMES``, in priority order), else the first
    timestamp column."""
    by_name = {name.lower(): name for name in reversed(df.columns)}
    for wanted in TIME_NAMES:
        if wanted in by_name:
            return by_name[wanted]
    for field in df.schema.fields:
        if field.dataType.typeName() in ("timestamp", "timestamp_ntz", "date"):
            return field.name
    return None


def _label_column(df: Any, taken: set[str | None]) -> str | None:
    """The first column named like a label whose values are all 0/1 (one aggregate)."""
    from pyspark.sql import functions as F

    for name in df.columns:
        if name in taken or name.strip().lower() not in LABEL_NAMES:
            continue
        values = F.col(name).cast("double")
        bad = df.where(values.isNull() | ~values.isin(0.0, 1.0)).limit(1).count()
        if not bad:
            return name
    return None
