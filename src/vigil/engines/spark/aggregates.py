"""Statistical fits as Spark aggregates: ``zscore``, ``robust_zscore`` and ``iqr`` fitted on
every training row of a DataFrame, without bringing the rows to the driver.

- ``zscore``: each channel's mean and population standard deviation (numpy's ``ddof=0``, as
  the local fit), by ``avg`` and ``stddev_pop``: exact but for the order of summation (about
  1e-15 relative).
- ``robust_zscore``: the median and the MAD (the mean absolute deviation where the MAD is 0);
  ``iqr``: the quartiles. By default from Spark's ``percentile_approx`` with accuracy
  ``ACCURACY``: each is a training value whose rank is within ``rows / ACCURACY`` of the exact
  one. With ``exact=True`` each is the exact order statistic, interpolated as ``np.quantile``
  does: an approximate pass brackets it, a count finds the rows below the bracket, and only the
  values inside the bracket (about ``4 rows / ACCURACY``) come to the driver.
- The threshold is fitted on the detector's scores of the training rows, exactly as locally:
  a pass scores them on the executors, and only the top scores come to the driver (those from
  ``TAIL_MARGIN`` below the threshold's own quantile up, with a count of the rest), which is
  all that ``pot`` and ``quantile`` read; the median score (for the alarm rules' exit level)
  is selected exactly as above.
- Gaps (a missing or infinite value) are filled as the local engine fills them
  (:mod:`vigil.policy`): from the previous value of the series in time order (ties in input
  order), leading ones from its first value. Only training rows with gaps cost a sort: each
  series' training rows are then ordered in one task.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from vigil.detectors.statistical import MAD_TO_SIGMA, MEAN_AD_TO_SIGMA, SCALE_FLOOR
from vigil.engines.spark.errors import no_values
from vigil.errors import DataError

__all__ = ["AGGREGATED", "ACCURACY", "can_aggregate", "fit_aggregated"]

#: Methods whose fit is a set of per-channel statistics.
AGGREGATED = ("zscore", "robust_zscore", "iqr")
#: ``percentile_approx``'s accuracy: a rank error of at most rows / ACCURACY.
ACCURACY = 10_000
#: Below the threshold's quantile, this share of the training scores comes to the driver too:
#: pot may lower its initial threshold over ties, and leaves out its largest scores.
TAIL_MARGIN = 0.01
_THRESHOLDS = ("pot", "quantile", "fixed")


def can_aggregate(method: str, threshold: Any, params: dict[str, Any]) -> bool:
    """Whether ``method`` with this threshold fits as aggregates (else on a driver sample)."""
    from vigil.thresholds import make_threshold

    return method in AGGREGATED and make_threshold(threshold).name in _THRESHOLDS


def fit_aggregated(rows: Any, method: str, channels: list[str], **settings: Any) -> Any:
    """A :class:`vigil.Model` of ``method`` fitted on every row of the Spark DataFrame ``rows``
    (the training rows), as the module docstring says; ``settings``: the roles
    (``time_column``, ``series_column``, ``label_column``), ``threshold``, ``alarms``,
    ``exact`` and the method's parameters. Rows computed by a shuffle (the first rows of each
    series, gaps filled) are kept once for the passes over them, then released."""
    kept: list[Any] = []
    try:
        return _fit(rows, method, channels, kept=kept, **settings)
    finally:
        for frame in kept:
            frame.unpersist()


def _kept(rows: Any, kept: list[Any]) -> Any:
    """``rows`` persisted when its plan holds a shuffle (it would be recomputed each pass)."""
    from pyspark import StorageLevel

    if "Exchange" not in rows._jdf.queryExecution().executedPlan().toString():
        return rows
    rows = rows.persist(StorageLevel.MEMORY_AND_DISK)
    kept.append(rows)
    return rows


def _fit(rows: Any, method: str, channels: list[str], *, time_column: str | None,
         series_column: str | None, label_column: str | None, threshold: Any, alarms: Any,
         kept: list[Any], exact: bool = False, **params: Any) -> Any:
    from pyspark.sql import functions as F

    from vigil.model import Model

    model = Model(method, threshold=threshold, alarms=alarms, channels=channels,
                  time_column=time_column, series_column=series_column,
                  label_column=label_column, **params)
    det = model.detector
    det._validate_params()
    rows = _kept(rows, kept)
    valid = {c: _valid(c) for c in channels}
    counts = rows.agg(F.count(F.lit(1)).alias("__rows"),
                      *[F.count(v).alias(c) for c, v in valid.items()]).first().asDict()
    n = int(counts.pop("__rows"))
    empty = [c for c in channels if not counts[c]]
    if not n:
        raise DataError("the DataFrame has no rows to fit on.")
    if empty:
        raise DataError(no_values(empty[0]))
    gaps = n - min(counts.values())
    if gaps:
        rows, valid = _filled(rows, valid, time_column, series_column)
        rows = _kept(rows, kept)
        counts = dict.fromkeys(channels, n)
    magnitude = rows.agg(*[F.max(F.abs(v)).alias(c) for c, v in valid.items()]).first()
    magnitude = np.array([float(magnitude[c]) for c in channels])
    if method == "zscore":
        stats = rows.agg(*[F.avg(v).alias(f"m{j}") for j, v in enumerate(valid.values())],
                         *[F.stddev_pop(v).alias(f"s{j}") for j, v in enumerate(valid.values())]
                         ).first()
        center = np.array([stats[f"m{j}"] for j in range(len(channels))], float)
        spread = np.array([stats[f"s{j}"] for j in range(len(channels))], float)
    elif method == "robust_zscore":
        center = np.array([q[0] for q in _quantiles(rows, valid, counts, [0.5], exact)])
        deviation = {c: F.abs(v - F.lit(float(m))) for (c, v), m in zip(valid.items(), center)}
        mad = MAD_TO_SIGMA * np.array([q[0] for q in _quantiles(rows, deviation, counts, [0.5],
                                                                 exact)])
        means = rows.agg(*[F.avg(d).alias(c) for c, d in deviation.items()]).first()
        mean_ad = MEAN_AD_TO_SIGMA * np.array([means[c] for c in channels], float)
        spread = np.where(mad > 0, mad, mean_ad)
    else:  # iqr
        q1, q3 = np.array(_quantiles(rows, valid, counts, [0.25, 0.75], exact)).T
        center, spread = (q1 + q3) / 2, q3 - q1
    scale = np.maximum(spread, SCALE_FLOOR * np.where(magnitude > 0, magnitude, 1.0))
    det.set_state({"n_channels_": np.asarray(len(channels)), "center_": center,
                   "scale_": scale})
    model.channels_ = list(channels)
    model.time_column_, model.series_column_ = time_column, series_column
    _fit_decisions(model, rows, valid, exact)
    model.training_.update(
        source="<DataFrame>", engine="spark", rows=n,
        sample="every training row as Spark aggregates" + (
            "" if method == "zscore" else ", with exact quantiles" if exact else
            f", with quantiles within {n // ACCURACY + 1:,} ranks (exact with --exact)"))
    if time_column:
        span = rows.agg(F.min(time_column).alias("a"), F.max(time_column).alias("b")).first()
        model.training_.update(start=str(span["a"]), end=str(span["b"]))
    return model


def _fit_decisions(model: Any, rows: Any, valid: dict[str, Any], exact: bool) -> None:
    """The threshold and alarm rules on the training scores (module docstring)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    channels = list(valid)
    det = model.detector
    shipped = rows.sparkSession.sparkContext.broadcast(
        (det.name, det.get_params(), det.get_state()))
    narrow = rows.select(*[v.alias(f"c{j}") for j, v in enumerate(valid.values())])

    def scored(batches: Any) -> Any:
        import pyarrow as pa

        from vigil.detectors import make_detector

        name, params, state = shipped.value
        det = make_detector(name, **params).set_state(state)
        for batch in batches:
            X = np.column_stack([batch.column(j).to_numpy(zero_copy_only=False)
                                 for j in range(len(channels))]) if batch.num_rows else None
            if X is not None:
                yield pa.RecordBatch.from_arrays([pa.array(det.score(X))], names=["s"])

    scores = narrow.mapInArrow(scored, T.StructType([T.StructField("s", T.DoubleType())]))
    scores = scores.persist()
    try:
        column = {"s": F.col("s")}
        total = scores.agg(F.count(F.lit(1)).alias("n"), F.max("s").alias("top")).first()
        n = int(total["n"])
        median = _quantiles(scores, column, {"s": n}, [0.5], True)[0][0]
        params = model.threshold._validated_params()
        level = params.get("level", params.get("q"))
        reduced = np.full(1, median)
        if level is not None:
            reduced = _tail(scores, n, max(level - TAIL_MARGIN, 0.0))
    finally:
        scores.unpersist()
    model.threshold.fit(reduced, fallback=model.detector.natural_threshold)
    model.alarms.center_ = float(median)
    model.training_ = {"rows": n, "score_median": float(median),
                       "score_max": float(total["top"])}


