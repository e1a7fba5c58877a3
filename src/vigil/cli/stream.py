"""The Kafka commands: stream (score a topic live), produce (replay a file into a topic) and
broker (an embedded broker for trying vigil out). They need ``pip install 'vigil[stream]'``;
the engine is imported only when one of them runs."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from vigil.cli.app import (ChannelsOpt, DataArg, QuietOpt, SeriesOpt, TimeOpt, _read, _roles,
                           _said, app)
from vigil.cli.output import STATE, err, fail, out, progress_bar, step, user_errors

BootstrapOpt = Annotated[str, typer.Option("--bootstrap", help="Kafka bootstrap servers, HOST:PORT[,HOST:PORT...] (`vigil broker` starts one on 127.0.0.1).")]
KafkaOpt = Annotated[Optional[list[str]], typer.Option("--kafka-config", help="A librdkafka setting as name=value for every client (security, SASL, timeouts); repeat for several.")]


def _kafka_config(pairs: list[str] | None) -> dict[str, str]:
    config = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            fail(f"--kafka-config {pair!r}: expected name=value, e.g. security.protocol=SSL")
        config[name.strip()] = value.strip()
    return config


@app.command()
def stream(
    model_path: Annotated[Path, typer.Option("--model", help="A model file written by `vigil train`.")],
    bootstrap: BootstrapOpt,
    input_topic: Annotated[str, typer.Option("--input", help="Topic of sensor readings: JSON (nested {ts, series, values} or flat) or CSV lines, keyed by series.")],
    output_topic: Annotated[str, typer.Option("--output", help="Topic for the results (created when missing, with the input's partition count).")],
    emit: Annotated[str, typer.Option("--emit", metavar="anomalies|all|events", help="anomalies: one result per row inside an anomaly event; all: one per input row; events: one message when an event opens, one when it closes.")] = "anomalies",
    group: Annotated[str, typer.Option("--group", help="Consumer group: workers in one group split the partitions.")] = "vigil",
    exactly_once: Annotated[bool, typer.Option("--exactly-once", help="Results, states and input offsets in one Kafka transaction (consumers of --output read committed). Default: at-least-once.")] = False,
    columns: Annotated[Optional[str], typer.Option("--columns", help="Field order of CSV-line messages, comma-separated (default: the model's time column, then its channels).")] = None,
    dead_letter: Annotated[Optional[str], typer.Option("--dead-letter", help="Topic for messages that cannot be scored, with the reason in their headers (default: INPUT.dead-letter).")] = None,
    changelog: Annotated[Optional[str], typer.Option("--changelog", help="Topic of per-series state, restored on restart and rebalance (default: GROUP.INPUT.changelog).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Most messages scored in one vectorised batch.")] = 10_000,
    max_latency_ms: Annotated[int, typer.Option("--max-latency-ms", min=1, help="Longest a batch waits to fill before it is scored.")] = 20,
    allowed_lateness: Annotated[Optional[str], typer.Option("--allowed-lateness", metavar="DURATION", help="Score rows that arrive out of time order in their place, up to this much event time behind their series' newest row (e.g. 30s, 5min, 2h; a number is seconds): rows are held that long and released in time order, so results equal a sorted file's. Rows later than that go to the dead-letter topic, as all out-of-order rows do by default.")] = None,
    max_series: Annotated[int, typer.Option("--max-series", min=1, help="Most series one worker holds state for; messages of further series go to the dead-letter topic (a bound on memory against a flood of keys). Start more workers for more series.")] = 100_000,
    commit_interval_ms: Annotated[int, typer.Option("--commit-interval-ms", min=1, help="How often states and offsets are committed (and, with --exactly-once, a transaction ends).")] = 1000,
    max_messages: Annotated[Optional[int], typer.Option("--max-messages", min=1, help="Stop after this many input messages (for scripts and tests).")] = None,
    idle_exit: Annotated[Optional[float], typer.Option("--idle-exit", min=0, help="Stop after this many seconds without a message (counted from the partition assignment).")] = None,
    flush_at_exit: Annotated[bool, typer.Option("--flush-at-exit", help="At exit, end every series: its last rows are scored as a file's last rows are, and published (for a finite replay). Default: they wait in the state for the next run.")] = False,
    metrics_port: Annotated[Optional[int], typer.Option("--metrics-port", help="Serve Prometheus metrics on this port (/metrics).")] = None,
    log_every: Annotated[float, typer.Option("--log-every", min=0.1, help="Seconds between status lines (rate, lag, latency p50/p99, anomalies, dead letters).")] = 10.0,
    engine: Annotated[str, typer.Option("--engine", metavar="local|spark", help="local: this process is the worker (default); spark: a Spark Structured Streaming query (vigil[spark], Java 17): the same results, exactly once, with Spark's checkpoints, restarts and cluster managers.")] = "local",
    checkpoint: Annotated[Optional[str], typer.Option("--checkpoint", metavar="DIR", help="With --engine spark (needed there): the query's checkpoint folder (offsets, per-series state), a path or a URI (hdfs://, s3a://); reuse it to resume.")] = None,
    master: Annotated[Optional[str], typer.Option("--master", help="With --engine spark: the Spark master URL (spark://HOST:7077, yarn, k8s://...; default local[*] on 127.0.0.1).")] = None,
    trigger: Annotated[str, typer.Option("--trigger", metavar="DURATION", help="With --engine spark: the micro-batch interval (e.g. 500ms, 1s, 1min).")] = "1s",
    max_offsets: Annotated[Optional[int], typer.Option("--max-offsets-per-trigger", min=1, help="With --engine spark: the most input offsets one micro-batch reads (default: all there are).")] = None,
    kafka_config: KafkaOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Score a Kafka topic live with a saved model and publish the results.

    Each series (the message key) is scored by its own streaming scorer, so the scores equal
    batch scores of the same rows, also after a restart. Runs until SIGTERM or Ctrl-C, which
    finish the batch, commit and exit 0.

    With --engine spark the same job is a Spark Structured Streaming query: the same messages
    in and out, exactly once, its state in --checkpoint.
    """
    STATE["quiet"] = quiet
    if engine not in ("local", "spark"):
        fail(f"--engine must be local or spark. Got {engine!r}.")
    if (engine == "spark") != (checkpoint is not None):
        fail("--engine spark needs --checkpoint DIR." if engine == "spark" else
             "--checkpoint needs --engine spark (the local worker keeps its state in the "
             "changelog topic).")
    if engine == "local" and (master or max_offsets):
        fail(f"{'--master' if master else '--max-offsets-per-trigger'} needs --engine spark.")
    if engine == "spark":
        worker_only = {"--group": group != "vigil", "--changelog": changelog,
                       "--exactly-once": exactly_once, "--flush-at-exit": flush_at_exit,
                       "--max-messages": max_messages, "--metrics-port": metrics_port}
        given = [name for name, value in worker_only.items() if value]
        if given:
            fail(f"{given[0]} is an option of the local worker; with --engine spark results "
                 f"are always exactly once, the state is in --checkpoint, and Spark's own "
                 f"metrics (its UI, query progress) apply.")
    with user_errors():
        if engine == "spark":
            from vigil.engines.stream import StreamConfig
            from vigil.model import load

            model = load(model_path)
            config = StreamConfig(
                bootstrap=bootstrap, input_topic=input_topic, output_topic=output_topic,
                emit=emit, dead_letter_topic=dead_letter, columns=_names(columns),
                allowed_lateness=_seconds(allowed_lateness, "--allowed-lateness"),
                kafka=_kafka_config(kafka_config))
            from vigil.cli.spark import spark_stream

            spark_stream(model, config, checkpoint, master=master,
                         trigger=_seconds(trigger, "--trigger"), max_offsets=max_offsets,
                         idle_exit=idle_exit, log_every=log_every)
            return
        from vigil.engines.stream import StreamConfig, Worker
        from vigil.engines.stream.metrics import serve_prometheus
        from vigil.model import load

        model = load(model_path)
        config = StreamConfig(
            bootstrap=bootstrap, input_topic=input_topic, output_topic=output_topic,
            group=group, emit=emit, exactly_once=exactly_once, dead_letter_topic=dead_letter,
            changelog_topic=changelog, columns=_names(columns), batch_size=batch_size,
            max_latency_ms=max_latency_ms, commit_interval_ms=commit_interval_ms,
            allowed_lateness=_seconds(allowed_lateness, "--allowed-lateness"),
            max_series=max_series,
            kafka=_kafka_config(kafka_config))
        _log_to_stderr()
        worker = Worker(model, config)
        if metrics_port is not None:
            serve_prometheus(worker.metrics, metrics_port)
        live = sys.stderr.isatty() and not quiet
        if not quiet:
            err.print(f"Scoring {input_topic} on {bootstrap} with {model.method} "
                      f"({', '.join(model.channels_)}) -> {output_topic} "
                      f"({'exactly-once' if exactly_once else 'at-least-once'}, emit {emit})",
                      soft_wrap=True)

        def report(metrics: Any) -> None:
            if quiet:
                return
            if live:
                err.file.write(f"\r\033[K{metrics.line()}")
                err.file.flush()
            else:
                err.print(metrics.line(), soft_wrap=True)

        metrics = worker.run(max_messages=max_messages, idle_exit=idle_exit,
                             flush_at_exit=flush_at_exit, report=report,
                             report_every=min(log_every, 1.0) if live else log_every)
        if live:
            err.file.write("\n")
        if not quiet:
            err.print(f"Stopped: {metrics.line()}", soft_wrap=True)


