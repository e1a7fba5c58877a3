"""The detector contract, as a base class.

A detector turns rows of sensor values into one anomaly score per row: ``fit(X)`` learns what
normal looks like, ``score(X)`` returns ``float64[n]`` where **higher means more anomalous**,
always, for every method. ``X`` is ``float64[n, d]``: rows in time order, one column per channel.
Detectors only score; a separate threshold (``vigil.thresholds``) decides what is an anomaly.

Subclasses declare their parameters in ``params`` (one declarative table: default and allowed
values), and write ``_fit`` / ``_score`` (and ``_score_channels`` where a score can be attributed
to channels). The public methods here validate, convert and dispatch, so a new detector is the
maths alone.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from vigil.detectors.state import N_CHANNELS, StateSpec, check_state
from vigil.errors import ConfigError, DataError, ModelFileError, NotFittedError


#: Where a long fit (a detector with ``reports_progress``) reports each step:
#: ``callback(done, total, text)``, e.g. epoch, epochs, "validation loss 0.02". The CLI sets
#: it to drive its progress bar; None (the default): nothing is reported.
FIT_PROGRESS: contextvars.ContextVar[Callable[[int, int, str], None] | None] = \
    contextvars.ContextVar("vigil_fit_progress", default=None)


@dataclass(frozen=True)
class Param:
    """One row of a detector's parameter table: its default and what values are allowed."""

    default: Any
    kind: type | tuple[type, ...] = float
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[Any, ...] = ()
    allow_none: bool = False
    allow_auto: bool = False

    def describe(self) -> str:
        """Plain-words description of the allowed values, for error messages and help."""
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        what = " or ".join("an int" if k is int else f"a {k.__name__}" for k in kinds)
        if self.choices:
            what = "one of " + ", ".join(repr(c) for c in self.choices)
        elif self.low is not None or self.high is not None:
            lo = "-inf" if self.low is None else f"{self.low:g}"
            hi = "inf" if self.high is None else f"{self.high:g}"
            what += f" in {'(' if self.low_open else '['}{lo}, {hi}{')' if self.high is None else ']'}"
        extras = (["None"] if self.allow_none else []) + (['"auto"'] if self.allow_auto else [])
        return what + "".join(f" or {e}" for e in extras)

    def accepts(self, value: Any) -> bool:
        """Whether ``value`` is allowed."""
        if value is None:
            return self.allow_none
        if isinstance(value, str) and value == "auto":
            return self.allow_auto
        if self.choices:
            return value in self.choices
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        if isinstance(value, bool) and bool not in kinds:
            return False
        if float in kinds and isinstance(value, (int, np.integer)):
            value = float(value)
        if not isinstance(value, kinds) and not any(
            k is int and isinstance(value, np.integer) for k in kinds
        ):
            return False
        if isinstance(value, (int, float, np.integer)) and not isinstance(value, bool):
            if isinstance(value, float) and not math.isfinite(value):
                return False
            if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
                return False
            if self.high is not None and value > self.high:
                return False
        return True


