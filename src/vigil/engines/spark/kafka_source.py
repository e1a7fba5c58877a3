"""``vigil-kafka``: a Kafka source for Spark Structured Streaming, written with Spark's Python
Data Source API over confluent-kafka, for where Spark's own ``kafka`` connector jar is not on the
classpath (it comes from Maven, which many sites cannot reach).

    register(spark)
    stream = (spark.readStream.format("vigil-kafka")
              .option("kafka.bootstrap.servers", "localhost:9092")
              .option("subscribe", "sensor").load())

Its rows have the built-in source's columns (``key``, ``value``, ``topic``, ``partition``,
``offset``, ``timestamp``, ``timestampType``), so a query written for one runs on the other.

How it reads, and why nothing is lost or read twice:

- An offset is ``{partition: next offset}`` (partition numbers as strings, JSON's keys). Spark
  writes it to the query's checkpoint before a micro-batch runs, so a restarted query reads the
  same ranges again.
- ``latestOffset`` finds each partition's end by **consumer position**, not by counting
  messages: transaction markers, aborted records and compaction gaps take offsets too. The
  broker's high watermark is only a hint (some brokers, tansu among them, report a batch's first
  offset + 1 for a multi-record batch), so the source reads on from the watermark's last record
  to where the consumer's position stops.
- Each micro-batch has one input partition per Kafka partition with new data; ``read`` assigns
  the consumer at the range's start and reads until its position reaches the range's end,
  keeping only records inside ``[start, end)``.
- Isolation is ``read_committed`` (set ``kafka.isolation.level`` to change it): records of
  aborted or still-open transactions are never read.
- Records gone from the broker (retention) are an error naming the range, never skipped.

Options: ``kafka.bootstrap.servers`` and ``subscribe`` (one topic) are required;
``startingOffsets`` is ``earliest`` (default), ``latest`` or JSON ``{"topic": {"0": 42}}``
(-2 earliest, -1 latest) for a new query; ``maxOffsetsPerTrigger`` bounds a micro-batch,
shared among partitions by their backlog; ``readTimeoutMs`` (default 120000) bounds how long a
task waits for its range; any other ``kafka.*`` option is a librdkafka setting.
``Trigger.AvailableNow`` reads what is there at the start and stops.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from typing import Any, Iterator

from vigil._optional import require
from vigil.errors import ConfigError, DataError

__all__ = ["NAME", "SCHEMA", "register"]

#: The format name: vigil's own, so it never shadows Spark's ``kafka``.
NAME = "vigil-kafka"
#: The rows' columns, as Spark's built-in Kafka source gives them (without ``headers``).
SCHEMA = ("key binary, value binary, topic string, partition int, offset long, "
          "timestamp timestamp, timestampType int")
_EARLIEST, _LATEST = -2, -1
# How long the end probe waits for a partition's last records: a fetch takes milliseconds; a
# partition with nothing readable there yet is tried again at the next trigger.
_PROBE_WAIT_S = 0.25
_BATCH = 10_000  # records per Arrow batch handed to Spark


def register(spark: Any) -> None:
    """Register ``vigil-kafka`` with ``spark`` (once per session; again is harmless)."""
    spark.dataSource.register(_source_class())


def _source_class() -> type:
    require("pyspark", "spark", "the Spark engine")
    from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
    from pyspark.sql.streaming.datasource import ReadAllAvailable, SupportsTriggerAvailableNow

    class KafkaRange(InputPartition):
        def __init__(self, topic: str, partition: int, start: int, end: int) -> None:
            self.topic, self.partition, self.start, self.end = topic, partition, start, end

    class Reader(DataSourceStreamReader, SupportsTriggerAvailableNow):
        def __init__(self, options: dict[str, str]) -> None:
            options = _Options(options)
            self.settings = _settings(options)
            self.topic = _required(options, "subscribe")
            self.starting = options.get("startingOffsets", "earliest")
            _starting(self.starting, self.topic)
            self.max_offsets = _positive(options, "maxOffsetsPerTrigger")
            self.read_timeout = (_positive(options, "readTimeoutMs") or 120_000) / 1000
            self.target: dict[str, int] | None = None  # the AvailableNow end
            self._consumer: Any = None

        # -- on the driver ------------------------------------------------------------------
        def initialOffset(self) -> dict:
            ends = self._ends(self._partitions(), {})
            lows = self._lows()
            chosen = _starting(self.starting, self.topic)
            out = {}
            for p, end in ends.items():
                want = chosen.get(p, chosen.get(None, _EARLIEST))
                out[str(p)] = lows[p] if want == _EARLIEST else end if want == _LATEST else want
            return out

        def latestOffset(self, start: dict, limit: Any) -> dict:
            rows = None if isinstance(limit, ReadAllAvailable) else getattr(limit, "max_rows",
                                                                            None)
            if self.target is not None:
                return _cap(start, self.target, rows)
            ends = self._ends(self._partitions(), start)
            return _cap(start, {str(p): e for p, e in ends.items()}, rows)

        def getDefaultReadLimit(self) -> Any:
            if self.max_offsets:
                from pyspark.sql.streaming.datasource import ReadMaxRows

                return ReadMaxRows(self.max_offsets)
            return ReadAllAvailable()

        def prepareForTriggerAvailableNow(self) -> None:
            self.target = {str(p): e for p, e in self._ends(self._partitions(), {}).items()}

        def partitions(self, start: dict, end: dict) -> list:
            return [KafkaRange(self.topic, int(p), int(start.get(p, 0)), int(e))
                    for p, e in sorted(end.items(), key=lambda kv: int(kv[0]))
                    if int(e) > int(start.get(p, 0))]

        def commit(self, end: dict) -> None:
            pass  # the checkpoint holds the offsets; nothing to tell the broker

        def stop(self) -> None:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None

        def _client(self) -> Any:
            if self._consumer is None:
                ck = require("confluent_kafka", "stream", "the vigil-kafka source")
                self._consumer = ck.Consumer({
                    **self.settings, "group.id": f"vigil-kafka-probe-{uuid.uuid4().hex[:8]}",
                    "enable.auto.commit": False, "queued.max.messages.kbytes": 1024,
                    "fetch.wait.max.ms": 10})
            return self._consumer

        def _partitions(self) -> list[int]:
            meta = self._client().list_topics(self.topic, timeout=30)
            topic = meta.topics.get(self.topic)
            if topic is None or topic.error is not None or not topic.partitions:
                why = topic.error if topic is not None and topic.error else "no partitions"
                raise ConfigError(f"topic {self.topic!r} on {self.settings['bootstrap.servers']}"
                                  f" cannot be read ({why}): create it first.")
            return sorted(topic.partitions)

        def _lows(self) -> dict[int, int]:
            ck = require("confluent_kafka", "stream", "the vigil-kafka source")
            return {p: self._client().get_watermark_offsets(
                ck.TopicPartition(self.topic, p), timeout=30)[0] for p in self._partitions()}

        def _ends(self, partitions: list[int], start: dict) -> dict[int, int]:
            """Each partition's end: past its last readable record, found by consumer position
            from the watermark's last record (see the module docstring)."""
            ck = require("confluent_kafka", "stream", "the vigil-kafka source")
            c = self._client()
            ends, probe = {}, {}
            for p in partitions:
                low, high = c.get_watermark_offsets(ck.TopicPartition(self.topic, p), timeout=30)
                begin = int(start.get(str(p), low))
                ends[p] = begin if high <= begin else high
                if high > begin:
                    probe[p] = max(begin, high - 1)
            if probe:  # the watermark is readable up to, on any broker: never go below it
                ends.update((p, max(ends[p], e)) for p, e in
                            _probe(ck, c, self.topic, probe).items())
            return ends

        # -- on an executor -----------------------------------------------------------------
        def read(self, partition: Any) -> Iterator[Any]:
            yield from _read_range(self.settings, partition, self.read_timeout)

    class VigilKafka(DataSource):
        @classmethod
        def name(cls) -> str:
            return NAME

        def schema(self) -> str:
            Reader(dict(self.options))  # bad options fail at load(), not in the query
            return SCHEMA

        def streamReader(self, schema: Any) -> Any:
            return Reader(dict(self.options))

    return VigilKafka


