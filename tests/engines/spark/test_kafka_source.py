"""The ``vigil-kafka`` source reads a topic in Spark Structured Streaming: every committed record
exactly once, in offset ranges that survive a restart from the checkpoint, and never a record of
an aborted transaction."""

import uuid

import pytest
from confluent_kafka import Producer

from vigil.engines.spark.kafka_source import register


def produce(bootstrap, topic, values, partitions=2, transactional=False):
    """Write ``values`` round-robin over the partitions; with ``transactional``, in
    transactions of 50 where every third one is aborted. The values that were committed."""
    settings = {"bootstrap.servers": bootstrap, "linger.ms": 5}
    if not transactional:
        producer = Producer(settings)
        for i, value in enumerate(values):
            producer.produce(topic, value.encode(), partition=i % partitions)
        producer.flush(10)
        return list(values)
    producer = Producer({**settings, "transactional.id": f"test-{uuid.uuid4().hex[:8]}"})
    producer.init_transactions(10)
    kept = []
    for k in range(0, len(values), 50):
        chunk = values[k:k + 50]
        producer.begin_transaction()
        for i, value in enumerate(chunk):
            producer.produce(topic, value.encode(), partition=i % partitions)
        if (k // 50) % 3 == 0:
            producer.abort_transaction(10)
        else:
            producer.commit_transaction(10)
            kept += chunk
    return kept


def run_to_end(spark, reader, checkpoint):
    """Run a query over everything in the topic now (Trigger.AvailableNow); the rows of each
    micro-batch, in order."""
    batches = []
    query = (reader.load().writeStream
             .foreachBatch(lambda df, _: batches.append(df.collect()))
             .option("checkpointLocation", str(checkpoint))
             .trigger(availableNow=True).start())
    query.awaitTermination(120)
    assert query.exception() is None
    return batches


@pytest.fixture
def kafka(spark, broker):
    """``kafka(topic, **options)``: a ``vigil-kafka`` stream reader of ``topic``."""
    register(spark)

    def reader(topic, **options):
        r = (spark.readStream.format("vigil-kafka")
             .option("kafka.bootstrap.servers", broker.bootstrap).option("subscribe", topic))
        for key, value in options.items():
            r = r.option(key, str(value))
        return r

    return reader


def test_every_committed_record_once_and_no_aborted_one(kafka, spark, broker, topic, tmp_path):
    name = topic(2)
    plain = produce(broker.bootstrap, name, [f"p{i}" for i in range(1500)])
    committed = produce(broker.bootstrap, name, [f"t{i}" for i in range(900)], transactional=True)
    batches = run_to_end(spark, kafka(name, maxOffsetsPerTrigger=600), tmp_path / "ck")
    values = [row.value.decode() for batch in batches for row in batch]
    assert sorted(values) == sorted(plain + committed)  # each once; aborted ones never
    assert len(batches) >= 4  # maxOffsetsPerTrigger splits the backlog
    rows = [row for batch in batches for row in batch]
    assert {row.topic for row in rows} == {name} and {row.partition for row in rows} == {0, 1}
    for p in (0, 1):  # within a partition, offsets rise through the micro-batches
        offsets = [row.offset for row in rows if row.partition == p]
        assert offsets == sorted(offsets) and len(set(offsets)) == len(offsets)
    assert all(row.timestamp is not None for row in rows)


def test_a_restarted_query_goes_on_from_its_checkpoint(kafka, spark, broker, topic, tmp_path):
    name = topic(2)
    first = produce(broker.bootstrap, name, [f"a{i}" for i in range(300)])
    seen = run_to_end(spark, kafka(name), tmp_path / "ck")
    second = produce(broker.bootstrap, name, [f"b{i}" for i in range(200)], transactional=True)
    seen += run_to_end(spark, kafka(name), tmp_path / "ck")
    values = [row.value.decode() for batch in seen for row in batch]
    assert sorted(values) == sorted(first + second)


def test_starting_offsets_latest_and_per_partition(kafka, spark, broker, topic, tmp_path):
    name = topic(2)
    produce(broker.bootstrap, name, [f"old{i}" for i in range(40)])
    batches = run_to_end(spark, kafka(name, startingOffsets="latest"), tmp_path / "latest")
    assert sum(len(b) for b in batches) == 0
    given = f'{{"{name}": {{"0": 15, "1": -2}}}}'
    batches = run_to_end(spark, kafka(name, startingOffsets=given), tmp_path / "json")
    rows = [row for batch in batches for row in batch]
    assert len([r for r in rows if r.partition == 0]) == 5  # offsets 15..19
    assert len([r for r in rows if r.partition == 1]) == 20


def test_bad_options_are_one_clear_sentence(kafka, spark, broker, topic, tmp_path):
    from pyspark.errors import StreamingQueryException

    with pytest.raises(Exception, match="needs option subscribe"):
        spark.readStream.format("vigil-kafka").option(
            "kafka.bootstrap.servers", broker.bootstrap).load()
    with pytest.raises(Exception, match="maxOffsetsPerTrigger must be a whole number"):
        kafka(topic(), maxOffsetsPerTrigger="many").load()
    with pytest.raises(Exception, match="startingOffsets must be earliest, latest or JSON"):
        kafka(topic(), startingOffsets="yesterday").load()
    query = (kafka("no-such-topic").load().writeStream.foreachBatch(lambda df, _: None)
             .option("checkpointLocation", str(tmp_path / "missing")).start())
    with pytest.raises(StreamingQueryException, match="'no-such-topic'"):
        query.awaitTermination(60)
