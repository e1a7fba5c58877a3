"""``--engine spark`` for detect, train and score: the same job on a Spark DataFrame (results
to Parquet, the events table computed on the cluster, plots of a bounded piece)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import typer

from vigil.cli.app import _pictures, _said
from vigil.cli.output import STATE, _escape, _events_rich_table, _summary_text, err, out, step
from vigil.errors import ConfigError

__all__ = ["spark_job", "spark_demo", "spark_stream", "check_engine"]


def check_engine(engine: str, master: str | None, partition_by: str | None,
                 out_path: Path | None, spark_only: str | None = None) -> None:
    """One usage error for options that do not go together, before anything starts
    (``spark_only``: another Spark-only option given, such as ``--keep-going``)."""
    if engine not in ("local", "spark"):
        raise ConfigError(f"--engine must be local or spark. Got {engine!r}.")
    if engine == "local" and (master or partition_by or spark_only):
        option = "--master" if master else "--partition-by" if partition_by else spark_only
        raise ConfigError(f"{option} needs --engine spark.")
    if partition_by not in (None, "day"):
        raise ConfigError(f"--partition-by must be day. Got {partition_by!r}.")
    if engine == "spark" and out_path is not None and out_path.suffix.lower() not in (
            "", ".parquet"):
        raise ConfigError(f"--out {out_path}: with --engine spark the results are a Parquet "
                          "folder (name it .parquet or give no suffix).")


def spark_job(source: str, *, master: str | None, roles: dict[str, Any] | None = None,
              fit_settings: dict[str, Any] | None = None, model_path: Path | None = None,
              save_to: Path | None = None, out_path: Path | None = None,
              partition_by: str | None = None, plot_path: Path | None = None,
              report_path: Path | None = None, show: int = 20,
              fail_on_anomaly: bool = False, keep_going: bool = False) -> None:
    """Fit (``fit_settings``) or load (``model_path``) a model, then either save it
    (``save_to``) or score ``source`` with it and report as the local engine does. With
    ``keep_going`` the series that fail are left out, listed and written beside the output
    (exit code 3)."""
    from vigil.engines import spark as vs
    from vigil.engines.spark.reading import read
    from vigil.engines.spark.summary import events_and_totals, plot_sample

    with step(f"Starting Spark ({master or 'local[*]'})"):
        spark = vs.session(master)
    df = read(spark, source)
    with vs.executor_errors():
        if model_path is not None:
            from vigil.model import load

            model = load(model_path)
        else:
            settings = dict(fit_settings or {})
            if keep_going and (roles or {}).get("series_column"):
                settings["keep_going"] = True
            with step(f"Fitting {settings.get('method')} on {source} (Spark)"):
                model = vs.fit(df, **(roles or {}), **settings)
            if hasattr(model, "models_"):
                _said(f"Fitted one {model.method} model on each of {len(model.models_)} series "
                      f"({model.training_['rows']:,} rows in all).")
            else:
                _said(f"Fitted on {model.training_['sample']} ({model.training_['rows']:,} "
                      "rows).")
        unfitted = [(name, reason) for name, reason in getattr(model, "failed_", {}).items()]
        if save_to is not None:
            model.save(save_to)
            cut = ("one per series" if hasattr(model, "models_") else
                   f"threshold {model.threshold_:.4g}")
            _said(f"Model ({model.method}, {len(model.channels_)} channels: "
                  f"{', '.join(model.channels_)}; {cut}) written to {save_to}")
            if unfitted:
                _failures([(name, None, why) for name, why in unfitted],
                          save_to, "fitted")
            return
        failures = None
        if keep_going:
            result, failures = vs.score(df, model, keep_going=True)
        else:
            result = vs.score(df, model)
        if out_path is not None:
            with step(f"Scoring and writing {out_path}"):
                _write(result, model, out_path, partition_by)
            result = spark.read.parquet(str(out_path))  # the summary reads what was written
        else:
            result = result.persist()
        with step("Summarising the events"):
            events, totals = events_and_totals(result, model)
        if totals["filled"]:
            err.print(f"warning: {source}: {totals['filled']:,} rows had missing or infinite "
                      "channel values, filled with the previous value of their series in time "
                      "order (leading ones with the first; their rows are marked in the "
                      "'filled' column; see vigil.policy)", soft_wrap=True)
        if not STATE["quiet"]:
            if show and len(events):
                out.print(_events_rich_table(events.head(show), len(events)))
                if len(events) > show:
                    out.print(f"... and {len(events) - show} more events (every row with its "
                              "event number: --out).")
            out.print(_summary_text(totals["rows"], totals["flagged"], totals["threshold_min"],
                                    totals["threshold_max"], len(events), model.method,
                                    model.alarms, hasattr(model, "models_")), soft_wrap=True)
        if out_path is not None:
            _said(f"Scores of all {totals['rows']:,} rows written to {out_path} (Parquet"
                  f"{', partitioned by day' if partition_by else ''})")
        if plot_path is not None or report_path is not None:
            frame, what = plot_sample(result, model)
            _pictures(frame, model, plot_path, report_path, source, what)
        failed = [] if failures is None else [tuple(r) for r in failures.collect()]
    if failed:
        _failures(failed, out_path, "scored")
    if fail_on_anomaly and totals["flagged"]:
        raise typer.Exit(1)


def _failures(failed: list[tuple[Any, Any, str]], beside: Path | None, what: str) -> None:
    """List the series that failed (--keep-going), write them as <name>_failures.csv beside
    ``beside`` (when there is one) and exit with code 3."""
    import pandas as pd
    from rich.table import Table

    from vigil.cli.output import fail_partly

    table = Table(title=f"Series not {what} ({len(failed)})", title_justify="left")
    for column in ("series", "rows", "reason"):
        table.add_column(column, overflow="fold")
    for name, rows, reason in failed[:20]:
        table.add_row(_escape(str(name)), "" if rows is None else f"{rows:,}", _escape(reason))
    err.print(table)
    written = ""
    if beside is not None:
        path = beside.with_name(f"{beside.stem}_failures.csv")
        pd.DataFrame(failed, columns=["series", "rows", "reason"]).to_csv(path, index=False)
        written = f"; all {len(failed)} written to {path}"
    fail_partly(f"{len(failed)} series could not be {what} and "
                f"{'was' if len(failed) == 1 else 'were'} left out (--keep-going){written}.")


#: Most rows ``vigil evaluate --engine spark`` brings to the driver for the metrics.
EVALUATE_ROWS = 20_000_000


def spark_evaluate(source: str, *, master: str | None, roles: dict[str, Any],
                   fit_settings: dict[str, Any], train_rows: Any) -> tuple[dict, Any, int, int]:
    """``vigil evaluate`` on Spark: fit on the first ``train_rows(count, times)`` rows in time
    order and score every row there; the metrics (:func:`vigil.cli.evaluate.metrics_of`) from
    each row's time, score, flag, label and first channel, brought to the driver in time order
    (ties in input order). Returns the report, the model, the training rows and all rows."""
    from pyspark.sql import functions as F

    from vigil.cli.evaluate import metrics_of
    from vigil.engines import spark as vs
    from vigil.engines.spark.reading import read
    from vigil.engines.spark.summary import to_pandas
    from vigil.errors import DataError
    from vigil.policy import fill_gaps

    with step(f"Starting Spark ({master or 'local[*]'})"):
        spark = vs.session(master)
    df = read(spark, source)
    label = roles.get("label_column") or "label"
    if label not in df.columns:
        raise DataError(f"{source}: no label column {label!r}")
    roles = {**roles, "label_column": label}
    n = df.count()
    if n > EVALUATE_ROWS:
        raise DataError(f"{source}: {n:,} rows; evaluate on Spark brings each row's score and "
                        f"label to the driver for the metrics, at most {EVALUATE_ROWS:,} rows: "
                        "evaluate a part, or score on Spark (vigil score --engine spark).")
    time = roles.get("time_column") or _time_column(df)
    rows = train_rows(n, lambda: to_pandas(df.select(time))[time] if time else None)
    with vs.executor_errors():
        with step(f"Fitting {fit_settings.get('method')} on the first {rows:,} rows (Spark)"):
            model = vs.fit(df, **roles, train_rows=rows, sample_rows=max(rows, 1),
                           **fit_settings)
        order = "__vigil_order"
        scored = vs.score(df.withColumn(order, F.monotonically_increasing_id()), model)
        keys = ([model.time_column_] if model.time_column_ else []) + [order]
        wanted = [F.col(model.channels_[0]).cast("double").alias("__first"),
                  F.col(label).cast("double").alias("__label"), "score", "is_anomaly"]
        if model.time_column_:
            wanted.append(model.time_column_)
        with step(f"Scoring {n:,} rows on Spark"):
            frame = to_pandas(scored.orderBy(*keys).select(*wanted))
    times = frame[model.time_column_].iloc[rows:] if model.time_column_ else None
    first = frame["__first"].to_numpy(float)[:, None]  # gaps filled as the detector saw them
    fill_gaps(first, np.arange(len(first)), None, model.channels_[:1])
    report = metrics_of(frame["score"].to_numpy(), frame["__label"].to_numpy(),
                        frame["is_anomaly"].to_numpy(bool), first[:, 0], rows, times)
    return report, model, rows, n


def _time_column(df: Any) -> str | None:
    from vigil.engines.spark.fitting import _time_column as found

    return found(df)


def _write(result: Any, model: Any, path: Path, partition_by: str | None) -> None:
    from pyspark.sql import functions as F

    writer = result
    if partition_by == "day":
        if model.time_column_ is None:
            raise ConfigError("--partition-by day needs a time column, and the model has none.")
        writer = result.withColumn("day", F.to_date(F.col(model.time_column_)))
        writer.write.mode("overwrite").partitionBy("day").parquet(str(path))
    else:
        writer.write.mode("overwrite").parquet(str(path))


def spark_demo(model: Any, dataset: Any, batch: Any) -> None:
    """The demo's model on Spark (local): the bundled rows as a Spark DataFrame, scored there,
    and the flags and events compared with the batch demo's."""
    import numpy as np

    from vigil.engines import spark as vs
    from vigil.engines.spark.summary import to_pandas

    with step("Starting Spark (local[*])"):
        spark = vs.session()
    frame = dataset.frame.reset_index(drop=True)
    with step(f"Scoring {len(frame)} rows on Spark"), vs.executor_errors():
        scored = to_pandas(vs.score(spark.createDataFrame(frame), model))
    scored = scored.sort_values(model.time_column_, kind="stable").reset_index(drop=True)
    expected = batch.iloc[dataset.order].reset_index(drop=True)
    flags = np.array_equal(scored["is_anomaly"], expected["is_anomaly"])
    events = np.array_equal(scored["event"], expected["event"])
    worst = float(np.max(np.abs(scored["score"] - expected["score"])))
    _said(f"Spark: {len(scored)} rows scored, {int(scored['event'].max())} events; its flags "
          f"{'equal' if flags and events else 'differ from'} the batch demo's"
          + (f" on all {len(scored)} rows (largest score difference {worst:.3g})."
             if flags and events else
             f" on {int((scored['is_anomaly'] != expected['is_anomaly']).sum())} rows."))