def _tail(scores: Any, n: int, share: float) -> np.ndarray:
    """All ``n`` scores in order as the threshold reads them: those from the ``share``
    quantile up exactly, those below it replaced by the smallest of them (never read)."""
    from pyspark.sql import functions as F

    if share <= 0:
        return np.sort(scores.toPandas()["s"].to_numpy())
    rank = int(math.floor(share * (n - 1)))
    low = _select(scores, "s", F.col("s"), n, [rank])[0]
    below = scores.where(F.col("s") < low).count()
    top = np.sort(scores.where(F.col("s") >= low).toPandas()["s"].to_numpy())
    return np.concatenate([np.full(below, low), top])


def _filled(rows: Any, valid: dict[str, Any], time_column: str | None,
            series_column: str | None) -> tuple[Any, dict[str, Any]]:
    """The training rows with each channel's gaps filled as :func:`vigil.policy.fill_gaps`
    fills them (window functions over each series in time order)."""
    from pyspark.sql import functions as F
    from pyspark.sql.window import Window

    if "__vigil_row" not in rows.columns:
        rows = rows.withColumn("__vigil_row", F.monotonically_increasing_id())
    order = ([F.col(time_column).asc_nulls_first()] if time_column else []) + ["__vigil_row"]
    base = Window.partitionBy(series_column) if series_column else Window.partitionBy()
    past = base.orderBy(*order).rowsBetween(Window.unboundedPreceding, Window.currentRow)
    whole = base.orderBy(*order).rowsBetween(Window.unboundedPreceding,
                                             Window.unboundedFollowing)
    names = {c: f"__vigil_fill_{j}" for j, c in enumerate(valid)}
    for c, v in valid.items():
        rows = rows.withColumn(names[c], F.coalesce(F.last(v, ignorenulls=True).over(past),
                                                    F.first(v, ignorenulls=True).over(whole)))
    if series_column:
        missing = [F.col(n).isNull() for n in names.values()]
        empty = rows.where(functools.reduce(lambda a, b: a | b, missing))
        first = empty.select(series_column, *names.values()).first()
        if first is not None:
            channel = next(c for c, n in names.items() if first[n] is None)
            raise DataError(f"series {first[series_column]!r} has no value at all in channel "
                            f"'{channel}': give it values, or leave the channel out "
                            "(--channels)")
    return rows, {c: F.col(n) for c, n in names.items()}


