"""Small labelled sensor series to stream, consumer groups and worker settings (the broker and
its topics come from ``tests/engines/conftest.py``)."""

import itertools
import os
import uuid

import pytest

# vigil[stream] is in the dev extra: missing, these tests fail, never skip
from confluent_kafka import Consumer, TopicPartition  # noqa: E402

from stream_data import read_all, sensor_series  # noqa: E402, F401

#: Fast group joins for tests: tansu assigns partitions after about one session timeout.
FAST_GROUPS = {"session.timeout.ms": "1000", "heartbeat.interval.ms": "100"}


@pytest.fixture
def read_topic(broker):
    """``read_topic(name, committed=True)``: see :func:`stream_data.read_all`."""
    return lambda name, committed=True: read_all(broker.bootstrap, name, committed)


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