def spark_stream(model: Any, config: Any, checkpoint: str, *, master: str | None,
                 trigger: float, max_offsets: int | None, idle_exit: float | None,
                 log_every: float) -> None:
    """``vigil stream --engine spark``: run the Structured Streaming query until SIGTERM or
    Ctrl-C (the query stops between micro-batches, its checkpoint holds the rest) or
    ``idle_exit`` seconds without an input row; a status line every ``log_every`` s."""
    import signal
    import threading
    import time

    from vigil.engines import spark as vs
    from vigil.engines.spark.kafka_stream import start

    with step(f"Starting Spark ({master or 'local[*]'})"):
        spark = vs.session(master)
    # A new query's state is split in this many partitions, for good (the checkpoint keeps
    # it): one per core, not Spark's default of 200 tasks per micro-batch.
    spark.conf.set("spark.sql.shuffle.partitions", str(spark.sparkContext.defaultParallelism))
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM,
                                                                       signal.SIGINT)}
    try:
        with vs.executor_errors():
            query = start(spark, model, config, checkpoint, trigger=f"{trigger:g} seconds",
                          max_offsets_per_trigger=max_offsets)
        _said(f"Scoring {config.input_topic} on {config.bootstrap} with {model.method} "
              f"({', '.join(model.channels_)}) -> {config.output_topic} on Spark "
              f"(exactly-once, emit {config.emit}, trigger {trigger:g} s, checkpoint "
              f"{checkpoint})")
        rows = 0
        last_log = time.monotonic()
        idle_since: float | None = None
        seen: set[int] = set()
        while query.isActive and not stop.is_set():
            query.awaitTermination(0.2)
            recent = query.recentProgress
            for progress in recent:
                if progress["batchId"] not in seen and progress.get("numInputRows"):
                    seen.add(progress["batchId"])
                    rows += int(progress["numInputRows"])
            now = time.monotonic()
            if now - last_log >= log_every and not STATE["quiet"]:
                err.print(f"{rows} rows read in {len(seen)} micro-batches", soft_wrap=True)
                last_log = now
            status = query.status  # idle: no batch running and nothing new to read
            if status.get("isDataAvailable") or status.get("isTriggerActive") or not recent:
                idle_since = None
            elif idle_since is None:
                idle_since = now
            if idle_exit is not None and idle_since is not None and \
                    now - idle_since >= idle_exit:
                break
        if query.isActive:
            # Stop between micro-batches: an interrupted one is only redone on restart, but
            # Spark's handling of the interrupt can fail noisily (a StackOverflowError in its
            # message matching).
            deadline = time.monotonic() + 60
            while query.status.get("isTriggerActive") and time.monotonic() < deadline:
                time.sleep(0.05)
            query.stop()
        with vs.executor_errors():
            error = query.exception()
            if error is not None:
                raise error  # executor_errors turns vigil's own back into one line
        _said(f"Stopped: {rows} rows read in {len(seen)} micro-batches; the checkpoint "
              f"{checkpoint} resumes the query.")
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)

