"""``vigil produce``: replay a data file into a Kafka topic, one message per row, in time order,
keyed by series, at a steady rate or as fast as the broker takes them."""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any, Callable

import numpy as np
import pandas as pd

from vigil._optional import require
from vigil.errors import ConfigError

__all__ = ["produce_rows", "FORMATS"]

FORMATS = ("json", "csv")
log = logging.getLogger("vigil.stream")


def produce_rows(data: Any, bootstrap: str, topic: str, *, rate: float | None = None,
                 fmt: str = "json", partitions: int = 1, kafka: dict[str, Any] | None = None,
                 progress: Callable[[int, int], None] | None = None) -> int:
    """Send every row of ``data`` (a :class:`vigil.io.Dataset`) to ``topic``; returns the count.

    A JSON message is flat, ``{"<time column>": "...", "<channel>": value, ...}`` with the series
    column when there is one; a CSV line is the time then the channels, in the dataset's order.
    The key is the series id (so one series stays on one partition, in order); a file of one
    series goes, without a key, to partition 0. The
    topic is created with ``partitions`` partitions when it does not exist. ``rate`` is rows
    per second (None: as fast as possible).
    """
    ck = require("confluent_kafka", "stream", "vigil produce")
    require("confluent_kafka.admin", "stream", "vigil produce")
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}. Got {fmt!r}.")
    if rate is not None and not rate > 0:
        raise ConfigError(f"--rate must be more than 0 rows per second. Got {rate}.")
    common = {"bootstrap.servers": bootstrap, "logger": log, **(kafka or {})}
    _create(ck, common, topic, partitions)
    frame = data.frame.iloc[data.order]
    payloads = _payloads(frame, data.time_column, list(data.channels), data.series_column, fmt)
    keys = (frame[data.series_column].astype(str).map(str.encode).tolist()
            if data.series_column else [None] * len(frame))
    producer = ck.Producer({"enable.idempotence": True, "linger.ms": 5, **common})
    errors: list[str] = []

    def delivered(error: Any, _: Any) -> None:
        if error is not None:
            errors.append(str(error))

    start, total = time.monotonic(), len(payloads)
    for i, (key, value) in enumerate(zip(keys, payloads)):
        if rate is not None:
            due = start + i / rate
            wait = due - time.monotonic()
            if wait > 0:
                producer.poll(0)
                time.sleep(wait)  # pacing a replay: the rate is the point
        while True:
            try:
                if key is None:  # one series: one partition keeps it in order
                    producer.produce(topic, value, partition=0, on_delivery=delivered)
                else:
                    producer.produce(topic, value, key, on_delivery=delivered)
                break
            except BufferError:  # the local queue is full: let the broker catch up
                producer.poll(0.05)
        if progress is not None and (i % 5000 == 0 or i == total - 1):
            progress(i + 1, total)
    if producer.flush(60) or errors:
        raise ConfigError(f"the broker at {bootstrap} did not take every row "
                          f"({errors[0] if errors else 'not acknowledged within 60 s'}).")
    return total


def _payloads(frame: pd.DataFrame, time_column: str | None, channels: list[str],
              series_column: str | None, fmt: str) -> list[bytes]:
    times = None
    if time_column is not None:
        stamps = pd.DatetimeIndex(frame[time_column])
        times = [None if t is pd.NaT else t.isoformat(sep=" ") for t in stamps]
    values = frame[channels].to_numpy(dtype=np.float64, na_value=np.nan)
    rows = [[None if math.isnan(v) else v for v in row] for row in values.tolist()]
    if fmt == "csv":
        return [",".join(([times[i] or ""] if times is not None else []) +
                         ["" if v is None else repr(v) for v in row]).encode()
                for i, row in enumerate(rows)]
    series = frame[series_column].astype(str).tolist() if series_column else None
    out = []
    for i, row in enumerate(rows):
        d: dict[str, Any] = {}
        if times is not None:
            d[time_column] = times[i]
        if series is not None:
            d[series_column] = series[i]
        d.update(zip(channels, row))
        out.append(json.dumps(d, separators=(",", ":")).encode())
    return out


def _create(ck: Any, common: dict[str, Any], topic: str, partitions: int) -> None:
    admin = ck.admin.AdminClient(common)
    try:
        topics = admin.list_topics(timeout=10).topics
    except ck.KafkaException as error:
        raise ConfigError(f"cannot reach a Kafka broker at {common['bootstrap.servers']}: "
                          f"{error}") from None
    if topic in topics:
        return
    future = admin.create_topics([ck.admin.NewTopic(topic, int(partitions), 1,
                                                    config={"retention.ms": "-1"})],
                                request_timeout=10)[topic]
    try:
        future.result(15)
    except ck.KafkaException as error:
        if "TOPIC_ALREADY_EXISTS" not in str(error):
            log.warning("could not create topic %r (%s); relying on the broker to create it "
                        "on first write", topic, error)
