"""The ``vigil stream`` worker: consume sensor readings from Kafka, score each series with a
saved model, publish the results, and lose or repeat nothing across crashes and rebalances.

The loop, per batch (``consume`` returns up to ``batch_size`` messages, waiting at most
``max_latency_ms``):

1. decode every message (:mod:`.messages`); one that cannot be scored goes to the dead-letter
   topic with the reason in its headers, and the worker goes on;
2. group the rows by series and feed each series' :class:`~vigil.scoring.StreamScorer` in one
   vectorised call; the rows whose result is final come back (at once for a point-wise method,
   after their lookahead rows for a windowed one, after the alarm rules decide for a flag);
3. publish them (``emit``: every row, only anomalies, or one message as an event opens and one
   as it closes), each with its input's topic, partition and offset.

Every ``commit_interval_ms`` the worker commits: each touched series' state (:mod:`.state`) goes
to the changelog topic, keyed by series, on the partition of its input; then the input offsets.

- **At-least-once** (default): results are acknowledged by the broker, then the states, then the
  offsets are committed. A crash before the offsets replays some messages: their results may be
  published twice (with the same offsets, so a consumer can drop the repeats), never lost.
- **Exactly-once** (``exactly_once=True``): results, states and input offsets go in one Kafka
  transaction; consumers of the output read committed. An aborted transaction rewinds the
  worker to the last committed states and offsets.

When partitions are assigned the worker reads their changelog partitions and resumes each
series where the last commit left it; a message at or before a series' restored offset is
already in its state and is skipped. So after a crash, a restart or a rebalance the scores equal
an uninterrupted run's, and so equal batch scoring of the same rows.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from vigil._optional import require
from vigil.engines.stream.messages import (BadMessage, Decoder, dead_letter_headers, encode,
                                           parse_times)
from vigil.engines.stream.metrics import Metrics
from vigil.engines.stream.series import SeriesScoring
from vigil.engines.stream.state import SeriesState
from vigil.errors import ConfigError, DataError, VigilError

__all__ = ["StreamConfig", "Worker", "EMIT_MODES"]

log = logging.getLogger("vigil.stream")
EMIT_MODES = ("anomalies", "all", "events")


class KafkaFailure(VigilError, RuntimeError):
    """The broker refused or lost what the worker wrote; nothing was committed."""


@dataclass
class StreamConfig:
    """Where a worker reads and writes, and how it delivers (see ``vigil stream --help``)."""

    bootstrap: str
    input_topic: str
    output_topic: str
    group: str = "vigil"
    emit: str = "anomalies"
    exactly_once: bool = False
    dead_letter_topic: str | None = None  # default: <input>.dead-letter
    changelog_topic: str | None = None  # default: <group>.<input>.changelog
    #: Stable across restarts, so a restarted worker fences its killed predecessor and aborts
    #: its open transaction at once; two live workers need two ids. Default:
    #: vigil.<group>.<input>.<host name>.
    transactional_id: str | None = None
    columns: list[str] | None = None
    batch_size: int = 10_000
    max_latency_ms: int = 20
    commit_interval_ms: int = 1000
    max_message_bytes: int = 1 << 20
    #: Seconds of event time a row may arrive behind its series' newest row and still be
    #: scored in its place: rows are held that long (in event time) and released in time
    #: order. 0: no holding, a row older than its series' last one is a dead letter.
    allowed_lateness: float = 0.0
    #: Most series one worker holds state for: messages of a series beyond it are dead letters
    #: (reason ``series``), so a flood of new keys cannot grow the memory without bound.
    max_series: int = 100_000
    kafka: dict[str, Any] = field(default_factory=dict)  # more librdkafka settings

    def __post_init__(self) -> None:
        if self.emit not in EMIT_MODES:
            raise ConfigError(f"emit must be one of {', '.join(EMIT_MODES)}. Got {self.emit!r}.")
        for name in ("batch_size", "max_latency_ms", "commit_interval_ms", "max_message_bytes",
                     "max_series"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be 1 or more. Got {getattr(self, name)}.")
        if not float(self.allowed_lateness) >= 0:
            raise ConfigError(f"allowed_lateness must be 0 or more seconds. Got "
                              f"{self.allowed_lateness}.")
        if self.dead_letter_topic is None:
            self.dead_letter_topic = f"{self.input_topic}.dead-letter"
        if self.changelog_topic is None:
            self.changelog_topic = f"{self.group}.{self.input_topic}.changelog"
        if self.transactional_id is None:
            self.transactional_id = f"vigil.{self.group}.{self.input_topic}.{socket.gethostname()}"


class Worker:
    """A Kafka consumer that scores with ``model`` (a fitted :class:`vigil.Model`).

    ``run()`` loops until ``stop()`` (SIGTERM and SIGINT call it when ``run`` is on the main
    thread), ``max_messages`` input messages, or ``idle_exit`` seconds without one; it then
    commits and returns the :class:`Metrics`. ``flush_at_exit`` ends every series at exit
    (their last rows are scored as a file's last rows are, and published), for a finite replay;
    otherwise those rows stay in the state for the next run.
    """

    def __init__(self, model: Any, config: StreamConfig,
                 on_result: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.ck = require("confluent_kafka", "stream", "vigil stream")
        require("confluent_kafka.admin", "stream", "vigil stream")
        model._require_fitted()
        self.model = model
        self.config = config
        self.on_result = on_result
        self.decoder = Decoder(model.channels_, model.time_column_, model.series_column_,
                               config.columns, config.max_message_bytes)
        self.metrics = Metrics()
        self.scoring = SeriesScoring(model.channels_, config.emit, config.input_topic,
                                     config.allowed_lateness, self.metrics, self._emit,
                                     self._dead_letter)
        if self.scoring.lateness_ns and model.time_column_ is None:
            raise ConfigError("allowed lateness needs a time in every row, and this model was "
                              "trained without a time column (its rows are ordered by arrival).")
        self.series: dict[str, SeriesState] = {}
        self.by_partition: dict[int, set[str]] = {}
        self._committed: dict[str, bytes] = {}  # the last committed record of each series
        self._dirty: set[str] = set()
        self._offsets: dict[int, int] = {}  # partition -> next offset, consumed, uncommitted
        self._stopping = threading.Event()
        self._delivery_errors: list[str] = []
        self._in_txn = False
        self._assigned_at: float | None = None
        self.consumer: Any = None
        self.producer: Any = None

    # -- lifecycle -------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ask the loop to finish its batch, commit and return (thread- and signal-safe)."""
        self._stopping.set()

    def run(self, max_messages: int | None = None, idle_exit: float | None = None,
            flush_at_exit: bool = False, report: Callable[[Metrics], None] | None = None,
            report_every: float = 10.0) -> Metrics:
        """Consume, score and publish until stopped (see the class docstring)."""
        self._connect()
        restore = self._signals()
        last_message = last_commit = last_report = time.monotonic()
        try:
            while not self._stopping.is_set():
                limit = self.config.batch_size
                if max_messages is not None:
                    limit = min(limit, max_messages - self.metrics.consumed)
                    if limit <= 0:
                        break
                messages = self.consumer.consume(limit, self.config.max_latency_ms / 1000)
                now = time.monotonic()
                if messages:
                    if self.metrics.first_at is None:
                        self.metrics.first_at = now
                    self._begin()
                    self._batch(messages)
                    last_message = self.metrics.last_at = time.monotonic()
                elif idle_exit is not None and self._idle(now, last_message, idle_exit):
                    break
                if self._offsets and (now - last_commit) * 1000 >= self.config.commit_interval_ms:
                    self._commit()
                    last_commit = time.monotonic()
                if report is not None and now - last_report >= report_every:
                    self._lag()
                    report(self.metrics)
                    last_report = now
            if flush_at_exit:
                self._begin()
                self._flush_all()
            self._commit()
        finally:
            restore()
            self._close()
        return self.metrics

    def _idle(self, now: float, last_message: float, idle_exit: float) -> bool:
        """No message for ``idle_exit`` seconds since the last one or the last assignment (a
        group takes seconds to join); a worker never assigned a partition waits 30 s more."""
        if self._assigned_at is None:
            return now - last_message >= idle_exit + 30
        return now - max(last_message, self._assigned_at) >= idle_exit

    def _signals(self) -> Callable[[], None]:
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
        for s in previous:
            signal.signal(s, lambda *_: self.stop())
        return lambda: [signal.signal(s, h) for s, h in previous.items()]

    def _connect(self) -> None:
        ck, c = self.ck, self.config
        common = {"bootstrap.servers": c.bootstrap, "logger": log, **c.kafka}
        self._ensure_topics(_not_consumer(common))
        self.producer = ck.Producer({
            "enable.idempotence": True, "linger.ms": 5, "compression.type": "none",
            **({"transactional.id": c.transactional_id} if c.exactly_once else {}),
            **_not_consumer(common)})
        if c.exactly_once:
            self.producer.init_transactions(30)
        self.consumer = ck.Consumer({
            "group.id": c.group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "isolation.level": "read_committed", "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500, "enable.partition.eof": False,
            "fetch.wait.max.ms": 10, **common})  # a caught-up worker must not wait 500 ms
        self.consumer.subscribe([c.input_topic], on_assign=self._on_assign,
                                on_revoke=self._on_revoke, on_lost=self._on_revoke)

    def _close(self) -> None:
        if self._in_txn:
            self.producer.abort_transaction(10)
            self._in_txn = False
        if self.consumer is not None:
            self.consumer.close()
        if self.producer is not None:
            self.producer.flush(10)

    def _ensure_topics(self, common: dict[str, Any]) -> None:
        c = self.config
        self._partitions, topics = ensure_topics(self.ck, common, c.input_topic, {
            c.output_topic: {}, c.dead_letter_topic: {},
            c.changelog_topic: {"cleanup.policy": "compact"}})
        if (c.changelog_topic in topics
                and len(topics[c.changelog_topic].partitions) < self._partitions):
            raise ConfigError(f"the changelog topic {c.changelog_topic!r} has fewer partitions "
                              f"than {c.input_topic!r}; give it {self._partitions}.")

    # -- assignment ------------------------------------------------------------------------------
    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        started = time.monotonic()
        numbers = [tp.partition for tp in partitions]
        records = self._read_changelog(numbers)
        for record in records:
            state = SeriesState.from_bytes(self.model, record)
            self._adopt(state)
            self._committed[state.series] = record
        for number in numbers:
            self.by_partition.setdefault(number, set())
        self.metrics.restored += len(records)
        self._assigned_at = time.monotonic()
        log.info("assigned partitions %s of %s; %d series state(s) restored in %.2f s",
                 numbers, self.config.input_topic, len(records), time.monotonic() - started)

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        if self._offsets or self._dirty:  # hand over what was scored: the next owner resumes
            try:
                self._commit()
            except Exception as error:  # lost partitions cannot be committed; replay instead
                log.warning("commit at revocation failed (%s); the next owner replays", error)
        for tp in partitions:
            for name in self.by_partition.pop(tp.partition, set()):
                self.series.pop(name, None)
                self.metrics.state_bytes.pop(name, None)
                self._committed.pop(name, None)
                self._dirty.discard(name)
            self._offsets.pop(tp.partition, None)
        if not self.by_partition:  # mid-rebalance: idle time counts from the next assignment
            self._assigned_at = None
        log.info("revoked partitions %s", [tp.partition for tp in partitions])

    def _adopt(self, state: SeriesState) -> None:
        self.series[state.series] = state
        self.by_partition.setdefault(state.partition, set()).add(state.series)

    def _read_changelog(self, partitions: list[int]) -> list[bytes]:
        """The latest record of each series in these changelog partitions, read to their end
        by consumer position (transaction markers and compaction gaps take offsets too)."""
        return read_latest(self.ck, self.config.bootstrap, self.config.changelog_topic,
                           partitions, {"logger": log, **self.config.kafka})

    # -- one batch -------------------------------------------------------------------------------
    def _begin(self) -> None:
        if self.config.exactly_once and not self._in_txn:
            self.producer.begin_transaction()
            self._in_txn = True

    def _batch(self, messages: list[Any]) -> None:
        rows: dict[str, list[Any]] = {}
        for m in messages:
            error = m.error()
            if error is not None:
                if error.fatal():
                    raise KafkaFailure(f"the consumer failed: {error}")
                log.warning("consumer: %s", error)
                continue
            self.metrics.consumed += 1
            partition, offset = m.partition(), m.offset()
            self._offsets[partition] = offset + 1
            try:
                series, when, values = self.decoder.decode(m.key(), m.value())
            except BadMessage as bad:
                self._dead_letter(m, bad)
                continue
            rows.setdefault(series, []).append((m, partition, offset, when, values))
        raw_times = [r[3] for group in rows.values() for r in group]
        times = iter(parse_times(raw_times).tolist())
        for series, group in rows.items():
            self._score(series, group, [next(times) for _ in group])
        self.producer.poll(0)

    def _score(self, series: str, group: list[Any], times: list[int]) -> None:
        state = self.series.get(series)
        if state is None:
            if len(self.series) >= self.config.max_series:
                bad = BadMessage("series", f"this worker already holds {len(self.series)} "
                                 f"series (max_series); series {series[:80]!r} is not scored")
                for m, *_ in group:
                    self._dead_letter(m, bad)
                return
            try:
                state = SeriesState(self.model, series, group[0][1])
            except DataError as error:  # a bundle without this series (and no fallback)
                for m, *_ in group:
                    self._dead_letter(m, BadMessage("series", str(error)))
                return
            self._adopt(state)
        if self.scoring.take(state, group, times):
            self._dirty.add(state.series)

    def _flush_all(self) -> None:
        for state in self.series.values():
            if self.scoring.flush(state):
                self._dirty.add(state.series)

    def _emit(self, key: bytes, message: dict[str, Any]) -> None:
        self.producer.produce(self.config.output_topic, encode(message), key,
                              on_delivery=self._delivered)
        if self.on_result is not None:
            self.on_result(message)

    def _dead_letter(self, message: Any, bad: BadMessage) -> None:
        self.metrics.dead_letters += 1
        self.producer.produce(self.config.dead_letter_topic, message.value(), message.key(),
                              headers=dead_letter_headers(message, bad),
                              on_delivery=self._delivered)

    def _delivered(self, error: Any, message: Any) -> None:
        if error is not None:
            self._delivery_errors.append(f"{message.topic()}: {error}")

    # -- commit ----------------------------------------------------------------------------------
    def _commit(self) -> None:
        ck, c = self.ck, self.config
        records = {name: self.series[name].to_bytes() for name in self._dirty
                   if name in self.series}
        offsets = [ck.TopicPartition(c.input_topic, p, o) for p, o in self._offsets.items()]
        if not records and not offsets:
            return
        if not c.exactly_once:
            self._flush()  # results acknowledged before the states ...
        for name, record in records.items():
            self.producer.produce(c.changelog_topic, record, name.encode(),
                                  partition=self.series[name].partition,
                                  on_delivery=self._delivered)
        if c.exactly_once:
            self._begin()
            try:
                if offsets:
                    self.producer.send_offsets_to_transaction(
                        offsets, self.consumer.consumer_group_metadata(), 30)
                self.producer.commit_transaction(30)
            except ck.KafkaException as error:
                self._in_txn = False
                if error.args[0].txn_requires_abort():
                    self.producer.abort_transaction(30)
                    self._rewind(str(error))
                    return
                raise KafkaFailure(f"the transaction failed: {error}") from None
            self._in_txn = False
        else:
            self._flush()  # ... and the states before the offsets
            if offsets:
                self.consumer.commit(offsets=offsets, asynchronous=False)
        self._committed.update(records)
        self.metrics.state_bytes.update((name, len(r)) for name, r in records.items())
        self._dirty.clear()
        self._offsets.clear()
        self.metrics.commits += 1

    def _flush(self) -> None:
        remaining = self.producer.flush(30)
        if remaining or self._delivery_errors:
            errors, self._delivery_errors = self._delivery_errors, []
            raise KafkaFailure(f"{remaining} message(s) not acknowledged within 30 s"
                               if remaining else f"the broker refused results: {errors[0]}"
                               f"{f' (and {len(errors) - 1} more)' if len(errors) > 1 else ''}")

    def _rewind(self, why: str) -> None:
        """After an aborted transaction: back to the last committed states and offsets."""
        log.warning("transaction aborted (%s); rewinding to the last commit", why)
        assignment = self.consumer.assignment()
        for name in self._dirty:
            state = self.series.pop(name, None)
            if state is not None:
                self.by_partition.get(state.partition, set()).discard(name)
            if name in self._committed:
                self._adopt(SeriesState.from_bytes(self.model, self._committed[name]))
        self._dirty.clear()
        self._offsets.clear()
        for tp in self.consumer.committed(assignment, timeout=30):
            if tp.offset >= 0:
                self.consumer.seek(tp)
            else:  # nothing committed yet: from the start, as a new group does
                self.consumer.seek(self.ck.TopicPartition(tp.topic, tp.partition,
                                                          self.ck.OFFSET_BEGINNING))

    def _lag(self) -> None:
        """Consumer lag: the high watermarks minus the positions, over the assignment."""
        try:
            lag = 0
            for tp in self.consumer.position(self.consumer.assignment()):
                _, high = self.consumer.get_watermark_offsets(tp, timeout=1, cached=False)
                lag += max(0, high - max(tp.offset, 0))
            self.metrics.lag = lag
        except self.ck.KafkaException:
            pass


def read_latest(ck: Any, bootstrap: str, topic: str, partitions: list[int],
                settings: dict[str, Any], timeout: float = 60.0) -> list[bytes]:
    """The last value of each key in ``partitions`` of ``topic`` (read committed), reading each
    partition from its start to its high watermark by consumer position, then on until a fetch
    comes back empty: some brokers (tansu 0.6) report the watermark of a multi-record batch as
    its first offset + 1, and the rest of that batch is already fetched by then."""
    reader = ck.Consumer({"bootstrap.servers": bootstrap, "group.id": "vigil.restore",
                          "enable.auto.commit": False, "isolation.level": "read_committed",
                          **settings})
    try:
        targets, start = {}, []
        for p in partitions:
            try:
                low, high = reader.get_watermark_offsets(ck.TopicPartition(topic, p), timeout=10)
            except ck.KafkaException as error:
                code = error.args[0].code()
                if code in (ck.KafkaError._UNKNOWN_PARTITION, ck.KafkaError._UNKNOWN_TOPIC,
                            ck.KafkaError.UNKNOWN_TOPIC_OR_PART):
                    continue  # not written yet: nothing to restore
                raise
            if high > low:
                targets[p] = high
                start.append(ck.TopicPartition(topic, p, low))
        if not targets:
            return []
        reader.assign(start)
        latest: dict[bytes, bytes] = {}
        deadline = time.monotonic() + timeout
        behind = True
        while True:
            batch = reader.consume(10_000, 0.2 if not behind else 1.0)
            for m in batch:
                if m.error() is None and m.key() is not None and m.value() is not None:
                    latest[m.key()] = m.value()
            if behind:
                positions = reader.position([ck.TopicPartition(topic, p) for p in targets])
                behind = any(tp.offset < targets[tp.partition] for tp in positions)
            elif not batch:
                return list(latest.values())
            if time.monotonic() > deadline:
                raise KafkaFailure(f"could not read the changelog {topic!r} (partitions "
                                   f"{partitions}) to its end within {timeout:g} s.")
    finally:
        reader.close()


def ensure_topics(ck: Any, common: dict[str, Any], input_topic: str,
                  wanted: dict[str, dict[str, str]]) -> tuple[int, dict[str, Any]]:
    """Check that ``input_topic`` exists and create the ``wanted`` topics that do not (with
    the input's partition count and their config); the input's partition count and the topics
    that were there before (name -> metadata). A ConfigError
    names a broker that cannot be reached or an input topic that is not there."""
    admin = ck.admin.AdminClient(dict(common))
    bootstrap = common.get("bootstrap.servers")
    try:
        topics = admin.list_topics(timeout=10).topics
    except ck.KafkaException as error:
        raise ConfigError(f"cannot reach a Kafka broker at {bootstrap}: {error}") from None
    if input_topic not in topics:
        raise ConfigError(f"topic {input_topic!r} does not exist on {bootstrap} "
                          f"(topics there: {', '.join(sorted(topics)) or 'none'}).")
    partitions = len(topics[input_topic].partitions)
    new = [ck.admin.NewTopic(name, partitions, 1, config={"retention.ms": "-1", **cfg})
           for name, cfg in wanted.items() if name not in topics]
    created = admin.create_topics(new, request_timeout=10) if new else {}
    for name, future in created.items():
        try:
            future.result(15)
        except ck.KafkaException as error:
            if "TOPIC_ALREADY_EXISTS" not in str(error):  # another worker was first
                log.warning("could not create topic %r (%s); relying on the broker to "
                            "create it on first write", name, error)
    return partitions, topics


_CONSUMER_ONLY = ("group.", "session.timeout.ms", "heartbeat.interval.ms", "auto.offset.reset",
                  "enable.auto.commit", "isolation.level", "max.poll.interval.ms", "fetch.",
                  "partition.assignment.strategy", "enable.partition.eof")


def _not_consumer(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings without the consumer-only ones (librdkafka warns about each in a producer)."""
    return {k: v for k, v in settings.items() if not k.startswith(_CONSUMER_ONLY)}