def _valid(name: str) -> Any:
    """The channel as a double, null where it is missing, NaN or infinite (a gap)."""
    from pyspark.sql import functions as F

    v = F.col(name).cast("double")
    return F.when(v.isNull() | F.isnan(v) | (F.abs(v) == float("inf")), None).otherwise(v)


def _quantiles(rows: Any, columns: dict[str, Any], counts: dict[str, int], qs: list[float],
               exact: bool) -> list[list[float]]:
    """Per column, its ``qs`` quantiles (``np.quantile``'s linear interpolation when
    ``exact``, else ``percentile_approx``)."""
    from pyspark.sql import functions as F

    if not exact:
        found = rows.agg(*[F.percentile_approx(c, list(qs), ACCURACY).alias(name)
                           for name, c in columns.items()]).first()
        return [[float(x) for x in found[name]] for name in columns]
    out = []
    for name, column in columns.items():
        n = int(counts[name])
        index = [(n - 1) * q for q in qs]
        ranks = sorted({int(math.floor(i)) for i in index} | {int(math.ceil(i)) for i in index})
        values = dict(zip(ranks, _select(rows, name, column, n, ranks)))
        row = []
        for i in index:
            a, b = values[int(math.floor(i))], values[int(math.ceil(i))]
            t = i - math.floor(i)
            row.append(float(_lerp(a, b, t)))
        out.append(row)
    return out


def _lerp(a: float, b: float, t: float) -> float:
    """numpy's interpolation between neighbouring order statistics (``np.quantile``)."""
    diff = np.subtract(b, a)
    return float(np.subtract(b, diff * (1 - t)) if t >= 0.5 else np.add(a, diff * t))


def _select(rows: Any, name: str, column: Any, n: int, ranks: list[int]) -> list[float]:
    """The exact order statistics (0-based ``ranks``) of ``column`` over its ``n`` values: a
    ``percentile_approx`` bracket, a count below it, the values inside it; wider brackets
    until it holds the ranks (the sketch's guarantee makes the first one enough)."""
    from pyspark.sql import functions as F

    lo_rank, hi_rank = min(ranks), max(ranks)
    margin = 2 * n // ACCURACY + 2
    for _ in range(8):
        edges = [max(lo_rank - margin, 0) / max(n - 1, 1), min(hi_rank + margin, n - 1)
                 / max(n - 1, 1)]
        low, high = rows.agg(F.percentile_approx(column, edges, ACCURACY).alias("e")).first()["e"]
        if lo_rank - margin <= 0:
            low = -math.inf
        if hi_rank + margin >= n - 1:
            high = math.inf
        inside = column.between(F.lit(low), F.lit(high)) if math.isfinite(low) and \
            math.isfinite(high) else (column >= F.lit(low)) if math.isfinite(low) else \
            (column <= F.lit(high)) if math.isfinite(high) else column.isNotNull()
        below = rows.where(column < F.lit(low)).count() if math.isfinite(low) else 0
        values = np.sort(rows.where(inside).select(column.alias(name)).toPandas()[name]
                         .to_numpy(float))
        if below <= lo_rank and below + len(values) > hi_rank:
            return [float(values[r - below]) for r in ranks]
        margin *= 4
    raise AssertionError(f"the exact quantile of {name!r} could not be bracketed")
