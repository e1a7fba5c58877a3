"""The Kafka worker against a real Kafka-protocol broker: results equal batch scoring, a restart
resumes each series from its changelog state, bad messages go to the dead-letter topic, and
two workers in one group split the work."""

import json
import threading

import numpy as np
import pandas as pd
import pytest
from confluent_kafka import Producer

import vigil
from stream_data import sensor_series
from vigil.engines.stream import Worker, produce_rows
from vigil.io import from_frame


@pytest.fixture(scope="module")
def windowed():
    """A windowed model (62 rows of context and of lookahead) fitted on each pump's first
    200 rows, and the pumps it streams."""
    data = sensor_series()
    train = data.groupby("pump", sort=False).head(200)
    model = vigil.Model("subsequence_pca", window=20).fit(
        from_frame(train, series_column="pump", time_column="timestamp"))
    return model, data


def _produce(broker, topic, data, partitions):
    name = topic(partitions)
    produce_rows(from_frame(data, series_column="pump", time_column="timestamp"),
                 broker.bootstrap, name)
    return name


def _results(read_topic, name):
    rows = [json.loads(value) for _, _, _, value, _ in read_topic(name)]
    return pd.DataFrame(rows)


def _batch(model, data):
    batch = model.detect(from_frame(data, series_column="pump", time_column="timestamp"))
    batch["time"] = pd.DatetimeIndex(data["timestamp"]).strftime("%Y-%m-%d %H:%M:%S")
    batch["series"] = data["pump"].to_numpy()
    return batch.set_index(["series", "time"]).sort_index()


def _same_as_batch(results, batch):
    streamed = results.set_index(["series", "time"]).sort_index()
    assert streamed.index.equals(batch.index)
    assert np.array_equal(streamed["score"].to_numpy(), batch["score"].to_numpy())
    # the same rows flagged, in the same events (numbered per series in a stream, per file in
    # batch)
    assert np.array_equal(streamed["is_anomaly"].to_numpy(), batch["is_anomaly"].to_numpy())
    assert np.array_equal(_per_series(streamed["event"]), _per_series(batch["event"]))


def _per_series(events):
    """Event numbers 1, 2, ... within each series, in order of appearance."""
    def renumber(numbers):
        order = {n: i + 1 for i, n in enumerate(dict.fromkeys(numbers[numbers > 0]))}
        return np.array([order.get(n, 0) for n in numbers])
    return np.concatenate([renumber(group.to_numpy())
                           for _, group in events.groupby(level="series", sort=True)])


def test_streamed_scores_equal_batch_scores(broker, topic, config, read_topic, windowed):
    model, data = windowed
    source, sink = _produce(broker, topic, data, 2), topic(2)
    metrics = Worker(model, config(source, sink, emit="all")).run(idle_exit=1,
                                                                  flush_at_exit=True)
    results = _results(read_topic, sink)
    assert metrics.consumed == metrics.scored == len(data) == len(results)
    # every input offset has exactly one result, naming it
    assert not results.duplicated(["partition", "offset"]).any()
    _same_as_batch(results, _batch(model, data))
    assert results["is_anomaly"].any() and (results["topic"] == source).all()


def test_a_restart_resumes_every_series_from_the_changelog(broker, topic, config, read_topic,
                                                           windowed):
    model, data = windowed
    source, sink = _produce(broker, topic, data, 2), topic(2)
    settings = config(source, sink, emit="all")
    worker = Worker(model, settings)
    first = worker.run(max_messages=555)  # stops mid-series, with rows awaiting lookahead
    assert first.scored < 555
    second = Worker(model, settings).run(idle_exit=1, flush_at_exit=True)
    assert second.restored >= 1 and first.consumed + second.consumed == len(data)
    results = _results(read_topic, sink)
    assert not results.duplicated(["partition", "offset"]).any()
    _same_as_batch(results, _batch(model, data))


def test_bad_messages_go_to_the_dead_letter_topic_and_the_worker_goes_on(
        broker, topic, config, read_topic):
    model = vigil.Model("zscore").fit(pd.DataFrame({"temperature": np.sin(np.arange(500))}))
    source, sink = topic(1), topic(1)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    messages = [b'{"temperature": 0.5}', b"not json {", b'{"pressure": 1}',
                b'{"temperature": 40}', b'{"temperature": "\xff"}', b"[" * 50_000,
                b'{"temperature": -0.5}']
    for value in messages:
        producer.produce(source, value, b"pump-1")
    producer.flush()
    metrics = Worker(model, config(source, sink, emit="all")).run(idle_exit=1,
                                                                  flush_at_exit=True)
    assert (metrics.consumed, metrics.dead_letters, metrics.scored) == (7, 4, 3)
    dead = read_topic(f"{source}.dead-letter")
    reasons = [dict(headers)["vigil.reason"].decode() for *_, headers in dead]
    assert reasons == ["value", "channel", "decode", "value"]  # non-JSON is read as CSV
    assert [value for _, _, _, value, _ in dead] == [messages[i] for i in (1, 2, 4, 5)]
    assert [int(dict(h)["vigil.offset"]) for *_, h in dead] == [1, 2, 4, 5]
    scored = _results(read_topic, sink)
    assert scored["offset"].tolist() == [0, 3, 6]
    assert scored["is_anomaly"].tolist() == [False, True, False]


