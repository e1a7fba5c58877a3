"""Workers killed with SIGKILL at random moments mid-stream, 20 times over one run, and
restarted each time: every input offset still gets exactly one committed result under
exactly-once (at least one under at-least-once), with the scores of batch scoring.

Exactly-once runs on librdkafka's built-in mock cluster, which implements transactions and
hides aborted ones from read-committed consumers; the embedded broker (tansu 0.6) accepts
transactions but shows aborted records too, so it cannot tell an aborted result from a
committed one. At-least-once runs on the embedded broker.
"""

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

import vigil
from stream_data import read_all, sensor_series
from vigil.io import from_frame

KILLS = int(__import__("os").environ.get("VIGIL_TEST_KILLS", "20"))
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mock_cluster():
    """librdkafka's mock cluster: it lives as long as the client that made it."""
    holder = Producer({"bootstrap.servers": "unused:1", "test.mock.num.brokers": 1,
                       "log_level": 0})
    broker = next(iter(holder.list_topics(timeout=10).brokers.values()))
    yield f"{broker.host}:{broker.port}"
    del holder


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    data = sensor_series(rows=500)
    model = vigil.Model("subsequence_pca", window=20).fit(
        from_frame(data.groupby("pump").head(200), series_column="pump",
                   time_column="timestamp"))
    path = tmp_path_factory.mktemp("crash") / "model.vigil"
    model.save(path)
    return model, path, data


def _feed(bootstrap, topic, data, rate):
    """Write the readings at ``rate`` per second, keyed by pump, while workers come and go."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True,
                         "log_level": 0})
    start = time.monotonic()
    for i, row in enumerate(data.itertuples(index=False)):
        wait = start + i / rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)  # pacing the producer is the point
        producer.produce(topic, json.dumps({
            "timestamp": str(row.timestamp), "temperature": row.temperature,
            "pressure": row.pressure}).encode(), row.pump.encode())
        producer.poll(0)
    producer.flush(30)


def _worker(bootstrap, model_path, source, sink, group, exactly_once, session_ms, final=None):
    args = [sys.executable, "-m", "vigil", "stream", "--model", str(model_path), "--bootstrap",
            bootstrap, "--input", source, "--output", sink, "--emit", "all", "--group", group,
            "--batch-size", "50", "--commit-interval-ms", "200", "--kafka-config",
            f"session.timeout.ms={session_ms}", "--kafka-config", "heartbeat.interval.ms=100",
            "--kafka-config", "transaction.timeout.ms=3000"]
    if exactly_once:
        args.append("--exactly-once")
    if final is not None:  # the last worker: ends the series, its log to a file
        args += ["--idle-exit", "2", "--flush-at-exit"]
        return subprocess.Popen(args, stderr=final.open("w"), text=True)
    return subprocess.Popen(args, stderr=subprocess.PIPE, text=True)


def _wait_assigned(process, timeout=120):
    """Block until the worker logs its partition assignment (or exits)."""
    found = threading.Event()

    def watch():
        for line in process.stderr:
            if "assigned partitions" in line:
                found.set()
        found.set()

    threading.Thread(target=watch, daemon=True).start()
    assert found.wait(timeout), "the worker was never assigned partitions"


@pytest.mark.parametrize("delivery", ["exactly-once", "at-least-once"])
def test_sigkilled_workers_lose_nothing_and_score_as_batch(delivery, mock_cluster, broker,
                                                           topic, group, saved_model, tmp_path):
    exactly_once = delivery == "exactly-once"
    model, path, data = saved_model
    if exactly_once:  # the mock cluster creates topics as they are first used, 4 partitions
        bootstrap, session_ms = mock_cluster, 3000
        source, sink, partitions = f"in-{group}", f"out-{group}", range(4)
    else:
        bootstrap, session_ms = broker.bootstrap, 1000
        source, sink, partitions = topic(2), topic(2), range(2)
    feeder = threading.Thread(target=_feed, args=(bootstrap, source, data, 150))
    feeder.start()
    rng = np.random.default_rng(7)
    for _ in range(KILLS):
        worker = _worker(bootstrap, path, source, sink, group, exactly_once, session_ms)
        _wait_assigned(worker)
        time.sleep(rng.uniform(0.05, 1.0))  # a random moment of its work
        worker.kill()
        worker.wait()
    feeder.join()
    log = tmp_path / "last.log"
    last = _worker(bootstrap, path, source, sink, group, exactly_once, session_ms, final=log)
    assert last.wait(120) == 0, log.read_text()[-2000:]

    results = pd.DataFrame([json.loads(v) for *_, v, _ in read_all(bootstrap, sink)])
    keys = results[["partition", "offset"]]
    assert len(keys.drop_duplicates()) == len(data)  # every input offset has a result
    if exactly_once:
        assert not keys.duplicated().any()  # and only one
    # the results (one per input offset) are batch scoring's, bit for bit
    unique = results.drop_duplicates(["partition", "offset"])
    streamed = unique.set_index(["series", "time"]).sort_index()
    batch = model.detect(from_frame(data, series_column="pump", time_column="timestamp"))
    batch.index = pd.MultiIndex.from_arrays([data["pump"], data["timestamp"].astype(str)],
                                            names=["series", "time"])
    batch = batch.sort_index()
    assert streamed.index.equals(batch.index)
    assert np.array_equal(streamed["score"].to_numpy(), batch["score"].to_numpy())
    assert np.array_equal(streamed["is_anomaly"].to_numpy(), batch["is_anomaly"].to_numpy())
    if exactly_once:
        return  # the mock cluster reports no group offsets to another client (measured here)
    # the committed group offsets cover the input exactly
    probe = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "log_level": 0,
                      "isolation.level": "read_committed"})
    committed = probe.committed([TopicPartition(source, p) for p in partitions], timeout=10)
    probe.close()
    by_partition = unique.groupby("partition")["offset"].max() + 1
    assert {tp.partition: tp.offset for tp in committed if tp.offset >= 0} == \
        by_partition.to_dict()