class _Options(dict):
    """Spark hands options over with their keys in lower case: look names up that way."""

    def __init__(self, options: dict[str, str]) -> None:
        super().__init__((k.lower(), v) for k, v in options.items())

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return super().__contains__(str(name).lower())

    def __getitem__(self, name: str) -> Any:
        return super().__getitem__(name.lower())


def _settings(options: dict[str, str]) -> dict[str, Any]:
    """librdkafka settings from the ``kafka.*`` options, read committed unless told."""
    settings = {k[len("kafka."):]: v for k, v in options.items() if k.startswith("kafka.")}
    if not settings.get("bootstrap.servers"):
        raise ConfigError("the vigil-kafka source needs option kafka.bootstrap.servers "
                          "(HOST:PORT of a broker).")
    settings.setdefault("isolation.level", "read_committed")
    return settings


def _required(options: dict[str, str], name: str) -> str:
    value = options.get(name)
    if not value:
        raise ConfigError(f"the vigil-kafka source needs option {name}.")
    if name == "subscribe" and "," in value:
        raise ConfigError(f"the vigil-kafka source reads one topic; subscribe is {value!r}.")
    return value


def _positive(options: dict[str, str], name: str) -> int | None:
    if name not in options:
        return None
    try:
        value = int(options[name])
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"option {name} must be a whole number of 1 or more. Got "
                          f"{options[name]!r}.")
    return value