class Detector:
    """Base of every detector: scores rows, higher = more anomalous.

    Class attributes a subclass sets:
        name: the registry name (``vigil methods`` lists it).
        params: the parameter table, name -> :class:`Param`.
        min_rows: the fewest training rows the method can fit.
        natural_threshold: the method's textbook cut-off on its own score, used only when a
            threshold cannot be fitted from the training scores (too few of them).
        attributes: whether ``score_channels`` attributes the score to channels.
        kinds: the anomaly kinds the method is for (names from ``vigil.sample_data.KINDS``);
            ``check_detector`` runs the check of each declared kind that has one (spike, stuck).
        fitted_state: the arrays ``_fit`` sets, name -> :class:`StateSpec` (dtype kind, shape,
            value constraints): the only state a model file may hold for the method.
    """

    name: ClassVar[str] = "detector"
    params: ClassVar[dict[str, Param]] = {}
    min_rows: ClassVar[int] = 2
    #: Bytes of temporary memory one scoring chunk may use: rows are scored in chunks so that
    #: the row count never sets the peak memory (as scikit-learn's ``working_memory``).
    chunk_bytes: ClassVar[int] = 32 * 2**20
    natural_threshold: ClassVar[float | None] = None
    attributes: ClassVar[bool] = False
    #: The row score is exactly the largest of the channel scores, so both come from one pass.
    score_is_channel_max: ClassVar[bool] = False
    #: Every value-based method sees at least a value far off; a method that does not (one
    #: that looks only at how values repeat, say) declares what it is for instead.
    kinds: ClassVar[tuple[str, ...]] = ("spike",)
    #: Learns from labelled rows: ``fit(X, y)`` needs ``y`` (0 normal, 1 anomaly, both present)
    #: and the subclass writes ``_fit_labelled(X, y)`` instead of ``_fit(X)``.
    supervised: ClassVar[bool] = False
    #: Fitting takes long and reports its steps through :data:`FIT_PROGRESS`.
    reports_progress: ClassVar[bool] = False
    fitted_state: ClassVar[dict[str, StateSpec]] = {}

    def __init__(self, **params: Any) -> None:
        unknown = sorted(set(params) - set(self.params))
        if unknown:
            allowed = ", ".join(self.params) or "none"
            raise ConfigError(
                f"{self.name} has no parameter {unknown[0]!r}; its parameters are: {allowed}."
            )
        for key, spec in self.params.items():
            setattr(self, key, params.get(key, spec.default))

    def get_params(self) -> dict[str, Any]:
        """The constructor parameters, as given (defaults filled in)."""
        return {key: getattr(self, key) for key in self.params}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # -- public API: validate, convert, dispatch -------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray | None = None) -> Detector:
        """Learn normal behaviour from ``X`` (``float64[n, d]``, rows in time order).

        ``y`` (0/1 per row, 1 = anomaly) is what a ``supervised`` method learns from; the
        others ignore it.
        """
        self._validate_params()
        X = self._check_array(X)
        if len(X) < self.min_rows:
            raise DataError(
                f"{self.name} needs at least {self.min_rows} rows to fit; got {len(X)}."
            )
        if self.supervised:
            y = self._check_labels(y, len(X))
        self.n_channels_ = X.shape[1]
        if self.supervised:
            self._fit_labelled(X, y)
        else:
            self._fit(X)
        return self

    def score(self, X: np.ndarray) -> np.ndarray:
        """One anomaly score per row of ``X``, ``float64[n]``; higher = more anomalous."""
        X = self._check_fitted_array(X, finite=False)
        out = np.empty(len(X))
        for start, stop, lead, trail in self._chunks(X):
            chunk = _check_finite(X[start - lead : stop + trail], start - lead)
            out[start:stop] = self._score(chunk)[lead : lead + stop - start]
        return out

    def score_channels(self, X: np.ndarray) -> np.ndarray | None:
        """Each channel's part of each row's score, ``float64[n, d]``, or None if the method
        cannot attribute its score to channels."""
        if not self.attributes:
            return None
        X = self._check_fitted_array(X, finite=False)
        out = np.empty(X.shape)
        for start, stop, lead, trail in self._chunks(X):
            chunk = _check_finite(X[start - lead : stop + trail], start - lead)
            out[start:stop] = self._score_channels(chunk)[lead : lead + stop - start]
        return out

    def score_with_channels(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """``score(X)`` and ``score_channels(X)`` together, in one pass where the row score is
        the largest channel score (``score_is_channel_max``): what ``Model.detect`` needs."""
        if self.attributes and self.score_is_channel_max:
            parts = self.score_channels(X)
            scores = parts[:, 0].copy()
            for j in range(1, parts.shape[1]):  # column by column: 5x faster than max(axis=1)
                np.maximum(scores, parts[:, j], out=scores)
            return scores, parts
        return self.score(X), self.score_channels(X)

    def training_scores(self, X: np.ndarray) -> np.ndarray:
        """The scores of the training rows ``X`` that a threshold is fitted on: ``score(X)``.

        A method whose training rows score trivially overrides this with out-of-sample scores
        (a nearest-neighbour distance to the training windows is 0 on those windows).
        """
        return self.score(X)

    # -- what subclasses write -------------------------------------------------------------
    def _fit(self, X: np.ndarray) -> None:
        raise NotImplementedError

    def _fit_labelled(self, X: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def _score(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _score_channels(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _context_rows(self) -> int:
        """Rows before a row that its score depends on (``window - 1`` for windowed methods);
        chunks carry that many rows of context so chunked and whole scoring agree exactly."""
        return 0

    def _lookahead_rows(self) -> int:
        """Rows after a row that its score depends on: ``window - 1`` where a point takes the
        worst score of the windows covering it (a stream can score a row only that many rows
        later). Chunks carry them too."""
        return 0

    def _row_bytes(self) -> int:
        """Temporary bytes ``_score`` uses per row; sets the chunk size."""
        return 8 * 4 * self.n_channels_

    def _validate_extra(self) -> None:
        """Cross-parameter checks a subclass may add."""

    # -- fitted state, for the model file --------------------------------------------------
    def state_spec(self) -> dict[str, StateSpec]:
        """The declared fitted state, name -> :class:`~vigil.detectors.state.StateSpec`: what
        ``get_state`` saves and all that ``set_state`` accepts (``n_channels_`` and the
        class's ``fitted_state``; an ensemble adds its members')."""
        return self._own_state()

    def _own_state(self) -> dict[str, StateSpec]:
        return {"n_channels_": N_CHANNELS, **self.fitted_state}

    def declared(self, key: str) -> tuple[Detector, StateSpec] | None:
        """The detector a state name belongs to and its declaration (None: not declared)."""
        spec = self.state_spec().get(key)
        return None if spec is None else (self, spec)

    def get_state(self) -> dict[str, np.ndarray]:
        """The fitted state as named arrays (the declared names), for saving."""
        self._require_fitted()
        return {key: np.asarray(getattr(self, key)) for key in self._own_state()
                if hasattr(self, key)}

    def set_state(self, state: dict[str, np.ndarray]) -> Detector:
        """Restore the fitted state saved by :meth:`get_state`, refusing (one-line
        ModelFileError) any name not declared, a declared one missing, or an array of the
        wrong dtype, shape (for the channel count and parameters) or values."""
        self._validate_params()
        arrays = check_state(self, state, self._own_state())
        for key, value in arrays.items():
            setattr(self, key, value.item() if value.ndim == 0 else value)
        self.n_channels_ = int(self.n_channels_)
        self._check_state()
        return self

    def _check_state(self) -> None:
        """Checks across the restored state arrays that the declaration cannot express."""

    def get_graphs(self) -> dict[str, bytes]:
        """The fitted ONNX graphs by name, for saving (a deep model's network); none here."""
        return {}

    def set_graphs(self, graphs: dict[str, bytes]) -> Detector:
        """Restore the graphs saved by :meth:`get_graphs`, before :meth:`set_state`; a method
        that has none refuses any (ModelFileError)."""
        if graphs:
            raise ModelFileError(f"{self.name} holds no ONNX graph, but the file has "
                                 f"{sorted(graphs)[0]!r}: it is not a {self.name} model")
        return self

    def check_training_rows(self, rows: int) -> None:
        """Refuse (ModelFileError) parameters that ``fit`` on ``rows`` rows would have refused
        and the state does not bound (a model file's parameters are not trusted)."""

    # -- helpers ---------------------------------------------------------------------------
    def _validate_params(self) -> None:
        for key, spec in self.params.items():
            value = getattr(self, key)
            if not spec.accepts(value):
                raise ConfigError(
                    f"The {key!r} parameter of {self.name} must be {spec.describe()}. "
                    f"Got {value!r}."
                )
        self._validate_extra()

    def _check_labels(self, y: np.ndarray | None, n: int) -> np.ndarray:
        if y is None:
            raise ConfigError(
                f"{self.name} is supervised: it learns from labelled rows. Give the 0/1 label "
                "column (--label-column, or Model(label_column=...)), or choose an "
                "unsupervised method."
            )
        y = np.asarray(y)
        if y.shape != (n,):
            raise DataError(f"{self.name}: expected one label per row ({n}); got shape {y.shape}.")
        if not np.isin(y, (0, 1)).all():
            raise DataError(f"{self.name}: labels must be 0 (normal) or 1 (anomaly).")
        y = y.astype(np.int8)
        classes = np.unique(y)
        if len(classes) < 2:
            only = "normal (0)" if classes[0] == 0 else "anomalies (1)"
            raise DataError(
                f"{self.name}: the training labels hold {only} only; a classifier needs both "
                "classes. Train on rows that include labelled anomalies (more --train-rows), "
                "or choose an unsupervised method."
            )
        return y

    def _require_fitted(self) -> None:
        if not hasattr(self, "n_channels_"):
            raise NotFittedError(f"This {self.name} detector is not fitted yet: call fit first.")

    def _chunks(self, X: np.ndarray):
        """(start, stop, lead, trail) covering X: ``lead`` rows of context before ``start`` and
        ``trail`` rows after ``stop`` go with each chunk."""
        before, after = self._context_rows(), self._lookahead_rows()
        step = max(1024, self.chunk_bytes // max(1, self._row_bytes()))
        for start in range(0, len(X), step):
            stop = min(start + step, len(X))
            yield start, stop, min(start, before), min(len(X) - stop, after)

    def _check_fitted_array(self, X: np.ndarray, finite: bool = True) -> np.ndarray:
        self._require_fitted()
        X = self._check_array(X, finite)
        if X.shape[1] != self.n_channels_:
            raise DataError(
                f"{self.name} was fitted on {self.n_channels_} channel(s); got {X.shape[1]}."
            )
        return X

    @staticmethod
    def _check_array(X: np.ndarray, finite: bool = True) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[:, None]
        if X.ndim != 2:
            raise DataError(f"expected a 2-D array of rows x channels; got {X.ndim} dimensions.")
        if X.shape[1] == 0:
            raise DataError("expected at least one channel; got 0 columns.")
        return _check_finite(X) if finite else X


def _check_finite(X: np.ndarray, first_row: int = 0) -> np.ndarray:
    """``X`` itself, or a DataError naming the first non-finite cell; ``first_row`` is the row
    number of ``X[0]`` in the caller's array, for the message."""
    if not np.isfinite(X).all():
        row, col = np.argwhere(~np.isfinite(X))[0]
        raise DataError(
            f"row {first_row + row}, channel {col}: {X[row, col]} is not finite; fill or drop "
            "missing values first (vigil.read does this for files)."
        )
    return X