@app.command()
def produce(
    data: DataArg,
    bootstrap: BootstrapOpt,
    topic: Annotated[str, typer.Option("--topic", help="Topic to write to (created when missing).")],
    rate: Annotated[Optional[float], typer.Option("--rate", help="Rows per second (default: as fast as the broker takes them).")] = None,
    fmt: Annotated[str, typer.Option("--format", metavar="json|csv", help="json: one flat JSON object per row; csv: a line of the time, then the channels.")] = "json",
    partitions: Annotated[int, typer.Option("--partitions", min=1, help="Partitions of the topic, when it is created.")] = 1,
    time_column: TimeOpt = None,
    channels: ChannelsOpt = None,
    series_column: SeriesOpt = None,
    kafka_config: KafkaOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Replay DATA into a Kafka topic, one message per row in time order, keyed by series."""
    STATE["quiet"] = quiet
    with user_errors():
        from vigil.engines.stream import produce_rows

        dataset = _read(data, _roles(time_column, channels, None, series_column))
        with progress_bar(f"Producing {len(dataset)} rows to {topic}") as callback:
            sent = produce_rows(dataset, bootstrap, topic, rate=rate, fmt=fmt,
                                partitions=partitions, kafka=_kafka_config(kafka_config),
                                progress=callback)
        if not quiet:
            out.print(f"{sent} rows of {data} written to {topic} on {bootstrap}")


@app.command()
def broker(
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1 (0: a free one).")] = 9092,
) -> None:
    """Run an embedded Kafka-protocol broker (tansu, in memory) on 127.0.0.1 for trying vigil
    out; prints its bootstrap address and runs until Ctrl-C or SIGTERM."""
    with user_errors():
        from vigil.engines.stream import EmbeddedBroker

        done = threading.Event()
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, lambda *_: done.set())
        with EmbeddedBroker(port) as running:
            out.print(f"Kafka-protocol broker (tansu, in memory) at {running.bootstrap}; "
                      f"Ctrl-C to stop.")
            print(running.bootstrap, flush=True)
            while not done.wait(0.5):
                if running.process is None or running.process.poll() is not None:
                    fail("the embedded broker exited unexpectedly.")


def stream_demo(model: Any, dataset: Any, batch: Any) -> None:
    """The demo's model on a live stream: an embedded broker, the bundled rows replayed into a
    topic, a worker scoring them; prints each anomaly event as it opens and compares the
    stream's flags with the batch demo's."""
    import numpy as np

    from vigil.engines.stream import EmbeddedBroker, StreamConfig, Worker, produce_rows

    flags: dict[int, bool] = {}

    def arrived(result: dict[str, Any]) -> None:
        flags[result["offset"]] = result["is_anomaly"]
        if result["is_anomaly"] and result["event"] not in opened:
            opened.add(result["event"])
            if not STATE["quiet"]:
                out.print(f"  event {result['event']:>3} opened at {result['time']}, driven by "
                          f"{result['driver']} (score {result['score']:.3g})")

    opened: set[int] = set()
    with EmbeddedBroker(0) as running:
        with step(f"Producing {len(dataset)} rows to topic 'sensor' on {running.bootstrap}"):
            produce_rows(dataset, running.bootstrap, "sensor")
        _said(f"Streaming them through a worker ({model.method}, at-least-once) to topic "
              f"'anomalies':")
        config = StreamConfig(running.bootstrap, "sensor", "anomalies", group="vigil-demo",
                              emit="all", kafka={"session.timeout.ms": "1000",
                                                 "heartbeat.interval.ms": "100"})
        metrics = Worker(model, config, on_result=arrived).run(idle_exit=1, flush_at_exit=True)
    streamed = np.array([flags.get(i, False) for i in range(len(dataset))])
    expected = batch["is_anomaly"].to_numpy()[dataset.order]
    differ = np.flatnonzero(streamed != expected)
    same = "equal" if not len(differ) and len(flags) == len(dataset) else "differ from"
    _said(f"Stream: {metrics.consumed} rows scored at {metrics.busy_rate:,.0f} rows/s, "
          f"{len(opened)} events; its flags {same} the batch demo's"
          + (f" on {len(differ)} rows (first at row {differ[0]})." if len(differ) else
             f" on all {len(dataset)} rows."))


def _seconds(text: str | None, option: str) -> float:
    """A duration given as text (30s, 5min, 1h30m, or a number of seconds) in seconds."""
    if text is None:
        return 0.0
    import pandas as pd

    try:
        seconds = float(text) if text.strip().replace(".", "", 1).isdigit() else \
            pd.Timedelta(text.strip()).total_seconds()
    except ValueError:
        fail(f"{option} {text!r}: expected a duration such as 30s, 5min or 2h (or seconds).")
    if not seconds >= 0:
        fail(f"{option} {text!r}: a duration cannot be negative.")
    return seconds


def _names(text: str | None) -> list[str] | None:
    return [c.strip() for c in text.split(",") if c.strip()] if text else None


def _log_to_stderr() -> None:
    """The worker's log (assignments, warnings) on stderr, once."""
    logger = logging.getLogger("vigil.stream")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
