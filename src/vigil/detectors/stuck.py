"""Stuck-sensor detector: a channel that repeats one value far longer than it did in training.

A frozen sensor (or a historian tag that stopped updating) reports the same reading over and over;
every value is in range, so no value-based method sees it. Here each channel learns how long it
holds one value in normal operation, its *reference run*: the longest run of repeated values in
the training rows. A row's channel score is the length of the run it is in so far, divided by that
reference, so 1.0 means "as long as the longest normal hold". Channels that hold by design (a
reading updated every 5 rows, a coarsely quantised one) have long reference runs and are learned,
not flagged; a channel constant through the whole training set, or a discrete one (a 0/1 command,
a state code: fewer distinct values than 1% of the rows), is never flagged (a stuck reading cannot
be told from its normal behaviour). The row's score is the largest channel score, and that
channel is the one that drove it (``score_channels``).

Causal and chunk-exact: a row's run length needs only the rows before it, and it is capped at
``saturation`` times the reference, so a row depends on a bounded number of past rows however long
a run lasts (scores saturate there).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from vigil.detectors.base import Detector, Param
from vigil.detectors.state import PER_CHANNEL, StateSpec


def run_lengths(x: np.ndarray) -> np.ndarray:
    """Length of the run of repeated values each element of ``x`` ends so far (1 = a new value),
    ``int64[n]``; a run is counted from the start of ``x``. Exact equality: ``x[t] == x[t-1]``.

    Examples:
        >>> run_lengths(np.array([3.0, 3.0, 1.0, 1.0, 1.0, 2.0])).tolist()
        [1, 2, 1, 2, 3, 1]
    """
    n = len(x)
    index = np.arange(n, dtype=np.int64)
    if n == 0:
        return index
    # Where each run starts, carried forward by a running maximum: no loop over rows.
    starts = np.empty(n, dtype=np.int64)
    changed = np.empty(n, dtype=bool)
    changed[0] = True
    np.not_equal(x[1:], x[:-1], out=changed[1:])
    np.multiply(index, changed, out=starts)
    np.maximum.accumulate(starts, out=starts)
    np.subtract(index, starts, out=starts)
    starts += 1
    return starts


#: A training run longer than this many times the channel's 99th-percentile run is itself a
#: stuck spell, not a normal hold (our choice: a hold-by-design channel's runs vary by far less).
OUTLIER_RUN_FACTOR = 3.0


#: A channel with fewer distinct training values than this fraction of its rows is discrete and
#: is not watched. Measured on shared/datasets: channels below 1% (0/1 command channels of the
#: spacecraft telemetry, counters of the server metrics) hold values in normal test rows 3-20%
#: of the time longer than in training; channels above it under 0.2%, bar a few nab series.
DISCRETE_FRACTION = 0.01


def _normal_longest(x: np.ndarray) -> int:
    """The longest run of ``x`` that is not an outlier among its runs: runs longer than
    ``OUTLIER_RUN_FACTOR`` times the 99th percentile of the run lengths are left out."""
    changes = np.flatnonzero(x[1:] != x[:-1]) + 1
    lengths = np.diff(np.r_[0, changes, len(x)])
    limit = OUTLIER_RUN_FACTOR * np.quantile(lengths, 0.99)
    normal = lengths[lengths <= limit]
    return int(normal.max()) if normal.size else int(lengths.max())


class StuckSensor(Detector):
    """Stuck sensor: the current run of one repeated value, in units of the longest run the channel
    held in training (at least ``min_run`` rows), the largest over channels.

    ``score = min(run, cap) / reference`` per channel, where ``reference`` is the channel's longest
    training run floored at ``min_run`` and ``cap = ceil(saturation * reference)``. A score above
    ``natural_threshold`` (1.5) is a run half again as long as anything normal.

    Examples:
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(20.0, 1.0, size=(2000, 2)).round(2)
        >>> det = StuckSensor().fit(X[:1000])
        >>> X[1500:1800, 1] = X[1500, 1]  # channel 1 freezes for 300 rows
        >>> scores = det.score(X)
        >>> int((scores[1500:1800] > det.natural_threshold).sum()), int((scores > 1.5).sum())
        (285, 285)
        >>> int(det.score_channels(X)[1799].argmax())
        1
    """

    name = "stuck"
    kinds: ClassVar[tuple[str, ...]] = ("stuck",)
    attributes: ClassVar[bool] = True
    score_is_channel_max: ClassVar[bool] = True
    params = {
        # 10 rows: a channel that never repeated a reading in training must show ten identical
        # readings in a row to score 1.0 (and 16 to pass natural_threshold); a shorter repeat is
        # within what a noisy, quantised channel does by chance in a quiet spell.
        "min_run": Param(10, int, low=2),
        # A run four times the longest normal hold is stuck beyond doubt; counting further would
        # only add rows of context to every scoring chunk. Above natural_threshold with room.
        "saturation": Param(4.0, float, low=2.0),
    }
    # The longest run in a sample grows with the sample (for chance repeats, by a row or so each
    # time the data doubles), so the training record slightly under-states what a longer stretch
    # of normal operation shows: flag runs half again as long as it, not just longer.
    natural_threshold = 1.5
    fitted_state = {
        # in rows; +inf for a channel never watched (constant or discrete in training); at most
        # 2^53, where a run count stops being exact in a float
        "reference_": StateSpec("f", ("d",), positive=True, allow_inf=True, high=2.0**53),
        "low_": PER_CHANNEL,
        "high_": PER_CHANNEL,
    }

    def _fit(self, X: np.ndarray) -> None:
        # The longest normal training run, not a high quantile: a hold-by-design channel's long
        # runs are its normal behaviour, and a quantile below the maximum would score the
        # training set's own longest holds as anomalies. But training data may hold a stuck
        # spell itself (`vigil detect` fits on the file it flags), so a run far longer than
        # nearly all others is left out (_normal_longest). Exact equality,
        # not a tolerance: a frozen reading repeats bit for bit (the last value carried forward),
        # while a tolerance would merge a slow, legitimate one-quantum-a-row movement into a run.
        longest = np.array([_normal_longest(X[:, j]) for j in range(X.shape[1])], dtype=float)
        reference = np.maximum(longest, float(self.min_run))
        # One run through all training rows: the channel is constant by design; never flag it.
        # Nor a discrete channel (a state, a command, a count): holding a value is what it does.
        distinct = np.array([np.unique(X[:, j]).size for j in range(X.shape[1])])
        discrete = distinct < DISCRETE_FRACTION * len(X)
        self.reference_ = np.where((longest >= len(X)) | discrete, np.inf, reference)
        self.low_, self.high_ = X.min(axis=0), X.max(axis=0)

    def _caps(self) -> np.ndarray:
        """Per channel, the longest run the score counts (0 for a never-flagged channel)."""
        finite = np.isfinite(self.reference_)
        caps = np.ceil(self.saturation * np.where(finite, self.reference_, 0.0))
        return caps.astype(np.int64)

    def _context_rows(self) -> int:
        # A run of `cap` rows ending at a row needs the `cap - 1` rows before it.
        return max(0, int(self._caps().max()) - 1)

    def _row_bytes(self) -> int:
        return 8 * 4 + 1  # run starts, index, row score, one channel's score; the change mask

    def _channel(self, x: np.ndarray, j: int, out: np.ndarray) -> None:
        """Channel ``j``'s score of the values ``x``, written into ``out``."""
        cap = self._caps()[j]
        if cap == 0:
            out[:] = 0.0
            return
        runs = run_lengths(x)
        np.minimum(runs, cap, out=runs)
        np.divide(runs, self.reference_[j], out=out)
        # A hold at the channel's training floor or ceiling is idling or saturation (no traffic,
        # a valve fully open), not a frozen reading.
        out[(x <= self.low_[j]) | (x >= self.high_[j])] = 0.0

    def _score(self, X: np.ndarray) -> np.ndarray:
        out = np.empty(len(X))
        column = np.empty(len(X))
        for j in range(X.shape[1]):
            self._channel(X[:, j], j, out if j == 0 else column)
            if j:
                np.maximum(out, column, out=out)
        return out

    def _score_channels(self, X: np.ndarray) -> np.ndarray:
        out = np.empty(X.shape)
        for j in range(X.shape[1]):
            self._channel(X[:, j], j, out[:, j])
        return out
