"""The per-series core of ``vigil stream``: take one series' decoded messages, score them with
its :class:`~.state.SeriesState` and say what to publish. Kafka-free, so the Kafka worker and
Spark Structured Streaming (``vigil stream --engine spark``) run the same code and give the same
results, event messages and dead letters.

A message here is anything with confluent-kafka's ``Message`` accessors (``topic()``,
``partition()``, ``offset()``, ``key()``, ``value()``, ``timestamp()``): the worker passes the
consumer's messages, Spark its rows wrapped in :class:`Record`.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from vigil.engines.stream.messages import BadMessage
from vigil.engines.stream.metrics import Metrics
from vigil.engines.stream.state import SeriesState

__all__ = ["Record", "SeriesScoring"]

_NAT = np.iinfo(np.int64).min


class Record:
    """A Kafka record outside a consumer, with the accessors of confluent-kafka's Message."""

    __slots__ = ("_topic", "_partition", "_offset", "_key", "_value", "_ts")

    def __init__(self, topic: str, partition: int, offset: int, key: bytes | None,
                 value: bytes | None, timestamp_ms: int) -> None:
        self._topic, self._partition, self._offset = topic, partition, offset
        self._key, self._value, self._ts = key, value, timestamp_ms

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return (1, self._ts)  # (TIMESTAMP_CREATE_TIME, ms), as a consumer gives it