def _starting(text: str, topic: str) -> dict[int | None, int]:
    """``startingOffsets`` as {partition: offset}; the key None is every other partition."""
    if text in ("earliest", "latest"):
        return {None: _EARLIEST if text == "earliest" else _LATEST}
    try:
        given = json.loads(text)[topic]
        return {int(p): int(o) for p, o in given.items()}
    except (ValueError, TypeError, KeyError, AttributeError):
        raise ConfigError(f"startingOffsets must be earliest, latest or JSON like "
                          f'{{"{topic}": {{"0": 42}}}}. Got {text[:80]!r}.') from None


def _cap(start: dict, ends: dict, rows: int | None) -> dict:
    """``ends``, never behind ``start``; with ``rows``, at most that many offsets in all,
    shared among partitions by their backlog (every partition with a backlog moves)."""
    begin = {p: int(start.get(p, 0)) for p in ends}
    out = {p: max(int(e), begin[p]) for p, e in ends.items()}
    for p, o in start.items():
        out.setdefault(p, int(o))
    backlog = {p: out[p] - begin[p] for p in ends if out[p] > begin[p]}
    total = sum(backlog.values())
    if rows is not None and total > rows:
        for p, n in backlog.items():
            out[p] = begin[p] + max(1, math.floor(rows * n / total))
    return out


def _probe(ck: Any, consumer: Any, topic: str, froms: dict[int, int]) -> dict[int, int]:
    """From each partition's offset, the consumer's position after its first fetch: past the
    records read (transaction markers and aborted records included)."""
    consumer.assign([ck.TopicPartition(topic, p, o) for p, o in froms.items()])
    try:
        ends = dict(froms)
        waiting = set(froms)
        deadline = time.monotonic() + _PROBE_WAIT_S
        while waiting and time.monotonic() < deadline:
            consumer.consume(100_000, 0.01)
            for tp in consumer.position([ck.TopicPartition(topic, p) for p in froms]):
                if tp.offset > ends[tp.partition]:
                    ends[tp.partition] = tp.offset
                    waiting.discard(tp.partition)
        # Any position is a valid end (every offset before it is readable): stop at the first
        # one past the start, rather than drain a topic that is still being written. A
        # partition still waiting has nothing readable yet (an open transaction, a slow
        # fetch) and keeps its start until the next trigger.
        return {p: (e if e > froms[p] else froms[p]) for p, e in ends.items()}
    finally:
        consumer.unassign()


def _read_range(settings: dict[str, Any], part: Any, timeout: float) -> Iterator[Any]:
    """The records of ``part`` (topic, partition, [start, end)) as Arrow batches."""
    ck = require("confluent_kafka", "stream", "the vigil-kafka source")
    import pyarrow as pa

    consumer = ck.Consumer({**settings, "group.id": f"vigil-kafka-{uuid.uuid4().hex[:8]}",
                            "enable.auto.commit": False, "auto.offset.reset": "error"})
    where = f"topic {part.topic!r} partition {part.partition} offsets [{part.start}, {part.end})"
    try:
        consumer.assign([ck.TopicPartition(part.topic, part.partition, part.start)])
        tp = [ck.TopicPartition(part.topic, part.partition)]
        deadline = time.monotonic() + timeout
        columns: dict[str, list[Any]] = {k: [] for k in
                                         ("key", "value", "offset", "timestamp", "type")}
        while True:
            for m in consumer.consume(_BATCH, 0.2):
                error = m.error()
                if error is not None:
                    if error.code() == ck.KafkaError._PARTITION_EOF:
                        continue
                    raise DataError(f"reading {where}: {error.str()} (records gone from the "
                                    f"broker, e.g. by retention, are not skipped).")
                if m.offset() >= part.end:
                    continue
                kind, ms = m.timestamp()
                columns["key"].append(m.key())
                columns["value"].append(m.value())
                columns["offset"].append(m.offset())
                columns["timestamp"].append(ms * 1000 if ms >= 0 else None)
                columns["type"].append(kind - 1 if kind > 0 else -1)
            if len(columns["offset"]) >= _BATCH:
                yield _batch(pa, part, columns)
            if consumer.position(tp)[0].offset >= part.end:
                break
            if time.monotonic() > deadline:
                raise DataError(f"could not read {where} within {timeout:g} s (the broker "
                                f"is down, or the records are gone).")
        if columns["offset"]:
            yield _batch(pa, part, columns)
    finally:
        consumer.close()


def _batch(pa: Any, part: Any, columns: dict[str, list[Any]]) -> Any:
    n = len(columns["offset"])
    batch = pa.RecordBatch.from_arrays([
        pa.array(columns["key"], pa.binary()), pa.array(columns["value"], pa.binary()),
        pa.array([part.topic] * n, pa.string()), pa.array([part.partition] * n, pa.int32()),
        pa.array(columns["offset"], pa.int64()),
        pa.array(columns["timestamp"], pa.timestamp("us", tz="UTC")),
        pa.array(columns["type"], pa.int32())],
        names=["key", "value", "topic", "partition", "offset", "timestamp", "timestampType"])
    for values in columns.values():
        values.clear()
    return batch
