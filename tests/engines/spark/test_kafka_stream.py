"""``vigil stream --engine spark``: a Structured Streaming query over a Kafka topic gives the
``vigil stream`` worker's results (so batch scoring's), its event messages and its dead letters,
and a driver killed mid-stream neither loses nor repeats a result."""

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pandas as pd
import pytest
from confluent_kafka import Consumer, Producer

import vigil
from stream_data import final_rows, read_all, sensor_series
from vigil.engines.spark.kafka_stream import start
from vigil.engines.stream import StreamConfig, Worker, produce_rows
from vigil.io import from_frame


@pytest.fixture(scope="module")
def pumps_model():
    """A windowed model (its scores need rows from earlier micro-batches) of three pumps."""
    data = sensor_series(rows=400)
    model = vigil.Model("subsequence_pca", window=20).fit(
        from_frame(data.groupby("pump").head(150), series_column="pump",
                   time_column="timestamp"))
    return model, data


def feed(bootstrap, name, data):
    """The readings as flat JSON keyed by pump, then one message that is not JSON and one
    reading older than its pump's last (dead letters both)."""
    produce_rows(from_frame(data, series_column="pump", time_column="timestamp"), bootstrap,
                 name, partitions=2)
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(name, b"{not json", b"pump-1")
    producer.produce(name, json.dumps({"timestamp": "2024-03-19 00:05:00", "pump": "pump-2",
                                       "temperature": 1.0, "pressure": 2.0}).encode(),
                     b"pump-2")
    producer.flush(10)


def run_query(spark, model, config, checkpoint, **options):
    query = start(spark, model, config, str(checkpoint), available_now=True, **options)
    query.awaitTermination(180)
    assert query.exception() is None
    return query


def messages(bootstrap, name):
    return [json.loads(value) for *_, value, _ in read_all(bootstrap, name)]


@pytest.mark.parametrize("emit", ["all", "events"])
def test_results_are_the_workers_and_batch_scorings(spark, broker, topic, pumps_model, emit,
                                                    tmp_path):
    model, data = pumps_model
    source = topic(2)
    feed(broker.bootstrap, source, data)
    on_spark = StreamConfig(broker.bootstrap, source, topic(2), emit=emit)
    run_query(spark, model, on_spark, tmp_path / "ck", max_offsets_per_trigger=150)
    on_worker = StreamConfig(broker.bootstrap, source, topic(2), emit=emit,
                             dead_letter_topic=topic(2), group=f"g-{uuid.uuid4().hex[:6]}",
                             kafka={"session.timeout.ms": "1000",
                                    "heartbeat.interval.ms": "100"})
    Worker(model, on_worker).run(idle_exit=2)

    def by_series(found):  # per series, in order: the order a consumer of a key sees
        return sorted(found, key=lambda m: (m["series"], m.get("offset", m.get("end_offset"))))

    spark_out = messages(broker.bootstrap, on_spark.output_topic)
    assert by_series(spark_out) == by_series(messages(broker.bootstrap,
                                                      on_worker.output_topic))
    dead = read_all(broker.bootstrap, on_spark.dead_letter_topic)
    reasons = sorted(dict(headers)["vigil.reason"].decode() for *_, headers in dead)
    assert reasons == ["decode", "late"]
    assert sorted((k, v) for _, _, k, v, _ in dead) == sorted(
        (k, v) for _, _, k, v, _ in read_all(broker.bootstrap, on_worker.dead_letter_topic))
    if emit == "events":
        assert [m["kind"] for m in spark_out].count("open") >= 3  # an event in every pump
        return
    # every final row once, with batch scoring's score and flag
    streamed = pd.DataFrame(spark_out).set_index(["series", "time"]).sort_index()
    assert not streamed.index.duplicated().any()
    batch = model.detect(from_frame(data, series_column="pump", time_column="timestamp"))
    batch.index = pd.MultiIndex.from_arrays([data["pump"], data["timestamp"].astype(str)],
                                            names=["series", "time"])
    batch = batch.loc[streamed.index]
    assert len(streamed) == final_rows(model, data)
    assert np.array_equal(streamed["score"].to_numpy(), batch["score"].to_numpy())
    assert np.array_equal(streamed["is_anomaly"].to_numpy(), batch["is_anomaly"].to_numpy())
    assert streamed["is_anomaly"].any()


