"""One series' state in a ``vigil stream`` worker, and its changelog record.

A series is scored by its own :class:`vigil.scoring.StreamScorer`. Beside the scorer's state the
worker keeps the input rows whose result is not final yet (a method that looks ahead, or an
alarm still undecided) so it can emit them, with their topic, partition and offset, once they
are; the last input offset folded in, so a message replayed after a restart is recognised; the
last time given to the scorer, for the time-order check; the rows held back to be put in time
order (``allowed_lateness``); and the anomaly event still open, for ``--emit events``.

The changelog record is JSON bytes keyed by series: ``{"v": 2, "series", "partition", "offset",
"last_time", "pending", "held", "event", "scorer": <StreamScorer.state()>}``, missing values as
null; never pickle. Version 1 records (no ``held``) are read too.
"""

from __future__ import annotations

import json
from collections import deque
from typing import Any

from vigil.errors import ConfigError
from vigil.scoring import StreamScorer

__all__ = ["SeriesState"]

_VERSION = 2
_READS = (1, 2)


class SeriesState:
    """What a worker holds for one series (see the module docstring)."""

    __slots__ = ("series", "partition", "offset", "last_time", "pending", "held", "event",
                 "scorer")

    def __init__(self, model: Any, series: str, partition: int) -> None:
        self.series = series
        self.partition = partition
        self.offset = -1  # the last input offset taken into this state (scorer or held)
        self.last_time: int | None = None  # ns, of the last row given to the scorer
        #: Rows given to the scorer and not returned yet: [offset, raw time, values, ts_ms]
        #: (values with None for a missing one).
        self.pending: deque[list[Any]] = deque()
        #: Rows waiting for their time order (allowed lateness): [time ns, offset, raw time,
        #: values, ts_ms], in arrival order.
        self.held: list[list[Any]] = []
        #: The open anomaly event for --emit events: number, start time and offset, rows, peak
        #: score, its driver; None when none is open.
        self.event: dict[str, Any] | None = None
        self.scorer = StreamScorer(_model_for(model, series))

    def to_bytes(self) -> bytes:
        """The changelog record."""
        head = json.dumps({"v": _VERSION, "series": self.series, "partition": self.partition,
                           "offset": self.offset, "last_time": self.last_time,
                           "pending": list(self.pending), "held": self.held,
                           "event": self.event},
                          separators=(",", ":"), allow_nan=False)
        return head[:-1].encode() + b',"scorer":' + self.scorer.state() + b"}"

    @classmethod
    def from_bytes(cls, model: Any, data: bytes) -> SeriesState:
        """A state from its changelog record, for this model (else a ConfigError)."""
        try:
            d = json.loads(data)
            if d.get("v") not in _READS:
                raise ConfigError(f"changelog record version {d.get('v')!r}; this vigil reads "
                                  f"versions {', '.join(map(str, _READS))}.")
            state = cls.__new__(cls)
            state.series, state.partition = str(d["series"]), int(d["partition"])
            state.offset = int(d["offset"])
            state.last_time = None if d["last_time"] is None else int(d["last_time"])
            state.pending = deque(list(row) for row in d["pending"])
            state.held = [list(row) for row in d.get("held", [])]
            state.event = d["event"]
            state.scorer = StreamScorer.from_state(
                _model_for(model, state.series),
                json.dumps(d["scorer"], separators=(",", ":")).encode())
        except ConfigError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise ConfigError(f"a malformed changelog record: {str(error)[:120]}") from None
        return state


def _model_for(model: Any, series: str) -> Any:
    """The model that scores ``series``: the model itself, or a bundle's model of that series
    (a DataError when the bundle has none for it and no fallback)."""
    for_series = getattr(model, "for_series", None)
    return model if for_series is None else for_series(series)
