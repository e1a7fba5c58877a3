"""``vigil stream --engine spark`` (Spark Structured Streaming) against the ``vigil stream``
worker, on the embedded broker (tansu), ``local[2]``, in one run.

Figures, for ``zscore`` and ``auto`` (with its windows), 4 channels of flat JSON over 100
series on 2 partitions:

- **sustained events/s**: a topic filled beforehand, read to its end (``Trigger.AvailableNow``
  in micro-batches of ``--max-offsets`` offsets): rows over the time from the first
  micro-batch's start to the last one's end (Spark's start-up not counted); the worker over the
  same topic, from its first message to its last;
- **end-to-end latency** at a steady ``--rate`` readings/s for ``--seconds`` s (zscore,
  ``--emit all``, the query at each of ``--triggers``): from each reading's produce call to the moment
  a read-committed consumer of the output receives its result, p50 and p99; the worker's
  (exactly-once, so its results are committed too) the same way.

Writes ``benchmarks/results/spark_stream.md`` and ``spark_stream.json``.

    python benchmarks/bench_spark_stream.py            # the committed numbers
    python benchmarks/bench_spark_stream.py --quick    # fewer messages
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import threading
import time
import uuid
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _measure  # noqa: E402
import bench_kafka  # noqa: E402

import vigil  # noqa: E402
from vigil.engines.spark import session  # noqa: E402
from vigil.engines.spark.kafka_stream import start  # noqa: E402
from vigil.engines.stream import EmbeddedBroker, StreamConfig, Worker  # noqa: E402

FAST = {"session.timeout.ms": "1000", "heartbeat.interval.ms": "100"}
SERIES, PARTITIONS = 100, 2


def reading(i: int, rng: np.random.Generator) -> tuple[bytes, bytes]:
    s, t = i % SERIES, i // SERIES
    a, b, c, d = rng.normal(size=4).tolist()
    if i % 1000 == 0:
        a += 8
    return f"m{s}".encode(), json.dumps({"timestamp": 1_704_067_200 + 60 * t, "a": a, "b": b,
                                         "c": c, "d": d}).encode()


def new_topic(bootstrap: str, partitions: int = PARTITIONS) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic

    name = f"bench-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})  # alive until the topic is made
    admin.create_topics([NewTopic(name, partitions, 1,
                                  config={"retention.ms": "-1"})])[name].result(10)
    return name


def fill(bootstrap: str, n: int) -> str:
    """A new topic holding ``n`` readings."""
    rng = np.random.default_rng(0)
    return bench_kafka.fill(bootstrap, [reading(i, rng) for i in range(n)], PARTITIONS)


def spark_rate(spark, model, bootstrap: str, topic: str, max_offsets: int) -> dict:
    config = StreamConfig(bootstrap, topic, f"{topic}-spark-{uuid.uuid4().hex[:6]}")
    checkpoint = tempfile.mkdtemp(prefix="vigil-bench-ck-")
    try:
        query = start(spark, model, config, checkpoint, available_now=True,
                      max_offsets_per_trigger=max_offsets)
        query.awaitTermination()
        if query.exception() is not None:
            raise RuntimeError(str(query.exception())[:2000])
        batches = [p for p in query.recentProgress if p["numInputRows"]]
    finally:
        shutil.rmtree(checkpoint, ignore_errors=True)
    rows = sum(p["numInputRows"] for p in batches)
    begin = pd.Timestamp(batches[0]["timestamp"]).timestamp()
    last = batches[-1]
    end = pd.Timestamp(last["timestamp"]).timestamp() + last["durationMs"]["triggerExecution"] / 1e3
    return {"rows": rows, "rate": rows / (end - begin), "batches": len(batches),
            "batch_ms_median": float(np.median([p["durationMs"]["triggerExecution"]
                                                for p in batches]))}


def worker_rate(model, bootstrap: str, topic: str, n: int) -> float:
    config = StreamConfig(bootstrap, topic, f"{topic}-worker-{uuid.uuid4().hex[:6]}",
                          group=uuid.uuid4().hex, kafka=dict(FAST))
    worker = Worker(model, config)
    worker.run(max_messages=n)
    return worker.metrics.busy_rate


def steady(bootstrap: str, rate: int, seconds: float, run_engine) -> dict:
    """Produce at ``rate`` for ``seconds`` while ``run_engine(input, output)`` scores; the
    latency from each produce call to a read-committed consumer receiving its result."""
    from confluent_kafka import Consumer, Producer

    source, sink = new_topic(bootstrap), new_topic(bootstrap)
    stop = run_engine(source, sink)
    received: dict[tuple[int, int], float] = {}
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex,
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed",
                         "enable.auto.commit": False, **FAST})
    consumer.subscribe([sink])
    done = threading.Event()

    def receive() -> None:
        while not done.is_set():
            for m in consumer.consume(10000, 0.05):
                if m.error() is None:
                    now = time.perf_counter()
                    result = json.loads(m.value())
                    received.setdefault((result["partition"], result["offset"]), now)

    thread = threading.Thread(target=receive)
    thread.start()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1})
    sent: dict[tuple[int, int], float] = {}  # (partition, offset) -> produce time
    rng = np.random.default_rng(1)

    def paced(first: int, count: int, record: bool) -> None:
        begin = time.perf_counter()
        for i in range(count):
            wait = begin + i / rate - time.perf_counter()
            if wait > 0.001:
                time.sleep(wait)  # pacing the producer is the point
            key, value = reading(first + i, rng)  # times go on from the warm-up's
            at = time.perf_counter()
            if record:
                producer.produce(source, value, key, on_delivery=(
                    lambda e, m, at=at: sent.__setitem__((m.partition(), m.offset()), at)
                    if e is None else None))
            else:
                producer.produce(source, value, key)
            producer.poll(0)
        producer.flush(30)

    # warm up (the consumer joins its group, Spark starts its workers), then measure
    warm = rate * 2
    paced(0, warm, record=False)
    deadline = time.perf_counter() + 120
    while len(received) < warm - 100 and time.perf_counter() < deadline:
        time.sleep(0.1)
    n = int(rate * seconds)
    paced(warm, n, record=True)
    deadline = time.perf_counter() + 60
    while len(received) < 0.99 * (n + warm) and time.perf_counter() < deadline:
        time.sleep(0.1)
    time.sleep(2)
    done.set()
    thread.join()
    consumer.close()
    stop()
    ms = np.array([(received[k] - sent[k]) * 1000 for k in sent if k in received])
    return {"rate": rate, "seconds": seconds, "sent": len(sent), "received": len(ms),
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--max-offsets", type=int, default=200_000)
    parser.add_argument("--rate", type=int, default=5_000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--triggers", default="1,2",
                        help="micro-batch intervals to measure the latency at, in seconds")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out-dir", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    if args.quick:
        args.messages, args.seconds = 40_000, 8.0
        args.out_dir = args.out_dir / "quick"
    logging.getLogger("vigil.stream").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    train = pd.DataFrame(np.random.default_rng(5).normal(size=(5000, 4)), columns=list("abcd"))
    models = {m: vigil.Model(m).fit(train) for m in ("zscore", "auto")}
    spark = session("local[2]", conf={"spark.sql.shuffle.partitions": "2"})
    figures: dict[str, dict] = {}
    with EmbeddedBroker() as broker:
        bs = broker.bootstrap
        topic = fill(bs, args.messages)
        spark_rate(spark, models["zscore"], bs, fill(bs, 5000), args.max_offsets)  # warm-up
        for name, model in models.items():
            figures[name] = {"spark": spark_rate(spark, model, bs, topic, args.max_offsets),
                             "worker": worker_rate(model, bs, topic, args.messages)}

        def on_spark(trigger: float):
            def run(source: str, sink: str):
                config = StreamConfig(bs, source, sink, emit="all")
                checkpoint = tempfile.mkdtemp(prefix="vigil-bench-ck-")
                query = start(spark, models["zscore"], config, checkpoint,
                              trigger=f"{trigger:g} seconds")

                def stop() -> None:
                    query.stop()
                    shutil.rmtree(checkpoint, ignore_errors=True)
                return stop
            return run

        def on_worker(source: str, sink: str):
            worker = Worker(models["zscore"], StreamConfig(
                bs, source, sink, emit="all", exactly_once=True, group=uuid.uuid4().hex,
                kafka=dict(FAST)))
            thread = threading.Thread(target=worker.run)
            thread.start()

            def stop() -> None:
                worker.stop()
                thread.join()
            return stop

        triggers = [float(t) for t in args.triggers.split(",")]
        figures["latency"] = {f"spark {t:g}": steady(bs, args.rate, args.seconds, on_spark(t))
                              for t in triggers}
        figures["latency"]["worker"] = steady(bs, args.rate, args.seconds, on_worker)
    machine = _measure.machine()
    lines = [f"# `vigil stream --engine spark` beside the worker ({args.messages:,} messages, "
             f"4 channels, flat JSON, {SERIES} series on {PARTITIONS} partitions)", "",
             f"Machine: {machine['cpu']}, {machine['cores']} cores; {machine['date']}. Spark "
             f"`local[2]`, 2 shuffle partitions, the `vigil-kafka` source, embedded broker. "
             f"Command: `python benchmarks/bench_spark_stream.py`.", "",
             f"Sustained (a full topic read to its end, micro-batches of at most "
             f"{args.max_offsets:,} offsets):", "",
             "| model | Spark events/s | micro-batches | median batch | worker events/s | "
             "Spark / worker | target |", "|---|---|---|---|---|---|---|"]
    for name in models:
        s, w = figures[name]["spark"], figures[name]["worker"]
        target = ">= 20,000/s" if name == "zscore" else "-"
        lines.append(f"| {name} | {s['rate']:,.0f} | {s['batches']} | "
                     f"{s['batch_ms_median'] / 1000:.2f} s | {w:,.0f} | {s['rate'] / w:.2f} | "
                     f"{target} |")
    lines += ["", f"End-to-end latency at a steady {args.rate:,} readings/s for "
              f"{args.seconds:g} s after a warm-up (zscore, emit all), from the produce call "
              f"to a read-committed consumer receiving the result:", "",
              "| engine | p50 | p99 | results received | target |", "|---|---|---|---|---|"]
    for t in triggers:
        ls = figures["latency"][f"spark {t:g}"]
        met = "met" if ls["p99_ms"] < 2000 * t else "missed"
        lines.append(f"| Spark, trigger {t:g} s | {ls['p50_ms']:.0f} ms | "
                     f"{ls['p99_ms']:.0f} ms | {ls['received']:,} / {ls['sent']:,} | p99 < "
                     f"{2000 * t:.0f} ms ({met}) |")
    lw = figures["latency"]["worker"]
    lines += [f"| worker, exactly-once | {lw['p50_ms']:.0f} ms | {lw['p99_ms']:.0f} ms | "
              f"{lw['received']:,} / {lw['sent']:,} | - |", ""]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "spark_stream.md").write_text("\n".join(lines))
    (args.out_dir / "spark_stream.json").write_text(json.dumps(
        {"machine": machine, "args": {k: str(v) for k, v in vars(args).items()},
         "figures": figures}, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
