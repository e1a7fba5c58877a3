"""``ModelBundle``: one :class:`vigil.Model` per series, fitted, saved and used together.

A fleet's machines each have their own normal: a bundle fits one model of the same method on
each series' own rows (in a process pool with ``jobs``), and routes every row to its series'
model when scoring, so a series is judged against itself. A series not seen at fit time is
refused with a clear error, or with ``unseen="fallback"`` scored by a model fitted on all
series together. Saved as one ``.vigil`` file whose manifest maps series to member models
(each a whole model file, checked as one), never pickle.

Results equal those of each series' own model on that series' rows, with events numbered
through the series in the order each first appears, as :meth:`vigil.Model.detect` numbers them.
"""

from __future__ import annotations

import io as _io
import os
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import IO, Any

import numpy as np
import pandas as pd

from vigil import io
from vigil.detectors import DEFAULT_METHOD
from vigil.errors import ConfigError, DataError, FitWarning, NotFittedError
from vigil.policy import series_codes

__all__ = ["ModelBundle", "UNSEEN"]

UNSEEN = ("error", "fallback")


class ModelBundle:
    """One model per series (see the module docstring); ``model_kwargs`` go to each
    :class:`vigil.Model` (threshold, alarms, channels, time_column, label_column, the
    method's parameters)."""

    def __init__(self, method: str = DEFAULT_METHOD, *, series_column: str,
                 unseen: str = "error", jobs: int = 1, **model_kwargs: Any) -> None:
        from vigil.model import Model

        if not series_column:
            raise ConfigError("a model per series needs series_column (--series-column).")
        if unseen not in UNSEEN:
            raise ConfigError(f"unseen must be one of {', '.join(UNSEEN)}. Got {unseen!r}.")
        if int(jobs) < 1:
            raise ConfigError(f"jobs must be 1 or more. Got {jobs}.")
        Model(method, **model_kwargs)  # the settings checked once, before any fit
        self.method, self.unseen, self.jobs = method, unseen, int(jobs)
        self.series_column = series_column
        self.model_kwargs = dict(model_kwargs)
        self.models_: dict[str, Any] = {}
        self.fallback_: Any = None

    def __repr__(self) -> str:
        return (f"ModelBundle({self.method!r}, series_column={self.series_column!r}, "
                f"{len(self.models_)} series)")

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, data: Any, progress: Callable[[int, int], None] | None = None) -> ModelBundle:
        """Fit one model on each series' rows of ``data`` (a file, frame or Dataset), and with
        ``unseen="fallback"`` one more on all rows. ``progress(done, total)`` per series."""
        from vigil.model import load

        ds = self._dataset(data, fitting=True)
        parts = list(_series_parts(ds))
        settings = (self.method, {**self.model_kwargs, "series_column": None}, _roles(ds))
        total = len(parts) + (self.unseen == "fallback")
        self.models_, warned = {}, []
        if self.jobs > 1 and len(parts) > 1:
            with ProcessPoolExecutor(min(self.jobs, len(parts))) as pool:
                futures = [(name, pool.submit(_fit_bytes, settings, frame))
                           for name, frame in parts]
                for done, (name, future) in enumerate(futures, 1):
                    data_bytes, said = future.result()
                    self.models_[name] = load(data_bytes)
                    warned += [(name, text) for text in said]
                    if progress is not None:
                        progress(done, total)
        else:
            for done, (name, frame) in enumerate(parts, 1):
                self.models_[name], said = _fit_model(settings, frame)
                warned += [(name, text) for text in said]
                if progress is not None:
                    progress(done, total)
        if warned:
            series = len({name for name, _ in warned})
            warnings.warn(f"{series} of {len(parts)} series fitted with a warning; the first, "
                          f"series {warned[0][0]!r}: {warned[0][1]}", FitWarning, stacklevel=2)
        if self.unseen == "fallback":
            from vigil.model import Model

            self.fallback_ = Model(self.method, **{**self.model_kwargs,
                                                   "series_column": ds.series_column}).fit(ds)
            if progress is not None:
                progress(total, total)
        return self

    # -- what a Model has ------------------------------------------------------------------
    @property
    def channels_(self) -> list[str]:
        return self._any().channels_

    @property
    def time_column_(self) -> str | None:
        return self._any().time_column_

    @property
    def series_column_(self) -> str:
        return self.series_column

    @property
    def alarms(self) -> Any:
        return self._any().alarms

    @property
    def training_(self) -> dict[str, Any]:
        """What the bundle was fitted on: the series and their rows."""
        rows = [m.training_.get("rows", 0) for m in self.models_.values()]
        return {"series": len(self.models_), "rows": int(sum(rows)),
                "fallback": self.fallback_ is not None}

    def for_series(self, series: Any) -> Any:
        """The model that scores ``series``: its own, else the fallback, else a DataError."""
        self._require_fitted()
        model = self.models_.get(str(series))
        if model is not None:
            return model
        if self.fallback_ is not None:
            return self.fallback_
        known = ", ".join(list(self.models_)[:5]) + (", ..." if len(self.models_) > 5 else "")
        raise DataError(f"series {str(series)[:80]!r} was not seen when the bundle was fitted "
                        f"(it has models for {len(self.models_)} series: {known}); fit it, or "
                        "fit the bundle with unseen='fallback' (--unseen fallback) to score new "
                        "series with a model of all series together.")

    # -- scoring ---------------------------------------------------------------------------
    def score(self, data: Any, progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """One score per input row, in input order, each from its series' model."""
        return self.detect(data, progress)["score"].to_numpy()

    def detect(self, data: Any, progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
        """:meth:`vigil.Model.detect` of each series by its own model, in input order; events
        numbered through the series in the order each first appears."""
        self._require_fitted()
        ds = self._dataset(data)
        results, found = [], 0
        parts = list(_series_parts(ds))
        for done, (name, frame) in enumerate(parts, 1):
            model = self.for_series(name)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # said once, when the whole data was read
                part = model.detect(_part(_roles(ds), frame, model.series_column_))
            events = part["event"].to_numpy()
            part["event"] = np.where(events > 0, events + found, 0)
            found += int(events.max(initial=0))
            part.index = frame.index
            if ds.series_column not in part:
                part.insert(0, ds.series_column, frame[ds.series_column])
            results.append(part)
            if progress is not None:
                progress(done, len(parts))
        out = pd.concat(results).sort_index(kind="stable")
        out.index = ds.frame.index
        out.attrs["vigil"] = {**results[0].attrs.get("vigil", {}),
                              "series_column": ds.series_column, "per_series": True}
        return out

    # -- persistence -----------------------------------------------------------------------
    def save(self, target: str | os.PathLike[str] | IO[bytes]) -> None:
        """Write the bundle to one ``.vigil`` file (or a binary file object)."""
        from vigil.persist.bundles import save_bundle

        self._require_fitted()
        save_bundle(self, target)

    # -- internals -------------------------------------------------------------------------
    def _any(self) -> Any:
        self._require_fitted()
        return next(iter(self.models_.values()))

    def _require_fitted(self) -> None:
        if not self.models_:
            raise NotFittedError("This bundle is not fitted yet: call fit first (or vigil.load).")

    def _dataset(self, data: Any, fitting: bool = False) -> io.Dataset:
        roles = {k: self.model_kwargs.get(k) for k in ("channels", "time_column", "label_column")}
        if isinstance(roles["channels"], str):
            roles["channels"] = [roles["channels"]]
        if not fitting:
            roles.update(channels=self.channels_, time_column=self.time_column_)
        roles["series_column"] = self.series_column
        if isinstance(data, io.Dataset):
            return data
        if isinstance(data, pd.DataFrame):
            return io.from_frame(data, **roles)
        if isinstance(data, (str, os.PathLike)):
            return io.read(data, **roles)
        raise DataError(f"cannot read data of type {type(data).__name__}: give a file path, a "
                        "pandas DataFrame or a vigil.Dataset (with its series column).")


def _series_parts(ds: io.Dataset) -> Any:
    """(series name, its rows of the frame in input order) for each series, first seen first."""
    codes = series_codes(ds.frame, ds.series_column)
    names = pd.unique(ds.frame[ds.series_column])
    order = np.argsort(codes, kind="stable")
    cuts = np.flatnonzero(np.diff(codes[order])) + 1
    for k, rows in enumerate(np.split(order, cuts)):
        yield str(names[k]), ds.frame.iloc[rows]


def _roles(ds: io.Dataset) -> dict[str, Any]:
    return {"channels": ds.channels, "time_column": ds.time_column,
            "label_column": ds.label_column, "source": ds.source}


def _part(roles: dict[str, Any], frame: pd.DataFrame,
          series_column: str | None = None) -> io.Dataset:
    """One series' rows as a Dataset (with its series column for the fallback model)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # said once, when the whole data was read
        return io.from_frame(frame, series_column=series_column, **roles)


def _fit_model(settings: tuple[str, dict[str, Any], dict[str, Any]],
               frame: pd.DataFrame) -> tuple[Any, list[str]]:
    """One series' model, and the fit warnings it gave (gathered: one per series would drown
    the user)."""
    from vigil.model import Model

    method, kwargs, roles = settings
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always", FitWarning)
        model = Model(method, **kwargs).fit(_part(roles, frame))
    return model, [str(w.message) for w in said if issubclass(w.category, FitWarning)]


def _fit_bytes(settings: tuple[str, dict[str, Any], dict[str, Any]],
               frame: pd.DataFrame) -> tuple[bytes, list[str]]:
    """In a worker process: the fitted model as .vigil bytes (models cross processes as files,
    never pickled), and its warnings."""
    model, said = _fit_model(settings, frame)
    buffer = _io.BytesIO()
    model.save(buffer)
    return buffer.getvalue(), said
