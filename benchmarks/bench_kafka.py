"""The ``vigil stream`` worker against the embedded broker (tansu), on this machine.

Figures (each the median of ``--repeats`` runs; every run is timed from the worker's first
message to its last, so the group join is not counted):

- **raw consume rate**: a bare confluent-kafka consumer reading the same topic with no decoding
  or scoring, in the same run (the ceiling of any worker on this broker);
- **worker throughput**, messages/s, and the ratio to the raw rate, for ``zscore`` (``--emit
  anomalies`` and ``--emit all``), ``isolation_forest`` and ``auto`` (anomalies), at-least-once;
  ``zscore`` exactly-once beside it (its ratio to at-least-once);
- **latency** at a steady rate (``--steady-rate``, default 10,000 readings/s for 10 s, ``zscore``,
  ``--emit all``): p50 and p99 from each reading's Kafka timestamp to its result's hand-over to
  the producer;
- **1,000 series** interleaved on 4 partitions with a windowed model (``subsequence_pca``,
  window 20): throughput and the state per series (the changelog record's bytes).

Writes ``benchmarks/results/kafka.md`` and ``kafka.json``.

    python benchmarks/bench_kafka.py             # the committed numbers
    python benchmarks/bench_kafka.py --quick     # fewer messages
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import threading
import time
import uuid
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _measure  # noqa: E402

import vigil  # noqa: E402
from vigil.engines.stream import EmbeddedBroker, StreamConfig, Worker  # noqa: E402

FAST = {"session.timeout.ms": "1000", "heartbeat.interval.ms": "100"}


def readings(n: int, series: int, seed: int = 0) -> list[tuple[bytes, bytes]]:
    """(key, flat JSON) for ``n`` readings of 4 channels over ``series`` series, interleaved."""
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n, 4))
    values[::1000] += 8  # a spike now and then
    start = pd.Timestamp("2024-01-01").value // 10**9
    out = []
    for i, row in enumerate(values.tolist()):
        s, t = i % series, i // series
        out.append((f"m{s}".encode(), json.dumps(
            {"timestamp": start + 60 * t, "a": row[0], "b": row[1], "c": row[2],
             "d": row[3]}).encode()))
    return out


def fill(bootstrap: str, rows: list[tuple[bytes, bytes]], partitions: int) -> str:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"bench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, partitions, 1,
                                  config={"retention.ms": "-1"})])[name].result(10)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20,
                         "batch.num.messages": 10000})
    for key, value in rows:
        while True:
            try:
                producer.produce(name, value, key)
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush(60)
    return name


def raw_rate(bootstrap: str, topic: str, n: int) -> float:
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False, **FAST})
    consumer.subscribe([topic])
    got, first = 0, None
    while got < n:
        batch = consumer.consume(10000, 1.0)
        if batch and first is None:
            first = time.perf_counter()
        got += sum(1 for m in batch if m.error() is None and m.value() is not None)
    elapsed = time.perf_counter() - first
    consumer.close()
    return n / elapsed


def worker_rate(model, bootstrap: str, topic: str, n: int,
                **settings) -> tuple[float, dict[str, int]]:
    """Throughput of one worker over ``n`` messages, and the state bytes per series it held."""
    config = StreamConfig(bootstrap, topic, f"{topic}-out-{uuid.uuid4().hex[:6]}",
                          group=uuid.uuid4().hex, kafka=dict(FAST), **settings)
    worker = Worker(model, config)
    held: dict[str, int] = {}
    worker.run(max_messages=n, report=lambda m: held.update(m.state_bytes), report_every=0.2)
    return worker.metrics.busy_rate, held


def steady_latency(model, bootstrap: str, rate: int, seconds: float) -> dict[str, float]:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"steady-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(name, 1, 1, config={"retention.ms": "-1"})])[name].result(10)
    rows = readings(int(rate * seconds), 1, seed=1)
    worker = Worker(model, StreamConfig(bootstrap, name, f"{name}-out", group=uuid.uuid4().hex,
                                        emit="all", kafka=dict(FAST)))
    thread = threading.Thread(target=worker.run, kwargs={"max_messages": len(rows)})
    thread.start()
    while worker._assigned_at is None:
        time.sleep(0.01)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
    start = time.perf_counter()
    for i, (key, value) in enumerate(rows):
        wait = start + i / rate - time.perf_counter()
        if wait > 0.001:
            time.sleep(wait)
        producer.produce(name, value, key)
        producer.poll(0)
    producer.flush(30)
    thread.join(120)
    m = worker.metrics
    return {"rate": rate, "p50_ms": m.percentile(50), "p99_ms": m.percentile(99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steady-rate", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.repeats = 50_000, 1
        args.out_dir = args.out_dir / "quick"
    logging.getLogger("vigil.stream").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    n = args.messages
    train = pd.DataFrame(np.random.default_rng(5).normal(size=(5000, 4)), columns=list("abcd"))
    models = {m: vigil.Model(m).fit(train) for m in ("zscore", "isolation_forest", "auto")}
    runs: dict[str, list[float]] = {}
    extra: dict[str, object] = {}
    with EmbeddedBroker() as broker:
        bs = broker.bootstrap
        topic = fill(bs, readings(n, 1), 1)
        small = max(n // 10, 5000)
        topic_small = fill(bs, readings(small, 1), 1)
        for _ in range(args.repeats):
            runs.setdefault("raw", []).append(raw_rate(bs, topic, n))
            for label, model, t, count, settings in [
                ("zscore, anomalies", "zscore", topic, n, {}),
                ("zscore, all", "zscore", topic, n, {"emit": "all"}),
                ("zscore, anomalies, exactly-once", "zscore", topic, n,
                 {"exactly_once": True}),
                ("isolation_forest, anomalies", "isolation_forest", topic, n, {}),
                ("auto, anomalies", "auto", topic_small, small, {}),
            ]:
                rate, _ = worker_rate(models[model], bs, t, count, **settings)
                runs.setdefault(label, []).append(rate)
        extra["latency"] = steady_latency(models["zscore"], bs, args.steady_rate, 10.0)
        # 1,000 series on 4 partitions, a windowed model fitted on one series' rows
        windowed = vigil.Model("subsequence_pca", window=20).fit(train)
        many = fill(bs, readings(n, 1000, seed=2), 4)
        rate, held = worker_rate(windowed, bs, many, n, emit="anomalies")
        sizes = list(held.values()) or [0]
        extra["series"] = {"series": 1000, "partitions": 4, "rate": rate,
                           "state_bytes_median": int(np.median(sizes)),
                           "state_bytes_total": int(np.sum(sizes)), "seen": len(sizes)}
    med = {k: statistics.median(v) for k, v in runs.items()}
    raw = med["raw"]
    lines = [f"# `vigil stream` on the embedded broker ({n:,} messages, 4 channels, flat JSON)", "",
             f"Machine: {_measure.machine()['cpu']}, {_measure.machine()['cores']} cores; "
             f"{_measure.machine()['date']}. Medians of {args.repeats} run(s); throughput from "
             f"the first message to the last. Command: `python benchmarks/bench_kafka.py`.", "",
             "| run | messages/s | x raw consume | target |", "|---|---|---|---|",
             f"| raw consume (no decoding, no scoring) | {raw:,.0f} | 1.00 | - |"]
    targets = {"zscore, anomalies": ">= 0.4 x raw", "zscore, all": ">= 0.2 x raw",
               "zscore, anomalies, exactly-once": ">= 0.5 x at-least-once"}
    for k, v in med.items():
        if k == "raw":
            continue
        note = targets.get(k, "-")
        if "exactly" in k:
            note += f" (here {v / med['zscore, anomalies']:.2f})"
        count = f"{max(n // 10, 5000):,} messages" if k.startswith("auto") else ""
        lines.append(f"| {k}{' (' + count + ')' if count else ''} | {v:,.0f} | {v / raw:.2f} | "
                     f"{note} |")
    lat, ser = extra["latency"], extra["series"]
    lines += ["", f"Latency at a steady {lat['rate']:,} readings/s for 10 s (zscore, emit all, "
              f"at-least-once): p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms "
              f"(target: p99 under 100 ms).", "",
              f"{ser['series']:,} series interleaved on {ser['partitions']} partitions, "
              f"subsequence_pca (window 20): {ser['rate']:,.0f} messages/s; state per series "
              f"(its changelog record) {ser['state_bytes_median']:,} bytes median, "
              f"{ser['state_bytes_total'] / 2**20:.1f} MiB for all {ser['seen']:,}.", ""]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "kafka.md").write_text("\n".join(lines))
    (args.out_dir / "kafka.json").write_text(json.dumps(
        {"machine": _measure.machine(), "runs": runs, "extra": extra}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