class SeriesScoring:
    """Scores series for one stream: ``take`` a batch of one series' messages, ``flush`` a
    series at the end of a finite replay. Results go to ``publish(key, message)`` (a dict that
    :func:`~.messages.encode` turns into bytes), unusable messages to ``dead_letter(message,
    BadMessage)``; ``metrics`` counts rows scored, published and replayed."""

    def __init__(self, channels: list[str], emit: str, input_topic: str,
                 allowed_lateness: float, metrics: Metrics,
                 publish: Callable[[bytes, dict[str, Any]], None],
                 dead_letter: Callable[[Any, BadMessage], None]) -> None:
        self.channels = list(channels)
        self.emit = emit
        self.input_topic = input_topic
        self.allowed_lateness = float(allowed_lateness)
        self.lateness_ns = int(round(self.allowed_lateness * 1e9))
        self.metrics = metrics
        self.publish = publish
        self.dead_letter = dead_letter

    def take(self, state: SeriesState, group: list[Any], times: list[int]) -> bool:
        """Score ``group``, this series' messages in arrival order, as ``(message, partition,
        offset, raw time, values)`` with ``times`` their times in ns (NaT where none); publish
        what is final. True when the state changed (a row was taken)."""
        series = state.series
        lateness = self.lateness_ns
        taken: list[list[Any]] = []  # [time ns, offset, raw time, values, ts_ms]
        newest = newest_time(state)
        for (m, partition, offset, when, values), t in zip(group, times):
            if partition != state.partition:
                self.dead_letter(m, BadMessage(
                    "partition", f"series {series!r} arrives on partition {partition} and on "
                                 f"{state.partition}; key messages by series"))
                continue
            if offset <= state.offset:  # already in the restored state
                self.metrics.replayed += 1
                continue
            if t == _NAT and when is not None:
                self.dead_letter(m, BadMessage("time", f"time {str(when)[:40]!r} cannot be read"))
                continue
            if t != _NAT and newest is not None and t < newest - lateness:
                self.dead_letter(m, BadMessage("late", (
                    f"time {when!r} is more than the allowed lateness "
                    f"({self.allowed_lateness:g} s) earlier than series {series!r}'s "
                    f"newest row" if lateness else
                    f"time {when!r} is earlier than series {series!r}'s last scored row")))
                continue
            if t != _NAT:
                newest = t if newest is None else max(newest, t)
            state.offset = offset
            taken.append([t, offset, when, _nulls(values), m.timestamp()[1]])
        changed = bool(taken)  # a held row changes the state too
        if lateness:
            taken = self._reorder(state, taken)
        if taken:
            self._feed(state, taken)
        return changed

    def flush(self, state: SeriesState) -> bool:
        """End a series: release its held rows, score and publish the rest as a file's last
        rows are. True when the state changed."""
        changed = False
        if state.held:
            self._feed(state, self._reorder(state, [], flush=True))
            changed = True
        if state.scorer.pending or state.event is not None:
            self._publish(state, state.scorer.flush_arrays(), final=True)
            changed = True
        return changed

    def _feed(self, state: SeriesState, rows: list[list[Any]]) -> None:
        """Score rows, in time order, with the series' scorer and publish what is final."""
        state.last_time = max((row[0] for row in rows if row[0] != _NAT),
                              default=state.last_time)
        state.pending.extend(row[1:] for row in rows)
        self._publish(state, state.scorer.update_arrays(
            np.array([row[3] for row in rows], dtype=np.float64)))

    def _reorder(self, state: SeriesState, rows: list[list[Any]],
                 flush: bool = False) -> list[list[Any]]:
        """Hold rows until their time is ``allowed_lateness`` behind the newest seen (no row
        older than that is accepted), then release them in time order, ties in arrival order
        as a file's stable sort keeps them. A row with no time keeps its place after the newest
        time seen. The outcome does not depend on how messages fall into batches."""
        held = state.held
        newest = newest_time(state)
        for row in rows:
            if row[0] == _NAT:
                row[0] = newest if newest is not None else _NAT
            else:
                newest = row[0] if newest is None else max(newest, row[0])
        held.extend(rows)
        if not held or (newest is None and not flush):
            return []
        held.sort(key=lambda row: (row[0], row[1]))
        if flush:
            ready = len(held)
        else:
            cut = newest - self.lateness_ns
            ready = next((i for i, row in enumerate(held) if row[0] > cut), len(held))
        out, state.held = held[:ready], held[ready:]
        return out

    # -- results ---------------------------------------------------------------------------------
    def _publish(self, state: SeriesState, out: dict[str, np.ndarray], final: bool = False) -> None:
        k = len(out["position"])
        metas = [state.pending.popleft() for _ in range(k)]
        if not k and not final:
            return
        emit = self.emit
        key = state.series.encode()
        score, threshold, event = out["score"], out["threshold"], out["event"]
        driver = out.get("driver")
        anomalies = int(np.count_nonzero(event))
        self.metrics.anomalies += anomalies
        self.metrics.scored += k
        now_ms = time.time() * 1000
        if emit == "events":
            chosen = self._event_messages(state, metas, score, threshold, event, driver, final)
        else:
            picked = range(k) if emit == "all" else np.flatnonzero(event).tolist()
            chosen = [self._row(state, metas[i], score[i], threshold[i], event[i],
                                None if driver is None else driver[i]) for i in picked]
        for message in chosen:
            self.publish(key, message)
        self.metrics.published += len(chosen)
        self.metrics.latency(now_ms - np.array([m[3] for m in metas], dtype=float))

    def _row(self, state: SeriesState, meta: list[Any], score: float, threshold: float,
             event: int, driver: Any) -> dict[str, Any]:
        offset, when, values, _ = meta
        return {"time": when, "series": state.series,
                "values": dict(zip(self.channels, _nulls(values))),
                "score": float(score), "threshold": float(threshold),
                "is_anomaly": bool(event), "event": int(event),
                "driver": None if driver is None or not event else str(driver),
                "topic": self.input_topic, "partition": state.partition,
                "offset": int(offset)}

    def _event_messages(self, state: SeriesState, metas: list[Any], score: np.ndarray,
                        threshold: np.ndarray, event: np.ndarray, driver: Any,
                        final: bool) -> list[dict[str, Any]]:
        """An ``open`` message for the first row of each event, a ``close`` message once a row
        outside it follows (or the stream ends, with ``final``)."""
        messages = []
        base = {"series": state.series, "topic": self.input_topic,
                "partition": state.partition}
        for i, number in enumerate(event.tolist()):
            open_ = state.event
            if open_ is not None and number != open_["event"]:
                messages.append(dict(base, kind="close", **open_))
                state.event = open_ = None
            if number and open_ is None:
                state.event = {"event": number, "start": metas[i][1], "start_offset": metas[i][0],
                               "end": metas[i][1], "end_offset": metas[i][0], "rows": 0,
                               "peak": float(score[i]), "driver": None}
                messages.append(dict(base, kind="open", time=metas[i][1], offset=metas[i][0],
                                     event=number, score=float(score[i]),
                                     threshold=float(threshold[i]),
                                     driver=None if driver is None else str(driver[i])))
            if number:
                e = state.event
                e["rows"] += 1
                e["end"], e["end_offset"] = metas[i][1], metas[i][0]
                if score[i] >= e["peak"] or e["driver"] is None:
                    e["peak"] = float(score[i])
                    e["driver"] = None if driver is None else str(driver[i])
        if final and state.event is not None:
            messages.append(dict(base, kind="close", **state.event))
            state.event = None
        return messages


def newest_time(state: SeriesState) -> int | None:
    """The newest event time a series has seen: the held rows hold it, else the last scored."""
    return max((row[0] for row in state.held if row[0] != _NAT), default=state.last_time)


def _nulls(values: list[float]) -> list[float | None]:
    return [None if v != v else v for v in values]
