"""The threshold contract and the simple thresholds: a fixed cut-off, an empirical quantile and
mean + k standard deviations. ``Threshold.fit(training_scores)`` stores one number ``value_``;
``decide`` calls every score above it an anomaly."""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, ClassVar

import numpy as np

from vigil.errors import ConfigError, DataError, FitWarning, NotFittedError

_Interval = tuple[float, float, bool, bool]
_OPEN_UNIT: _Interval = (0.0, 1.0, False, False)
_ALL_REALS: _Interval = (-math.inf, math.inf, False, False)


class _CannotFit(Exception):
    """Internal: the data cannot support this method; the message ends the warning's first half."""


def _interval_text(interval: _Interval) -> str:
    low, high, low_closed, high_closed = interval
    return f"{'[' if low_closed else '('}{low:g}, {high:g}{']' if high_closed else ')'}"


def _fmt(value: float) -> str:
    return format(float(value), ".6g")


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class Threshold:
    """Base: ``fit(training_scores)`` sets ``value_``; ``decide(scores)`` is ``scores > value_``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    _parameter_constraints: ClassVar[dict[str, _Interval]] = {}
    _primary: ClassVar[str] = ""  # the parameter set by the "name:number" shorthand
    _min_scores_param: ClassVar[str] = ""  # the parameter min_scores depends on, for messages

    def __init__(self, **params: Any) -> None:
        self._params = dict(params)  # stored as given; checked by fit (scikit-learn's convention)

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self._params.items())
        return f"{type(self).__name__}({args})"

    def get_params(self) -> dict[str, Any]:
        """The parameters exactly as given to ``__init__``."""
        return dict(self._params)

    def _validated_params(self) -> dict[str, float]:
        """Check every parameter against ``_parameter_constraints``; return them as floats."""
        checked = {}
        for key, interval in self._parameter_constraints.items():
            value = self._params[key]
            low, high, low_closed, high_closed = interval
            ok = _is_real(value) and (low < value or (low_closed and value == low))
            ok = ok and (value < high or (high_closed and value == high))
            if not ok:
                raise ConfigError(f"The {key!r} parameter of {self.name} must be a float in "
                                  f"{_interval_text(interval)}. Got {value!r}.")
            checked[key] = float(value)
        return checked

    @property
    def min_scores(self) -> int:
        """Fewest training scores this method needs before it fits from data (0: none)."""
        return 0

    def _fit_value(self, scores: np.ndarray, params: dict[str, float]) -> float:
        raise NotImplementedError

    def fit(self, scores: np.ndarray, *, fallback: float | None = None) -> Threshold:
        """Fit ``value_`` on training scores; if too few, use ``fallback`` (or their max)."""
        params = self._validated_params()
        if fallback is not None and not (_is_real(fallback) and math.isfinite(fallback)):
            raise ConfigError(f"fallback must be a finite float or None. Got {fallback!r}.")
        scores = np.asarray(scores, dtype=float).ravel()
        n_bad = int(np.count_nonzero(~np.isfinite(scores)))
        if n_bad:
            raise DataError(f"{n_bad} of {scores.size} training scores are non-finite (NaN or "
                            f"inf): a detector should never emit them; fix it or drop those rows.")
        self.details_: dict[str, Any] = {"n_scores": int(scores.size)}
        try:
            if scores.size < self.min_scores:
                key = self._min_scores_param
                detail = f" for {key} {_fmt(params[key])}" if key else ""
                raise _CannotFit(f"{scores.size} training scores are too few to fit a threshold "
                                 f"from data (needs >= {self.min_scores}{detail})")
            self.value_ = float(self._fit_value(scores, params))
            self.fallback_used_ = False
        except _CannotFit as reason:
            self.value_ = self._fallback_value(scores, fallback, str(reason))
            self.fallback_used_ = True
        return self

    def _fallback_value(self, scores: np.ndarray, fallback: float | None, reason: str) -> float:
        """The documented fallback: the caller's cut-off, else the largest training score."""
        if fallback is not None:
            value, used = float(fallback), f"the detector's default cut-off {_fmt(fallback)}"
        elif scores.size:
            value = float(scores.max())
            used = (f"the largest training score {_fmt(value)} "
                    f"(nothing in the training data is flagged)")
        else:
            raise DataError(f"{self.name} threshold: no training scores and no fallback cut-off: "
                            f"give training data, a fallback, or use a fixed threshold.")
        warnings.warn(f"{self.name} threshold: {reason}; using {used}", FitWarning, stacklevel=3)
        return value

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """Boolean array, same shape as ``scores``: True where ``score > value_`` (NaN -> False)."""
        if not hasattr(self, "value_"):
            raise NotFittedError(f"{self.name} threshold is not fitted: "
                                 f"call fit(training_scores) first.")
        return np.asarray(scores, dtype=float) > self.value_

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description: name, params, and (once fitted) value, fallback_used, details."""
        out: dict[str, Any] = {"name": self.name, "params": self._validated_params()}
        if hasattr(self, "value_"):
            out.update(value=self.value_, fallback_used=self.fallback_used_, **self.details_)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Threshold:
        """Rebuild a threshold from ``to_dict`` output; a fitted one decides exactly as before."""
        from vigil.thresholds import THRESHOLDS

        if not isinstance(d, dict) or d.get("name") not in THRESHOLDS:
            raise ConfigError(f"A threshold dict needs 'name' in {sorted(THRESHOLDS)}. Got {d!r}.")
        params = d.get("params", {})
        if not isinstance(params, dict):
            raise ConfigError(f"A threshold dict's 'params' must be a dict. Got {params!r}.")
        cls = THRESHOLDS[d["name"]]
        names = set(cls._parameter_constraints)
        if set(params) - names or (cls is Fixed and "value" not in params):
            required = " (value is required)" if cls is Fixed else ""
            raise ConfigError(f"The {cls.name} threshold takes the parameters {sorted(names)}"
                              f"{required}. Got {sorted(params)}.")
        threshold = _checked(cls(**params))
        if d.get("value") is not None:
            value = d["value"]
            if not (_is_real(value) and math.isfinite(value)):
                raise ConfigError(f"A fitted threshold's 'value' must be a finite float. "
                                  f"Got {value!r}.")
            threshold.value_ = float(value)
            threshold.fallback_used_ = bool(d.get("fallback_used", False))
            reserved = {"name", "params", "value", "fallback_used"}
            threshold.details_ = {k: v for k, v in d.items() if k not in reserved}
            threshold._restore(d)
        return threshold

    def _restore(self, d: dict[str, Any]) -> None:
        """Hook for ``from_dict`` on a fitted dict: load and validate fitted state beyond
        ``value_`` (dspot's moving window and peaks). One number is all the others need."""


class Fixed(Threshold):
    """A cut-off chosen by the user; ``fit`` ignores the scores."""

    name = "fixed"
    description = "a fixed cut-off: score > value"
    _parameter_constraints = {"value": _ALL_REALS}
    _primary = "value"

    def __init__(self, *, value: float) -> None:
        super().__init__(value=value)

    def _fit_value(self, scores: np.ndarray, params: dict[str, float]) -> float:
        return params["value"]


class Quantile(Threshold):
    """The empirical ``q``-quantile of the training scores (numpy's default interpolation)."""

    name = "quantile"
    description = "the q-quantile of the training scores (a fraction 1-q of them is flagged)"
    _parameter_constraints = {"q": _OPEN_UNIT}
    _primary = _min_scores_param = "q"

    def __init__(self, *, q: float = 0.99) -> None:
        super().__init__(q=q)

    @property
    def min_scores(self) -> int:
        """1/(1-q): below it fewer than one training score is expected above the q-quantile, so
        the estimate is just an interpolation of the top order statistics (np.quantile's default
        is Hyndman & Fan 1996, definition 7). Rounded first so 1/(1-0.9) is 10, not 11."""
        return math.ceil(round(1.0 / (1.0 - self._validated_params()["q"]), 9))

    def _fit_value(self, scores: np.ndarray, params: dict[str, float]) -> float:
        return float(np.quantile(scores, params["q"]))


class Sigma(Threshold):
    """Mean + k population standard deviations of the training scores (no division anywhere)."""

    name = "sigma"
    description = "mean + k standard deviations of the training scores"
    _parameter_constraints = {"k": (0.0, math.inf, False, False)}
    _primary = "k"
    # 3: our floor (a convention, not a theorem): with 2 scores the std is half their gap, so the
    # "spread" rests on a single difference; 3 is the first sample where it does not.
    min_scores: ClassVar[int] = 3  # type: ignore[assignment]

    def __init__(self, *, k: float = 3.0) -> None:
        super().__init__(k=k)

    def _fit_value(self, scores: np.ndarray, params: dict[str, float]) -> float:
        # Constant scores: the threshold is the constant itself, so none is flagged. Tested exactly,
        # as the rounded mean of e.g. 1000 x 0.3 sits 1e-16 below 0.3 and its std is not 0.
        if scores.min() == scores.max():
            return float(scores[0])
        return float(scores.mean() + params["k"] * scores.std(ddof=0))


def _checked(threshold: Threshold) -> Threshold:
    """Validate parameters now, so a bad spec fails when it is read rather than at fit time."""
    threshold._validated_params()
    return threshold
