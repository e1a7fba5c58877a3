"""Sensor series to stream in the tests: several pumps, interleaved, with anomalies."""

import uuid

import numpy as np
import pandas as pd
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient


def sensor_series(names=("pump-1", "pump-2", "pump-3"), rows=400, seed=0):
    """Interleaved readings of several pumps, one minute apart, each with a spike and a level
    shift: columns timestamp, pump, temperature, pressure."""
    rng = np.random.default_rng(seed)
    frames = []
    for k, name in enumerate(names):
        t = np.arange(rows)
        temperature = 60 + 3 * np.sin(t / 15 + k) + rng.normal(0, 0.3, rows)
        pressure = 950 + 10 * np.cos(t / 20) + rng.normal(0, 1.0, rows)
        temperature[rows // 2 + 7 * k: rows // 2 + 7 * k + 4] += 12
        pressure[3 * rows // 4: 3 * rows // 4 + 6] -= 60
        frames.append(pd.DataFrame({
            "timestamp": pd.date_range("2024-03-19", periods=rows, freq="min"),
            "pump": name, "temperature": temperature, "pressure": pressure}))
    return (pd.concat(frames).sort_values(["timestamp", "pump"], kind="stable")
            .reset_index(drop=True))


def final_rows(model, data, series="pump"):
    """How many rows of ``data`` have a final result once all of it is streamed: every row
    but the last of each series, which await their lookahead rows or the alarm rules."""
    from vigil.scoring import StreamScorer

    return sum(len(StreamScorer(model).update(rows)) for _, rows in data.groupby(series))


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