@pytest.mark.parametrize("replayed", [False, True])
def test_a_restart_resumes_each_series_from_the_checkpoint(spark, broker, topic, pumps_model,
                                                           tmp_path, replayed):
    model, data = pumps_model
    source, first, second = topic(2), data.iloc[:600], data.iloc[600:]
    config = StreamConfig(broker.bootstrap, source, topic(2), emit="all")
    produce_rows(from_frame(first, series_column="pump", time_column="timestamp"),
                 broker.bootstrap, source, partitions=2)
    run_query(spark, model, config, tmp_path / "ck")
    if replayed:
        # As when a driver dies after a batch's Kafka transaction, before Spark's commit log
        # entry: Spark runs that batch again on restart (its state must still be committed),
        # and the sink finds its results already written.
        commits = tmp_path / "ck" / "commits"
        last = max(int(f.name) for f in commits.iterdir() if f.name.isdigit())
        for name in (str(last), f".{last}.crc"):
            (commits / name).unlink(missing_ok=True)
    produce_rows(from_frame(second, series_column="pump", time_column="timestamp"),
                 broker.bootstrap, source, partitions=2)
    run_query(spark, model, config, tmp_path / "ck")  # the same checkpoint: state restored
    streamed = pd.DataFrame(messages(broker.bootstrap, config.output_topic))
    assert not streamed.duplicated(["partition", "offset"]).any()
    batch = model.detect(from_frame(data, series_column="pump", time_column="timestamp"))
    batch.index = data["pump"] + " " + data["timestamp"].astype(str)
    got = streamed.set_index(streamed["series"] + " " + streamed["time"])["score"]
    assert np.array_equal(got.to_numpy(), batch.loc[got.index, "score"].to_numpy())
    assert len(got) == final_rows(model, data)  # nothing lost, nothing twice


# -- a driver killed mid-stream ----------------------------------------------------------------
@pytest.fixture(scope="module")
def mock_cluster():
    """librdkafka's mock cluster, which implements transactions and hides aborted records
    from read-committed consumers (the embedded broker shows a fenced transaction's records)."""
    holder = Producer({"bootstrap.servers": "unused:1", "test.mock.num.brokers": 1,
                       "log_level": 0})
    found = next(iter(holder.list_topics(timeout=10).brokers.values()))
    yield f"{found.host}:{found.port}"
    del holder


def _driver(bootstrap, model_path, source, sink, checkpoint, final=None):
    args = [sys.executable, "-m", "vigil", "stream", "--engine", "spark", "--model",
            str(model_path), "--bootstrap", bootstrap, "--input", source, "--output", sink,
            "--emit", "all", "--checkpoint", str(checkpoint), "--master", "local[2]",
            "--trigger", "0.2s", "--max-offsets-per-trigger", "150",
            "--kafka-config", "transaction.timeout.ms=5000", "--kafka-config", "log_level=0"]
    if final is not None:
        return subprocess.Popen(args + ["--idle-exit", "3"], stdout=subprocess.DEVNULL,
                                stderr=final.open("w"), start_new_session=True)
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


@pytest.mark.slow
def test_a_sigkilled_driver_neither_loses_nor_repeats_a_result(mock_cluster, pumps_model,
                                                               tmp_path):
    model, data = pumps_model
    path = tmp_path / "model.vigil"
    model.save(path)
    source, sink = f"in-{uuid.uuid4().hex[:8]}", f"out-{uuid.uuid4().hex[:8]}"
    produce_rows(from_frame(data, series_column="pump", time_column="timestamp"),
                 mock_cluster, source)
    # the mock cluster makes a topic when a client first asks for it (not by CreateTopics)
    asker = Consumer({"bootstrap.servers": mock_cluster, "group.id": "ask", "log_level": 0,
                      "allow.auto.create.topics": True})
    for name in (sink, f"{source}.dead-letter", f"{sink}.commits"):
        asker.list_topics(name, timeout=10)
    asker.close()
    checkpoint = tmp_path / "ck"
    for wanted in (150, 500, 800):  # killed with results committed and more to come
        driver = _driver(mock_cluster, path, source, sink, checkpoint)
        deadline = time.monotonic() + 120
        while len(read_all(mock_cluster, sink)) < wanted and time.monotonic() < deadline:
            time.sleep(0.2)  # polling the broker for the moment to kill is the point
        os.killpg(driver.pid, signal.SIGKILL)  # the driver, its JVM and its Python workers
        driver.wait()
    log = tmp_path / "last.log"
    last = _driver(mock_cluster, path, source, sink, checkpoint, final=log)
    assert last.wait(180) == 0, log.read_text()[-3000:]

    results = pd.DataFrame([json.loads(v) for *_, v, _ in read_all(mock_cluster, sink)])
    assert not results.duplicated(["partition", "offset"]).any()  # no result twice ...
    assert len(results) == final_rows(model, data)  # ... and every final one there
    batch = model.detect(from_frame(data, series_column="pump", time_column="timestamp"))
    batch.index = data["pump"] + " " + data["timestamp"].astype(str)
    got = results.set_index(results["series"] + " " + results["time"])
    assert np.array_equal(got["score"].to_numpy(), batch.loc[got.index, "score"].to_numpy())


