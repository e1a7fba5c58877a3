"""``vigil stream --engine spark``: a Spark Structured Streaming query that scores a Kafka topic
with a saved model and writes the same results, event messages and dead letters as the
``vigil stream`` worker, exactly once across driver crashes.

The query, per micro-batch:

1. **Read** the input topic's new offset range: Spark's ``kafka`` source where its connector
   jar is on the classpath, else vigil's own ``vigil-kafka`` (:mod:`.kafka_source`).
2. **Decode** each message with the worker's :class:`~vigil.engines.stream.messages.Decoder`
   (``mapInPandas``): its series, time and channel values, or why it cannot be scored.
3. **Score** each series with ``transformWithStateInPandas``: the series' state is the worker's
   :class:`~vigil.engines.stream.state.SeriesState` (its streaming scorer, the rows awaiting
   their lookahead or the alarm rules, the open event), kept in Spark's RocksDB state store and
   checkpointed with the query; the rows go through the worker's own
   :class:`~vigil.engines.stream.series.SeriesScoring`. So results equal the worker's, which
   equal batch scoring of the same rows.
4. **Write** (``foreachBatch``, on the driver) the batch's results and dead letters in one Kafka
   transaction, together with a marker record ``{"query", "batch"}`` in the commits topic
   (``OUTPUT.commits``). The transactional id is the query's own (stable across restarts from
   the checkpoint), so a restarted driver fences a killed one and aborts its open transaction;
   a batch that Spark replays after a crash finds its marker committed and is not written
   again. Consumers of the output read committed.

Each series must arrive on one partition (key messages by series), as for the worker.
"""

from __future__ import annotations

import hashlib
import io as _io
import json
import logging
from typing import Any, Iterator

import numpy as np
import pandas as pd

from vigil._optional import require
from vigil.engines.spark.stream_scoring import ROCKSDB
from vigil.engines.stream.messages import BadMessage, Decoder, dead_letter_headers, encode
from vigil.errors import ConfigError, DataError

__all__ = ["KafkaQuery", "start", "kafka_format"]

log = logging.getLogger("vigil.stream")
_DECODED = ("series string, partition int, offset long, ts_ms long, key binary, value binary, "
            "time_text string, time_int long, time_json string, reason string, error string")
_OUT = ("topic string, key binary, value binary, reason string, error string, "
        "src_partition int, src_offset long")


def kafka_format(spark: Any) -> str:
    """``kafka`` when Spark's Kafka connector is on the classpath, else ``vigil-kafka``
    (registered here)."""
    try:
        spark._jvm.java.lang.Class.forName("org.apache.spark.sql.kafka010.KafkaSourceProvider")
        return "kafka"
    except Exception:  # py4j wraps the ClassNotFoundException
        from vigil.engines.spark.kafka_source import NAME, register

        register(spark)
        return NAME


