"""Thresholds turn anomaly scores into decisions. A detector scores (higher = more anomalous);
a threshold is fitted on *training* scores, stores one number ``value_`` and then calls every
score ``> value_`` an anomaly. Four methods: a fixed cut-off, an empirical quantile, mean + k
standard deviations, and peaks-over-threshold (POT) from extreme value theory. When there are
too few training scores, a threshold falls back to the detector's natural cut-off (or to the
largest training score), says so in one ``FitWarning`` and records ``fallback_used_ = True``.
Fitted thresholds round-trip through ``to_dict`` / ``from_dict`` (plain JSON)."""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any, ClassVar

import numpy as np

from vigil.errors import ConfigError, DataError, FitWarning, NotFittedError
from vigil.evt import fit_gpd

# (low, high, low_closed, high_closed) for every float parameter.
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
        return threshold


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


class POT(Threshold):
    """Peaks over threshold (Siffer, Fouque, Termier, Largouet, "Anomaly Detection in Streams with
    Extreme Value Theory", KDD 2017): fit a generalized Pareto tail above the ``level`` quantile
    and extrapolate to the score a normal point exceeds with probability ``risk``."""

    name = "pot"
    description = "peaks over threshold (EVT): the score normal data exceeds with probability risk"
    # level 0.98: the initial-threshold quantile Siffer et al. 2017 recommend (also the default of
    # their reference code, Amossys-team/SPOT); risk 1e-4: our default, one false alarm per 10,000
    # normal scores.
    _parameter_constraints = {"risk": _OPEN_UNIT, "level": _OPEN_UNIT}
    _primary, _min_scores_param = "risk", "level"
    # 10 peaks: our floor for a two-parameter maximum-likelihood fit (not from the paper).
    MIN_PEAKS: ClassVar[int] = 10

    def __init__(self, *, risk: float = 1e-4, level: float = 0.98) -> None:
        super().__init__(risk=risk, level=level)

    @property
    def min_scores(self) -> int:
        """MIN_PEAKS / (1 - level): enough scores to expect MIN_PEAKS above the initial cut."""
        return math.ceil(round(self.MIN_PEAKS / (1.0 - self._validated_params()["level"]), 9))

    #: A generalized Pareto shape of 1/2 or more means infinite variance: seldom the tail of
    #: normal scores, usually a sign that anomalies fill the training tail.
    HEAVY_SHAPE: ClassVar[float] = 0.5
    #: At most this many rounds of leaving out training scores that are anomalies themselves.
    MAX_ROUNDS: ClassVar[int] = 50
    #: A training score is an anomaly itself when n normal scores would reach it with
    #: probability below this (a Grubbs-style outlier test on the fitted tail; our choice).
    OUTLIER_ALPHA: ClassVar[float] = 0.01

    def _fit_value(self, scores: np.ndarray, params: dict[str, float]) -> float:
        """Fit the tail, leaving out training scores that are anomalies themselves.

        Training data holds anomalies too (``vigil detect`` fits on the file it flags), and a
        few huge scores fatten the fitted tail until the threshold lies above them. As SPOT
        never lets an alarm update its tail, the largest score is tested against the tail
        fitted without it: if n normal scores would reach it with probability below
        ``OUTLIER_ALPHA``, it and every score as extreme are left out and the tail refitted.
        This handles a few separate anomalies; when anomalies fill more than the tail (more
        than 1 - level of the rows), fit on clean rows instead (``--train-rows``).
        """
        ordered = np.sort(scores)
        value = self._tail_value(ordered, params)
        fitted, kept = dict(self.details_), ordered.size
        for _ in range(self.MAX_ROUNDS):
            try:
                self._tail_value(ordered[: kept - 1], params)
            except _CannotFit:
                break
            limit = self._outlier_limit()
            if ordered[kept - 1] <= limit:
                break
            kept = int(np.searchsorted(ordered[:kept], limit, side="right"))
            value = self._tail_value(ordered[:kept], params)
            fitted = dict(self.details_)
        self.details_ = {**fitted, "n_excluded": int(ordered.size - kept)}
        if self.details_["shape"] >= self.HEAVY_SHAPE:
            warnings.warn(
                f"pot threshold: the training scores' tail is very heavy (shape "
                f"{self.details_['shape']:.2f} >= {self.HEAVY_SHAPE}), as when the training rows "
                f"hold many anomalies; the threshold {_fmt(value)} may be too high to flag them. "
                "Fit on clean rows (--train-rows N) or choose a threshold (e.g. quantile:0.99).",
                FitWarning, stacklevel=4)
        return value

    def _outlier_limit(self) -> float:
        """The score that the n training scores exceed with probability OUTLIER_ALPHA under the
        tail just fitted: Siffer's z_q with q = OUTLIER_ALPHA / n, so q n / N_t = alpha / N_t."""
        d = self.details_
        ratio = self.OUTLIER_ALPHA / d["n_peaks"]
        if d["shape"] == 0.0:
            return d["initial"] - d["scale"] * math.log(ratio)
        return d["initial"] + d["scale"] / d["shape"] * math.expm1(-d["shape"] * math.log(ratio))

    def _tail_value(self, scores: np.ndarray, params: dict[str, float]) -> float:
        """Siffer's threshold from the tail of ``scores`` (sorted ascending)."""
        initial = self._initial(scores, params["level"])
        peaks = scores[scores > initial] - initial
        if peaks.size < self.MIN_PEAKS:
            raise _CannotFit(f"only {peaks.size} of {scores.size} training scores lie above the "
                             f"initial threshold {_fmt(initial)} (needs >= {self.MIN_PEAKS} peaks)")
        if peaks.max() == peaks.min():
            raise _CannotFit(f"all {peaks.size} peaks above the initial threshold {_fmt(initial)} "
                             f"are equal, so no tail can be fitted")
        shape, scale = fit_gpd(peaks)
        if not (math.isfinite(shape) and math.isfinite(scale) and scale > 0):
            raise _CannotFit(f"the generalized Pareto fit to {peaks.size} peaks failed")
        # Siffer et al. 2017: z_q = t + sigma/gamma * ((q n / N_t)^-gamma - 1); expm1 keeps
        # it exact for small gamma. gamma == 0 (exponential tail): z_q = t - sigma log(q n / N_t).
        log_ratio = math.log(params["risk"] * scores.size / peaks.size)
        if shape == 0.0:
            value = initial - scale * log_ratio
        else:
            value = initial + scale / shape * math.expm1(-shape * log_ratio)
        self.details_.update(initial=initial, shape=shape, scale=scale, n_peaks=int(peaks.size))
        # Guard: risk >= N_t/n extrapolates below t; overflow gives inf. Both fall back to t.
        return value if math.isfinite(value) and value >= initial else initial


    def _initial(self, ordered: np.ndarray, level: float) -> float:
        """The ``level`` quantile, lowered to the next distinct score below while ties leave
        fewer than MIN_PEAKS scores above it, or only equal ones (windowed detectors give
        flat runs of equal scores: a row takes the worst of the windows covering it)."""
        initial = float(np.quantile(ordered, level))
        n = ordered.size
        while True:
            above = n - int(np.searchsorted(ordered, initial, side="right"))
            if above >= self.MIN_PEAKS and ordered[-1] != ordered[n - above]:
                return initial
            below = int(np.searchsorted(ordered, initial, side="left"))
            if below == 0:
                return initial
            initial = float(ordered[below - 1])