def test_options_that_do_not_go_together_are_one_line_each(pumps_model, broker, tmp_path):
    model, _ = pumps_model
    model.save(tmp_path / "m.vigil")
    base = [sys.executable, "-m", "vigil", "stream", "--model", str(tmp_path / "m.vigil"),
            "--bootstrap", broker.bootstrap, "--input", "in", "--output", "out"]
    for extra, said in [
            (["--engine", "spark"], "--engine spark needs --checkpoint DIR."),
            (["--checkpoint", str(tmp_path / "ck")], "--checkpoint needs --engine spark"),
            (["--engine", "spark", "--checkpoint", str(tmp_path / "ck"), "--exactly-once"],
             "--exactly-once is an option of the local worker"),
            (["--engine", "spark", "--checkpoint", str(tmp_path / "ck"), "--trigger", "soon"],
             "--trigger 'soon': expected a duration")]:
        done = subprocess.run(base + extra, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2 and said in " ".join(done.stderr.split()), done.stderr
        assert "Traceback" not in done.stderr


@pytest.mark.slow
def test_the_query_runs_on_a_standalone_cluster(standalone, broker, topic, pumps_model,
                                                tmp_path):
    model, data = pumps_model
    model.save(tmp_path / "m.vigil")
    source, sink = topic(2), topic(2)
    feed(broker.bootstrap, source, data)
    done = subprocess.run(
        [sys.executable, "-m", "vigil", "stream", "--engine", "spark", "--master", standalone,
         "--model", str(tmp_path / "m.vigil"), "--bootstrap", broker.bootstrap, "--input",
         source, "--output", sink, "--emit", "all", "--checkpoint", str(tmp_path / "ck"),
         "--trigger", "0.5s", "--idle-exit", "3"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "on Spark (exactly-once" in " ".join((done.stdout + done.stderr).split())
    results = pd.DataFrame(messages(broker.bootstrap, sink))
    assert len(results) == final_rows(model, data)
    batch = model.detect(from_frame(data, series_column="pump", time_column="timestamp"))
    batch.index = data["pump"] + " " + data["timestamp"].astype(str)
    got = results.set_index(results["series"] + " " + results["time"])
    assert np.array_equal(got["score"].to_numpy(), batch.loc[got.index, "score"].to_numpy())
    dead = read_all(broker.bootstrap, f"{source}.dead-letter")
    assert sorted(dict(h)["vigil.reason"].decode() for *_, h in dead) == ["decode", "late"]


def test_each_reading_keeps_its_time_as_given_through_the_decode_step(pumps_model):
    from vigil.engines.spark.kafka_stream import _decoder, _times

    model, _ = pumps_model
    given = ["2024-03-19 00:01:00", 1710806460, 1710806520.5, None]
    values = [json.dumps({"timestamp": t, "pump": "p", "temperature": 1.0, "pressure": 2.0})
              .encode() for t in given] + [b"{not json"]
    frame = pd.DataFrame({"key": [b"p"] * 5, "value": values, "partition": 0,
                          "offset": range(5), "timestamp": pd.Timestamp("2024-03-19")})
    config = StreamConfig("unused:1", "in", "out")
    decoded = next(_decoder(model, config)(iter([frame])))
    assert _times(decoded)[:4] == given and type(_times(decoded)[1]) is int
    assert decoded["reason"].tolist()[4] == "decode" and decoded["c0"].tolist()[:4] == [1.0] * 4