def start(spark: Any, model: Any, config: Any, checkpoint: str, trigger: str = "1 second",
          max_offsets_per_trigger: int | None = None, available_now: bool = False) -> Any:
    """Start the query (see the module docstring) and return it, a ``StreamingQuery``.

    Args:
        spark: the session (its state store is set to RocksDB, which the stateful API needs).
        model: a fitted :class:`vigil.Model` or :class:`vigil.ModelBundle`.
        config: a :class:`vigil.engines.stream.StreamConfig`: topics, ``emit``, ``columns``,
            ``allowed_lateness``, ``max_message_bytes`` and librdkafka settings (``kafka``).
        checkpoint: the query's checkpoint folder: offsets, state and its identity. Reuse it
            to resume; a new folder starts from the input's earliest offsets.
        trigger: the micro-batch interval, e.g. ``"1 second"``.
        max_offsets_per_trigger: the most input offsets one micro-batch reads.
        available_now: read what is in the topic now, in as many batches as it takes, and stop.
    """
    ck = require("confluent_kafka", "stream", "vigil stream --engine spark")
    require("confluent_kafka.admin", "stream", "vigil stream --engine spark")
    from vigil.engines.stream.worker import ensure_topics

    model._require_fitted()
    spark.conf.set("spark.sql.streaming.stateStore.providerClass", ROCKSDB)
    common = {"bootstrap.servers": config.bootstrap, **config.kafka}
    ensure_topics(ck, _producer_settings(common), config.input_topic, {
        config.output_topic: {}, config.dead_letter_topic: {},
        _commits_topic(config): {"cleanup.policy": "compact"}})
    buffer = _io.BytesIO()
    model.save(buffer)
    payload = buffer.getvalue()
    digest = hashlib.sha256(payload).hexdigest()
    fmt = kafka_format(spark)
    reader = (spark.readStream.format(fmt).option("kafka.bootstrap.servers", config.bootstrap)
              .option("subscribe", config.input_topic).option("startingOffsets", "earliest")
              .option("kafka.isolation.level", "read_committed"))
    if fmt == "kafka":
        reader = reader.option("failOnDataLoss", "true")
    for name, value in config.kafka.items():
        reader = reader.option(f"kafka.{name}", str(value))
    if max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", str(int(max_offsets_per_trigger)))
    decode = _decoder(model, config)
    decoded = reader.load().select("key", "value", "partition", "offset", "timestamp") \
        .mapInPandas(decode, _decoded_schema(len(model.channels_)))
    scored = decoded.groupBy("series").transformWithStateInPandas(
        _processor(payload, digest, config), _OUT, "Append", "None")
    sink = KafkaQuery(config, checkpoint)
    writer = scored.writeStream.foreachBatch(sink).option("checkpointLocation", checkpoint)
    writer = writer.trigger(availableNow=True) if available_now else \
        writer.trigger(processingTime=trigger)
    return writer.queryName(f"vigil-{config.input_topic}").start()


def _decoded_schema(channels: int) -> str:
    """The decoded messages' columns: where each came from, its series, time and channel
    values (``c0``, ``c1``, ...), or why it could not be decoded."""
    return _DECODED + "".join(f", c{j} double" for j in range(channels))


def _commits_topic(config: Any) -> str:
    return f"{config.output_topic}.commits"


def _producer_settings(common: dict[str, Any]) -> dict[str, Any]:
    from vigil.engines.stream.worker import _not_consumer

    return _not_consumer(common)


