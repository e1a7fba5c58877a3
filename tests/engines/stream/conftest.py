"""One embedded Kafka-protocol broker (tansu) for the whole test run, unique topics per test,
and small labelled sensor series to stream."""

import itertools
import os
import uuid

import pytest

confluent_kafka = pytest.importorskip("confluent_kafka")  # vigil[stream] is in the dev extra
from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402

from stream_data import sensor_series  # noqa: E402
from vigil.engines.stream import EmbeddedBroker  # noqa: E402

#: Fast group joins for tests: tansu assigns partitions after about one session timeout.
FAST_GROUPS = {"session.timeout.ms": "1000", "heartbeat.interval.ms": "100"}


@pytest.fixture(scope="session")
def broker():
    """A tansu broker on loopback, stopped by its process handle at the end of the run."""
    with EmbeddedBroker() as running:
        yield running


@pytest.fixture
def topic(broker):
    """``topic(partitions)``: a new topic with a unique name, created with retention set."""
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})

    def make(partitions=1):
        name = f"t-{uuid.uuid4().hex[:10]}"
        admin.create_topics([NewTopic(name, partitions, 1,
                                      config={"retention.ms": "-1"})])[name].result(10)
        return name

    return make


@pytest.fixture
def read_topic(broker):
    """``read_topic(name, committed=True)``: see :func:`read_all`."""
    return lambda name, committed=True: read_all(broker.bootstrap, name, committed)


def read_all(bootstrap, name, committed=True):
    """Every message of a topic, read to its end by consumer position and then until a fetch
    is empty (tansu reports a batch's high watermark as its first offset + 1); a list of
    (partition, offset, key, value, headers) in partition and offset order."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    partitions = list(admin.list_topics(name, timeout=10).topics[name].partitions)
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4().hex}",
                       "enable.auto.commit": False, "auto.offset.reset": "earliest",
                       "isolation.level": "read_committed" if committed else "read_uncommitted"})
    out = []
    try:
        highs = {p: reader.get_watermark_offsets(TopicPartition(name, p), timeout=10)[1]
                 for p in partitions}
        reader.assign([TopicPartition(name, p, 0) for p in partitions])
        while True:
            batch = reader.consume(1000, 0.3)
            out += [(m.partition(), m.offset(), m.key(), m.value(), m.headers())
                    for m in batch if m.error() is None]
            positions = reader.position([TopicPartition(name, p) for p in partitions])
            if not batch and all(tp.offset >= highs[tp.partition] or highs[tp.partition] == 0
                                 for tp in positions):
                return sorted(out, key=lambda r: (r[0], r[1]))
    finally:
        reader.close()


@pytest.fixture
def pumps():
    """Three interleaved pump series (see :func:`stream_data.sensor_series`)."""
    return sensor_series()


_counter = itertools.count()


@pytest.fixture
def group():
    """A new consumer group name."""
    return f"g-{os.getpid()}-{next(_counter)}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def config(broker, group):
    """``config(input, output, **settings)``: a StreamConfig on the test broker, fast joins."""
    from vigil.engines.stream import StreamConfig

    def make(input_topic, output_topic, **settings):
        settings.setdefault("group", group)
        settings.setdefault("kafka", dict(FAST_GROUPS))
        return StreamConfig(broker.bootstrap, input_topic, output_topic, **settings)

    return make