THRESHOLDS: dict[str, type[Threshold]] = {cls.name: cls for cls in (POT, Quantile, Sigma, Fixed)}
"""Every threshold by name; each class's ``description`` is its one-line help."""


def make_threshold(spec: Threshold | str | float | dict[str, Any]) -> Threshold:
    """A threshold from a spec: an instance, ``"pot"``, ``"quantile:0.995"``, ``"sigma:4"``,
    ``"pot:1e-3"`` (the risk), ``"fixed:2.5"``, a number (fixed cut-off) or a ``to_dict`` dict.

    >>> make_threshold("quantile:0.9").fit(range(1, 11)).decide([9.5, 9.0]).tolist()
    [True, False]
    """
    if isinstance(spec, Threshold):
        return spec
    if isinstance(spec, dict):
        return Threshold.from_dict(spec)
    if _is_real(spec):
        return _checked(Fixed(value=float(spec)))
    if not isinstance(spec, str):
        raise ConfigError(f"A threshold must be a name like 'pot' or 'quantile:0.99', a number, a "
                          f"dict or a Threshold. Got {spec!r}.")
    if _parse_float(spec) is not None:  # "2.5" on a command line
        return _checked(Fixed(value=float(spec)))
    name, _, arg = (part.strip() for part in spec.partition(":"))
    cls = THRESHOLDS.get(name.lower())
    if cls is None:
        raise ConfigError(f"Unknown threshold {name!r} in {spec!r}; valid names: "
                          f"{', '.join(THRESHOLDS)} (optionally with one number, "
                          f"e.g. 'quantile:0.995').")
    if not arg:
        if cls is Fixed:
            raise ConfigError(f"The fixed threshold needs a value, e.g. 'fixed:2.5'. Got {spec!r}.")
        return _checked(cls())
    value = _parse_float(arg)
    if value is None:
        raise ConfigError(f"Cannot read {arg!r} in {spec!r} as a number for the {cls._primary!r} "
                          f"parameter of {cls.name}.")
    return _checked(cls(**{cls._primary: value}))


def _parse_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _checked(threshold: Threshold) -> Threshold:
    """Validate parameters now, so a bad spec fails when it is read rather than at fit time."""
    threshold._validated_params()
    return threshold
