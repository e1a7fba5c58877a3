"""``Model``: a detector and a threshold fitted together, the one object that vigil trains once
and then uses everywhere (in process, saved to a ``.vigil`` file, on Spark, on a stream).

``fit`` learns the detector from the training rows and fits the threshold on the detector's own
scores of those rows (peaks-over-threshold by default), so the cut-off comes from the data,
not from a hand-set constant. The alarm rules (``vigil.alarms``) then turn threshold crossings
into events, per series. ``detect`` returns one output row per input row.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from typing import IO, Any

import numpy as np
import pandas as pd

from vigil import io
from vigil.alarms import Alarms, make_alarms
from vigil.detectors import DEFAULT_METHOD, Detector, make_detector
from vigil.errors import ConfigError, DataError, FitWarning, NotFittedError
from vigil.thresholds import Threshold, make_threshold

#: Rows scored per step when progress is reported; the detector chunks further by memory.
BLOCK_ROWS = 1_000_000


class Model:
    """A detection method plus a threshold fitted on its training scores.

    Args:
        method: a registered method name (``vigil methods`` lists them).
        threshold: ``"pot"`` (default), ``"quantile"``, ``"sigma"``, ``"fixed:<value>"``, a
            float, or a :class:`vigil.thresholds.Threshold`.
        alarms: how threshold crossings become events: ``"default"``, ``"off"`` (every row
            above the threshold is flagged, nothing else), a dict of rules or an
            :class:`vigil.alarms.Alarms`.
        channels, time_column, label_column, series_column: column roles when fitting on a file
            or DataFrame (found automatically when not given; see :func:`vigil.read`).
        **params: the method's parameters.

    Examples:
        >>> import numpy as np, pandas as pd, vigil
        >>> rng = np.random.default_rng(0)
        >>> df = pd.DataFrame({"temperature": rng.normal(20, 1, 2000)})
        >>> df.loc[1500, "temperature"] = 35.0
        >>> result = vigil.Model("robust_zscore").fit(df).detect(df)
        >>> result.index[result["is_anomaly"]].tolist()
        [1500]
    """

    def __init__(
        self,
        method: str = DEFAULT_METHOD,
        *,
        threshold: str | float | Threshold = "pot",
        alarms: str | dict[str, Any] | Alarms = "default",
        channels: Sequence[str] | None = None,
        time_column: str | None = None,
        label_column: str | None = None,
        series_column: str | None = None,
        **params: Any,
    ) -> None:
        self.method = method
        self.params = dict(params)
        self.detector = make_detector(method, **params)
        self.threshold = make_threshold(threshold)
        self.alarms = make_alarms(alarms)
        self.roles = {
            "channels": ([channels] if isinstance(channels, str) else list(channels))
            if channels is not None else None,
            "time_column": time_column,
            "label_column": label_column,
            "series_column": series_column,
        }

    def __repr__(self) -> str:
        args = "".join(f", {k}={v!r}" for k, v in self.params.items())
        return f"Model({self.method!r}{args}, threshold={self.threshold.name!r})"

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, data: Any, labels: np.ndarray | None = None) -> Model:
        """Fit the detector on ``data`` and the threshold on its scores of that data.

        A supervised method (``random_forest``) learns from ``labels`` (0/1 per row, in input
        order) or else from the data's label column; the others ignore both.
        """
        ds = self._dataset(data, fitting=True)
        X = ds.values()[ds.order]
        _warn_constant(X, ds.channels)
        y = None
        if self.detector.supervised:
            y = labels if labels is not None else ds.labels()
            if y is None:
                raise ConfigError(
                    f"{self.method} is supervised and {ds.source} has no label column: name "
                    "its 0/1 column with --label-column (Model(label_column=...)).")
            y = np.asarray(y)
            if y.shape != (len(ds),):
                raise DataError(f"{len(y)} labels for {len(ds)} rows of {ds.source}.")
            y = y[ds.order]
        self.detector.fit(X, y)
        self.channels_ = list(ds.channels)
        self.time_column_ = ds.time_column
        self.series_column_ = ds.series_column
        if type(self.detector).training_scores is Detector.training_scores:
            train_scores = self._score_dataset(ds)  # per series, in blocks
        else:
            train_scores = self.detector.training_scores(X)
        self.threshold.fit(train_scores, fallback=self.detector.natural_threshold)
        self.alarms.fit(train_scores)
        self.training_ = _summary(ds, train_scores)
        return self

    @property
    def threshold_(self) -> float:
        """The fitted cut-off: a score above it is an anomaly."""
        self._require_fitted()
        return float(self.threshold.value_)

    # -- scoring ---------------------------------------------------------------------------
    def score(self, data: Any, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """One score per input row, in input order; higher = more anomalous."""
        self._require_fitted()
        return self._score_dataset(self._dataset(data), progress)

    def detect(self, data: Any, progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
        """Score and flag every row: a frame indexed like the input with the time and channel
        values, ``score``, ``threshold``, ``is_anomaly`` (the row is inside an alarm event),
        ``event`` (the event's number, 1, 2, ... in time order; 0 outside events), ``driver``
        (the channel that drove the score, where the method can tell) and ``score_<channel>``
        per channel. :func:`vigil.alarms.event_table` lists the events."""
        self._require_fitted()
        ds = self._dataset(data)
        scores, parts = self._score_dataset(ds, progress, channels=True)
        return self._result_frame(ds, scores, parts)

    # -- internals -------------------------------------------------------------------------
    def _require_fitted(self) -> None:
        if not hasattr(self, "channels_"):
            raise NotFittedError("This model is not fitted yet: call fit first (or vigil.load).")

    def _dataset(self, data: Any, fitting: bool = False) -> io.Dataset:
        roles = dict(self.roles)
        if not fitting:
            roles.update(channels=self.channels_, time_column=self.time_column_,
                         series_column=self.series_column_)
        if isinstance(data, io.Dataset):
            ds = data
        elif isinstance(data, np.ndarray):
            ds = io.from_frame(_array_frame(data, roles["channels"]), channels=roles["channels"])
        elif isinstance(data, pd.DataFrame):
            self._check_columns(data.columns, "<DataFrame>", fitting)
            ds = io.from_frame(data, **roles)
        elif isinstance(data, (str, os.PathLike)):
            ds = io.read(data, **roles)
        else:
            raise DataError(f"cannot read data of type {type(data).__name__}: give a file path, "
                            "a pandas DataFrame, a numpy array or a vigil.Dataset.")
        if not fitting:
            self._check_columns(ds.channels, ds.source, fitting)
        return ds

    def _check_columns(self, columns: Any, source: str, fitting: bool) -> None:
        if fitting:
            return
        missing = [c for c in self.channels_ if c not in set(columns)]
        if missing:
            raise DataError(
                f"{source}: channel {missing[0]!r}, which the model was trained on, is missing "
                f"(the model needs: {', '.join(self.channels_)})."
            )

    def _score_dataset(self, ds: io.Dataset, progress: Callable | None = None,
                       channels: bool = False) -> Any:
        """Scores in input order (with ``channels``, also the per-channel parts, or None: one
        pass where the method allows); each series is scored on its own, in time order, in
        blocks that carry the detector's context and lookahead rows."""
        in_order = _is_identity(ds.order)  # rows already in time order: no gather, no scatter
        X = ds.values() if in_order else ds.values()[ds.order]
        det = self.detector
        scores = np.empty(len(X))
        parts = np.empty(X.shape) if channels and det.attributes else None
        for first, last in _series_bounds(ds):
            score_series(det, X[first:last], 0, last - first, scores[first:last],
                         None if parts is None else parts[first:last],
                         None if progress is None else
                         (lambda done, first=first: progress(first + done, len(X))))
        if not in_order:
            scores, parts = _unorder(scores, ds.order), None if parts is None else _unorder(
                parts, ds.order)
        return (scores, parts) if channels else scores

    def _result_frame(self, ds: io.Dataset, scores: np.ndarray,
                      parts: np.ndarray | None) -> pd.DataFrame:
        frame = ds.frame
        cols = ([ds.time_column] if ds.time_column else []) + list(self.channels_)
        if ds.series_column:
            cols.insert(0, ds.series_column)
        if ds.label_column:
            cols.append(ds.label_column)
        out = frame[cols].copy()
        out["score"] = scores
        thresholds = self._thresholds(ds, scores)
        out["threshold"] = thresholds
        out["is_anomaly"], out["event"] = self._events(ds, scores, thresholds)
        if parts is not None:
            out["driver"] = pd.Categorical.from_codes(parts.argmax(axis=1), self.channels_)
            # one block, not a column at a time: wide data would fragment the frame
            named = pd.DataFrame(parts, index=out.index,
                                 columns=[f"score_{name}" for name in self.channels_])
            out = pd.concat([out, named], axis=1)
        out.attrs["vigil"] = {"time_column": ds.time_column, "channels": list(self.channels_),
                              "label_column": ds.label_column, "method": self.method,
                              "series_column": ds.series_column}
        missing = ds.missing_mask()
        if missing.any():
            out["filled"] = missing.any(axis=1)
        return out

    def _thresholds(self, ds: io.Dataset, scores: np.ndarray) -> np.ndarray:
        """Each row's threshold, in input order: the fitted value, or for an adaptive
        threshold (``values``) its causal value, each series from the end of training on."""
        if not hasattr(self.threshold, "values"):
            return np.full(len(scores), self.threshold_)
        ordered = scores[ds.order]
        values = np.empty(len(ordered))
        for first, last in _series_bounds(ds):
            values[first:last] = self.threshold.values(ordered[first:last])
        return _unorder(values, ds.order)

    def _events(self, ds: io.Dataset, scores: np.ndarray,
                thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row, in input order: inside an event, and the event's number (0: none). Events
        are found per series in time order and numbered through the series in turn."""
        ordered, limits = scores[ds.order], thresholds[ds.order]
        numbers = np.zeros(len(ordered), dtype=np.int64)
        found = 0
        for first, last in _series_bounds(ds):
            spans = self.alarms.events(ordered[first:last], limits[first:last])
            numbers[first:last] = spans.numbers(last - first, offset=found)
            found += len(spans)
        out = np.empty_like(numbers)
        out[ds.order] = numbers
        return out > 0, out

    def stream(self) -> Any:
        """A :class:`vigil.scoring.StreamScorer` for one series: rows in as they arrive, each
        row's final result out once its lookahead has come, equal to :meth:`detect`."""
        from vigil.scoring import StreamScorer

        self._require_fitted()
        return StreamScorer(self)

    # -- persistence -----------------------------------------------------------------------
    def save(self, target: str | os.PathLike[str] | IO[bytes]) -> None:
        """Write the fitted model to a ``.vigil`` file (a zip of JSON and .npy, no pickle), or
        to a binary file object (``io.BytesIO()``: bytes to broadcast, e.g. on Spark)."""
        from vigil.persist import save

        save(self, target)


def load(source: str | os.PathLike[str] | bytes | IO[bytes]) -> Model:
    """Read a model saved by :meth:`Model.save` from a path, bytes or a binary file object;
    never runs code from it, and refuses a damaged or tampered one in one line
    (:class:`~vigil.errors.ModelFileError`)."""
    from vigil.persist import load as _load

    return _load(source)


def score_series(det: Any, X: np.ndarray, start: int, stop: int, scores: np.ndarray,
                 parts: np.ndarray | None = None,
                 progress: Callable[[int], None] | None = None) -> None:
    """Score rows ``[start, stop)`` of ``X`` (one series' values, in time order) into
    ``scores`` (and each channel's part into ``parts``, when given), in blocks of
    ``BLOCK_ROWS`` that carry the detector's context and lookahead rows from ``X`` around
    them: the same scores whatever part of the series ``X`` holds, so an engine that cuts a
    series into chunks gives each the rows around it and gets the whole series' scores."""
    before, after = det._context_rows(), det._lookahead_rows()
    for begin in range(start, stop, BLOCK_ROWS):
        end = min(begin + BLOCK_ROWS, stop)
        lead, trail = min(begin, before), min(len(X) - end, after)
        block = X[begin - lead : end + trail]
        keep = slice(lead, lead + end - begin)
        into = slice(begin - start, end - start)
        if parts is None:
            scores[into] = det.score(block)[keep]
        else:
            block_scores, block_parts = det.score_with_channels(block)
            scores[into], parts[into] = block_scores[keep], block_parts[keep]
        if progress is not None:
            progress(end - start)


def _is_identity(order: np.ndarray) -> bool:
    """Whether ``order`` is 0, 1, 2, ...: the rows are already in time order."""
    return bool(order.size == 0 or (order[0] == 0 and order[-1] == order.size - 1
                                    and np.all(np.diff(order) == 1)))


def _unorder(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Values computed in time order (``order``), back in input order."""
    out = np.empty_like(values)
    out[order] = values
    return out


def _warn_constant(X: np.ndarray, channels: Sequence[str]) -> None:
    """Say which channels never change in the training rows: their normal spread is unknown,
    so any later change in them scores as extreme."""
    constant = [name for name, flat in zip(channels, np.ptp(X, axis=0) == 0) if flat]
    if constant and len(X) > 1:
        shown = ", ".join(constant[:8]) + (f" and {len(constant) - 8} more" if len(constant) > 8 else "")
        warnings.warn(f"{len(constant)} of {len(channels)} channels never change in the training "
                      f"rows, so any change in them will score as extreme: {shown}.", FitWarning, stacklevel=3)


def _array_frame(X: np.ndarray, channels: Sequence[str] | None) -> pd.DataFrame:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise DataError(f"expected a 1-D or 2-D array (rows x channels); got {X.ndim} dimensions "
                        f"of shape {X.shape}.")
    names = list(channels) if channels else [f"x{i}" for i in range(X.shape[1])]
    if len(names) != X.shape[1]:
        raise DataError(f"the array has {X.shape[1]} columns but {len(names)} channel names.")
    return pd.DataFrame(X, columns=names)


def _series_bounds(ds: io.Dataset) -> list[tuple[int, int]]:
    """(start, stop) of each series' rows within the time-ordered rows."""
    if not ds.series_column:
        return [(0, len(ds))]
    ids = ds.frame[ds.series_column].to_numpy()[ds.order]
    cuts = np.flatnonzero(ids[1:] != ids[:-1]) + 1
    edges = [0, *cuts.tolist(), len(ids)]
    return list(zip(edges[:-1], edges[1:]))


def _summary(ds: io.Dataset, scores: np.ndarray) -> dict[str, Any]:
    """What the model was trained on, for the model file and ``vigil`` reports."""
    summary: dict[str, Any] = {
        "rows": int(len(ds)),
        "source": str(ds.source),
        "score_median": float(np.median(scores)),
        "score_max": float(scores.max()),
    }
    if ds.time_column:
        times = ds.frame[ds.time_column]
        summary.update(start=str(times.min()), end=str(times.max()))
    return summary
