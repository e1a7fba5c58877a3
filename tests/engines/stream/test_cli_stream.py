"""The Kafka commands as a user runs them: vigil broker, vigil produce, vigil stream."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pandas as pd
import pytest

import vigil
from stream_data import sensor_series
from vigil.engines.stream import Worker
from vigil.engines.stream.metrics import serve_prometheus

VIGIL = [sys.executable, "-m", "vigil"]
FAST = ["--kafka-config", "session.timeout.ms=1000", "--kafka-config",
        "heartbeat.interval.ms=100"]


def _run(*args, **kw):
    return subprocess.run(VIGIL + list(args), capture_output=True, text=True, timeout=120, **kw)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A CSV of two pumps and a robust_zscore model trained on their first 150 rows."""
    folder = tmp_path_factory.mktemp("stream-cli")
    data = sensor_series(names=("pump-1", "pump-2"), rows=300)
    data.to_csv(folder / "pumps.csv", index=False)
    data.groupby("pump").head(150).to_csv(folder / "train.csv", index=False)
    done = _run("train", str(folder / "train.csv"), "--method", "robust_zscore",
                "--series-column", "pump", "-o", str(folder / "model.vigil"), "-q")
    assert done.returncode == 0, done.stderr
    return folder, data


def test_broker_prints_its_address_and_stops_on_sigterm():
    process = subprocess.Popen(VIGIL + ["broker", "--port", "0"], stdout=subprocess.PIPE,
                               text=True)
    try:
        lines = [process.stdout.readline(), process.stdout.readline()]
        host, port = lines[1].strip().split(":")
        assert host == "127.0.0.1" and int(port) > 0 and "Ctrl-C" in lines[0]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(10) == 0


def test_produce_then_stream_scores_as_batch_scoring_does(broker, topic, read_topic, group,
                                                          trained):
    folder, data = trained
    source, sink = topic(2), topic(2)
    sent = _run("produce", str(folder / "pumps.csv"), "--bootstrap", broker.bootstrap,
                "--topic", source, "--series-column", "pump", "-q")
    assert sent.returncode == 0, sent.stderr
    done = _run("stream", "--model", str(folder / "model.vigil"), "--bootstrap",
                broker.bootstrap, "--input", source, "--output", sink, "--emit", "all",
                "--group", group, "--idle-exit", "1", "--flush-at-exit", *FAST)
    assert done.returncode == 0, done.stderr
    assert "Stopped: 600 consumed" in done.stderr
    results = pd.DataFrame([json.loads(v) for *_, v, _ in read_topic(sink)])
    scored = _run("score", str(folder / "pumps.csv"), "--model", str(folder / "model.vigil"),
                  "--out", str(folder / "scores.csv"), "-q")
    assert scored.returncode == 0, scored.stderr
    batch = pd.read_csv(folder / "scores.csv")
    streamed = results.sort_values(["series", "time"])
    batch = batch.sort_values(["pump", "timestamp"])
    assert streamed["series"].tolist() == batch["pump"].tolist()
    np.testing.assert_allclose(streamed["score"], batch["score"], rtol=1e-12)  # CSV rounds
    assert streamed["is_anomaly"].tolist() == batch["is_anomaly"].tolist()


def test_sigterm_drains_commits_and_exits_0(broker, topic, read_topic, group, trained):
    folder, _ = trained
    source, sink = topic(1), topic(1)
    _run("produce", str(folder / "pumps.csv"), "--bootstrap", broker.bootstrap, "--topic",
         source, "--series-column", "pump", "-q")
    worker = subprocess.Popen(
        VIGIL + ["stream", "--model", str(folder / "model.vigil"), "--bootstrap",
                 broker.bootstrap, "--input", source, "--output", sink, "--emit", "all",
                 "--group", group, *FAST], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(read_topic(sink)) < 500 and time.monotonic() < deadline:
        time.sleep(0.2)  # waiting on another process's output: nothing to await but the topic
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0
    assert "Stopped: 600 consumed" in worker.stderr.read()
    from confluent_kafka import Consumer, TopicPartition

    probe = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
    committed = probe.committed([TopicPartition(source, 0)], timeout=10)[0].offset
    probe.close()
    assert committed == 600  # every message consumed was committed before the exit


def test_a_missing_input_topic_is_one_line_and_exit_2(broker, trained):
    folder, _ = trained
    done = _run("stream", "--model", str(folder / "model.vigil"), "--bootstrap",
                broker.bootstrap, "--input", "no-such-topic", "--output", "x")
    assert done.returncode == 2
    assert "topic 'no-such-topic' does not exist" in done.stderr
    assert "Traceback" not in done.stderr


def test_bad_emit_mode_is_a_usage_error(broker, trained):
    folder, _ = trained
    done = _run("stream", "--model", str(folder / "model.vigil"), "--bootstrap",
                broker.bootstrap, "--input", "a", "--output", "b", "--emit", "some")
    assert done.returncode == 2 and "emit must be one of anomalies, all, events" in done.stderr


def test_metrics_are_served_as_prometheus_text(broker, topic, config):
    import socket

    model = vigil.Model("zscore").fit(pd.DataFrame({"temperature": np.sin(np.arange(600))}))
    source = topic(1)
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for v in [0.1, 0.2, 50.0, 50.0, 50.0, 0.3]:
        producer.produce(source, json.dumps({"temperature": v}).encode(), b"s")
    producer.flush()
    worker = Worker(model, config(source, topic(1)))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = serve_prometheus(worker.metrics, port)
    try:
        worker.run(idle_exit=1, flush_at_exit=True)
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    finally:
        server.shutdown()
    lines = text.decode().splitlines()
    assert "vigil_stream_consumed_total 6.0" in lines
    assert "vigil_stream_anomalies_total 3.0" in lines
    assert any(line.startswith("vigil_stream_latency_p99_ms ") for line in lines)


def test_demo_stream_flags_equal_the_batch_demo(tmp_path):
    done = _run("demo", "--stream", "--out-dir", str(tmp_path / "demo"))
    assert done.returncode == 0, done.stderr
    assert "its flags equal the batch demo's on all 30240 rows" in " ".join(done.stdout.split())