# -- decode (on the executors) -----------------------------------------------------------------
def _decoder(model: Any, config: Any) -> Any:
    channels, time_column = list(model.channels_), model.time_column_
    series_column, columns = model.series_column_, config.columns
    size = config.max_message_bytes

    d = len(channels)

    def decode(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        decoder = Decoder(channels, time_column, series_column, columns, size)
        for frame in batches:
            n = len(frame)
            series: list[Any] = [None] * n
            # a reading's time as given: text, a whole number, or any other number as JSON
            text: list[Any] = [None] * n
            whole: list[Any] = [None] * n
            other: list[Any] = [None] * n
            reason: list[Any] = [None] * n
            error: list[Any] = [None] * n
            values = np.full((n, d), np.nan)
            for i, (key, value) in enumerate(zip(frame["key"].tolist(),
                                                 frame["value"].tolist())):
                try:
                    series[i], when, values[i] = decoder.decode(key, value)
                except BadMessage as bad:
                    reason[i], error[i] = bad.reason, str(bad)
                    continue
                if isinstance(when, str):
                    text[i] = when
                elif isinstance(when, int):
                    whole[i] = when
                elif when is not None:
                    other[i] = json.dumps(when)
            out = {"series": series, "partition": frame["partition"],
                   "offset": frame["offset"],
                   "ts_ms": frame["timestamp"].dt.as_unit("ms").astype("int64"),
                   "key": frame["key"], "value": frame["value"], "time_text": text,
                   "time_int": pd.array(whole, dtype="Int64"), "time_json": other, "reason": reason, "error": error}
            out.update((f"c{j}", values[:, j]) for j in range(d))
            yield pd.DataFrame(out)

    return decode


# -- score (on the executors) ------------------------------------------------------------------
def _processor(payload: bytes, digest: str, config: Any) -> Any:
    from pyspark.sql.streaming import StatefulProcessor
    from pyspark.sql.types import BinaryType, StructField, StructType

    from vigil.engines.stream.messages import parse_times
    from vigil.engines.stream.metrics import Metrics
    from vigil.engines.stream.series import Record, SeriesScoring
    from vigil.engines.stream.state import SeriesState

    topic, output, dead = config.input_topic, config.output_topic, config.dead_letter_topic
    emit, lateness = config.emit, config.allowed_lateness

    class SeriesProcessor(StatefulProcessor):
        """One series' state across micro-batches: the worker's SeriesState as its changelog
        record (JSON bytes, never pickle)."""

        def init(self, handle: Any) -> None:
            from vigil.engines.spark.scoring import cached_model

            model = cached_model(digest, lambda: payload)
            self.model = model
            self.state = handle.getValueState(
                "series", StructType([StructField("record", BinaryType(), False)]))
            self.out: list[tuple[Any, ...]] = []
            self.scoring = SeriesScoring(model.channels_, emit, topic, lateness, Metrics(),
                                         self._result, self._dead)

        def _result(self, key: bytes, message: dict[str, Any]) -> None:
            self.out.append((output, key, encode(message), None, None, message["partition"],
                             message.get("offset", message.get("end_offset"))))

        def _dead(self, message: Any, bad: BadMessage) -> None:
            self.out.append((dead, message.key(), message.value(), bad.reason, str(bad),
                             message.partition(), message.offset()))

        def handleInputRows(self, key: Any, rows: Iterator[pd.DataFrame],
                            timerValues: Any) -> Iterator[pd.DataFrame]:
            frame = pd.concat(list(rows), ignore_index=True)
            frame = frame.sort_values(["partition", "offset"], kind="stable")
            self.out = []
            records = [Record(topic, int(p), int(o), k, v, int(t)) for p, o, k, v, t in zip(
                frame["partition"], frame["offset"], frame["key"], frame["value"],
                frame["ts_ms"])]
            series = key[0]
            if series is None or series != series:  # messages that could not be decoded
                for record, reason, error in zip(records, frame["reason"], frame["error"]):
                    self._dead(record, BadMessage(reason, error))
            else:
                self._score(series, frame, records)
            yield pd.DataFrame(self.out, columns=["topic", "key", "value", "reason", "error",
                                                  "src_partition", "src_offset"])

        def _score(self, series: str, frame: pd.DataFrame, records: list[Any]) -> None:
            if self.state.exists():
                state = SeriesState.from_bytes(self.model, self.state.get()[0])
            else:
                try:
                    state = SeriesState(self.model, series, records[0].partition())
                except DataError as error:  # a bundle without this series (and no fallback)
                    for record in records:
                        self._dead(record, BadMessage("series", str(error)))
                    return
            whens = _times(frame)
            values = frame[[f"c{j}" for j in range(len(self.model.channels_))]]
            group = [(r, r.partition(), r.offset(), w, v)
                     for r, w, v in zip(records, whens, values.to_numpy().tolist())]
            times = parse_times(whens).tolist()
            if self.scoring.take(state, group, times):
                self.state.update((state.to_bytes(),))

        def close(self) -> None:
            pass

    return SeriesProcessor()


def _times(frame: pd.DataFrame) -> list[Any]:
    """Each decoded row's time as the message gave it (text, a number, or None)."""
    whens = frame["time_text"].astype(object).where(frame["time_text"].notna(), None).tolist()
    for column, read in (("time_int", int), ("time_json", json.loads)):
        given = frame[column].notna().to_numpy()
        if given.any():
            values = frame[column].to_numpy(dtype=object)
            for i in np.flatnonzero(given).tolist():
                whens[i] = read(values[i])
    return whens


# -- write (on the driver) ---------------------------------------------------------------------
class KafkaQuery:
    """The ``foreachBatch`` sink: a micro-batch's rows in one Kafka transaction with its commit
    marker, a replayed batch skipped (see the module docstring). ``written`` counts the
    messages committed by this process; ``skipped`` the batches found already committed."""

    def __init__(self, config: Any, checkpoint: str) -> None:
        self.config = config
        self.checkpoint = checkpoint
        self.producer: Any = None
        self.query_id: str | None = None
        self.done = -1  # the last batch id whose transaction committed
        self.written = self.skipped = 0

    def __call__(self, batch: Any, batch_id: int) -> None:
        if self.producer is None:
            self._connect(batch.sparkSession)
        if batch_id <= self.done:  # committed before a crash, replayed by Spark: done already
            self.skipped += 1
            log.info("batch %d was committed before the restart; not written again", batch_id)
            # Still run it, writing nothing: its state stores must commit this batch's state
            # (Spark 4 fails a foreachBatch query whose batch leaves a store uncommitted).
            batch.write.format("noop").mode("append").save()
            return
        table = batch.toArrow()
        ck = require("confluent_kafka", "stream", "vigil stream --engine spark")
        p, c = self.producer, self.config
        p.begin_transaction()
        try:
            columns = table.to_pydict() if table.num_rows else {}
            for i in range(table.num_rows):
                topic, value = columns["topic"][i], columns["value"][i]
                key = columns["key"][i]
                if columns["reason"][i] is not None:
                    from vigil.engines.stream.series import Record

                    origin = Record(c.input_topic, columns["src_partition"][i],
                                    columns["src_offset"][i], key, value, -1)
                    headers = dead_letter_headers(
                        origin, BadMessage(columns["reason"][i], columns["error"][i]))
                    p.produce(topic, value, key, headers=headers)
                else:
                    p.produce(topic, value, key)
                if i % 10_000 == 9_999:
                    p.poll(0)
            marker = json.dumps({"query": self.query_id, "batch": int(batch_id)}).encode()
            p.produce(_commits_topic(c), marker, self.query_id.encode())
            p.commit_transaction(60)
        except ck.KafkaException as error:
            if error.args[0].txn_requires_abort():
                p.abort_transaction(60)
            from vigil.engines.stream.worker import KafkaFailure

            raise KafkaFailure(f"writing micro-batch {batch_id} failed, nothing of it was "
                               f"committed: {error}") from None
        self.done = batch_id
        self.written += table.num_rows

    def _connect(self, spark: Any) -> None:
        ck = require("confluent_kafka", "stream", "vigil stream --engine spark")
        c = self.config
        self.query_id = _query_id(spark, self.checkpoint)
        common = _producer_settings({"bootstrap.servers": c.bootstrap, **c.kafka})
        self.producer = ck.Producer({**common, "transactional.id": f"vigil-spark.{self.query_id}",
                                     "enable.idempotence": True, "linger.ms": 5})
        self.producer.init_transactions(60)  # fences a killed driver's producer, aborts its txn
        self.done = _last_committed(ck, c, self.query_id)

    def close(self) -> None:
        if self.producer is not None:
            self.producer.flush(10)


def _query_id(spark: Any, checkpoint: str) -> str:
    """The query's id, which Spark keeps in the checkpoint's ``metadata`` file (read through
    Spark, so a checkpoint on HDFS or S3 works as a local one)."""
    try:
        line = spark.read.text(f"{checkpoint.rstrip('/')}/metadata").first()[0]
        return str(json.loads(line)["id"])
    except Exception as error:  # a missing file is a Spark AnalysisException
        raise ConfigError(f"cannot read the query id from checkpoint {checkpoint!r}: "
                          f"{str(error)[:200]}") from None


def _last_committed(ck: Any, config: Any, query_id: str) -> int:
    """The last batch id committed for this query, from the commits topic (-1 when none)."""
    from vigil.engines.stream.worker import read_latest

    topic = _commits_topic(config)
    meta = ck.admin.AdminClient({"bootstrap.servers": config.bootstrap,
                                 **_producer_settings(config.kafka)}).list_topics(topic, 10)
    partitions = list(meta.topics[topic].partitions) if topic in meta.topics else []
    best = -1
    for value in read_latest(ck, config.bootstrap, topic, partitions, dict(config.kafka)):
        record = json.loads(value)
        if record.get("query") == query_id:
            best = max(best, int(record["batch"]))
    return best