def test_emit_events_opens_and_closes_each_event_once(broker, topic, config, read_topic,
                                                      windowed):
    model, data = windowed
    source, sink = _produce(broker, topic, data, 1), topic(1)
    Worker(model, config(source, sink, emit="events")).run(idle_exit=1, flush_at_exit=True)
    messages = _results(read_topic, sink)
    batch = _batch(model, data)
    for series, rows in messages.groupby("series"):
        events = batch.loc[series]
        numbers = list(dict.fromkeys(events["event"][events["event"] > 0]))  # batch's numbers
        opened, closed = rows[rows["kind"] == "open"], rows[rows["kind"] == "close"]
        assert opened["event"].tolist() == closed["event"].tolist() == list(
            range(1, len(numbers) + 1))
        assert closed["rows"].tolist() == [int((events["event"] == n).sum()) for n in numbers]
        assert opened["time"].tolist() == [events.index[events["event"] == n][0]
                                           for n in numbers]


def test_two_workers_in_one_group_split_the_partitions(broker, topic, config, read_topic,
                                                       windowed):
    model, data = windowed
    source, sink = _produce(broker, topic, data, 4), topic(4)
    settings = config(source, sink, emit="all")
    workers = [Worker(model, settings), Worker(model, settings)]
    threads = [threading.Thread(target=w.run, kwargs={"idle_exit": 3, "flush_at_exit": True})
               for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(w.metrics.consumed for w in workers), "each worker took partitions"
    results = _results(read_topic, sink)
    assert not results.duplicated(["partition", "offset"]).any()
    _same_as_batch(results, _batch(model, data))


def _out_of_order(data, most, seed=0):
    """The rows with each series' order scrambled locally: no row is more than ``most`` rows
    (minutes) away from its place in time."""
    rng = np.random.default_rng(seed)
    place = data.groupby("pump").cumcount().to_numpy() + rng.uniform(0, most, len(data))
    return data.iloc[np.argsort(place, kind="stable")]


def _produce_as_json(broker, name, data):
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for row in data.itertuples(index=False):
        producer.produce(name, json.dumps({
            "timestamp": row.timestamp.strftime("%Y-%m-%d %H:%M:%S"), "pump": row.pump,
            "temperature": row.temperature, "pressure": row.pressure}), row.pump)
    producer.flush()


def test_allowed_lateness_scores_out_of_order_rows_in_their_place(broker, topic, config,
                                                                  read_topic, windowed):
    model, data = windowed
    scrambled = _out_of_order(data, most=3)
    assert not scrambled.groupby("pump")["timestamp"].is_monotonic_increasing.all()
    source, sink = topic(2), topic(2)
    _produce_as_json(broker, source, scrambled)
    settings = config(source, sink, emit="all", allowed_lateness=300)
    first = Worker(model, settings).run(max_messages=555)  # held rows go to the changelog
    second = Worker(model, settings).run(idle_exit=1, flush_at_exit=True)
    assert first.dead_letters == second.dead_letters == 0 and second.restored >= 1
    results = _results(read_topic, sink)
    assert len(results) == len(data) and not results.duplicated(["partition", "offset"]).any()
    _same_as_batch(results, _batch(model, data))  # as if the rows had come in time order


def test_rows_later_than_the_allowed_lateness_are_dead_letters(broker, topic, config,
                                                               read_topic, windowed):
    model, data = windowed
    one = data[data["pump"] == "pump-1"].head(300)
    late = one.index[100]
    order = one.drop(index=late)
    order = pd.concat([order.iloc[:110], one.loc[[late]], order.iloc[110:]])  # 10 min late
    source, sink = topic(1), topic(1)
    _produce_as_json(broker, source, order)
    metrics = Worker(model, config(source, sink, emit="all", allowed_lateness=300)).run(
        idle_exit=1, flush_at_exit=True)
    assert (metrics.dead_letters, metrics.scored) == (1, 299)
    (dead,) = read_topic(f"{source}.dead-letter")
    headers = dict(dead[4])
    assert headers["vigil.reason"] == b"late" and headers["vigil.offset"] == b"110"
    assert b"more than the allowed lateness (300 s) earlier" in headers["vigil.error"]


def test_a_flood_of_new_series_keys_cannot_grow_the_state_without_bound(broker, topic, config,
                                                                        read_topic):
    model = vigil.Model("zscore").fit(pd.DataFrame({"temperature": np.sin(np.arange(500))}))
    source, sink = topic(1), topic(1)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    for i in range(50):
        producer.produce(source, b'{"temperature": 0.5}', f"key-{i}".encode())
    producer.flush()
    metrics = Worker(model, config(source, sink, emit="all", max_series=10)).run(idle_exit=1)
    assert (metrics.scored, metrics.dead_letters) == (10, 40)  # ten series held, no more
    dead = read_topic(f"{source}.dead-letter")
    assert {dict(h)["vigil.reason"] for *_, h in dead} == {b"series"}


def test_a_model_per_series_scores_each_series_with_its_own_model(broker, topic, config,
                                                                 read_topic):
    data = sensor_series()
    train = data.groupby("pump", sort=False).head(200)
    bundle = vigil.ModelBundle("subsequence_pca", series_column="pump",
                               time_column="timestamp", window=20).fit(
        train[train["pump"] != "pump-3"])
    source, sink = _produce(broker, topic, data, 2), topic(2)
    metrics = Worker(bundle, config(source, sink, emit="all")).run(idle_exit=1,
                                                                   flush_at_exit=True)
    results = _results(read_topic, sink)
    seen = data[data["pump"] != "pump-3"]
    assert metrics.dead_letters == 400  # pump-3 has no model: each of its rows, with the reason
    _same_as_batch(results, _batch(bundle, seen))
    reasons = {dict(h)["vigil.reason"] for *_, h in read_topic(f"{source}.dead-letter")}
    assert reasons == {b"series"}
