"""An adaptive threshold for drifting data: drifting peaks over threshold (DSPOT; Siffer,
Fouque, Termier, Largouet, "Anomaly Detection in Streams with Extreme Value Theory", KDD 2017,
the algorithm "DSPOT"; their reference code is github.com/Amossys-team/SPOT).

A cut-off fitted on three days of scores cannot hold for three months when the normal level of
the scores drifts: POT then flags the whole late part. DSPOT models the local level as the mean
M_t of the last ``depth`` normal scores and runs POT on the residuals x_t - M_t, so the
threshold M_t + z follows a slow drift, while a score above it (an alarm) never enters the
window or the tail: a spike on top of the drift is still flagged, and an anomaly lasting many
rows stays flagged instead of being learned as normal.

The threshold is per row: ``values(scores)`` gives it for new scores in time order, causally
(row t's threshold depends on the fitted state and on scores before t only), and the fitted
object never changes. ``value_`` is the threshold at the end of training (so code that reads one
number keeps working), and the threshold of the first new row. For a stream, ``stepper()`` (or
``values(scores, state=...)``) resumes from a saved state: chunks of any size give the
thresholds of one call, bit for bit, so batch, Spark and a stream agree.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, ClassVar

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from vigil.errors import ConfigError, FitWarning, NotFittedError
from vigil.thresholds._dspot_state import Stepper
from vigil.thresholds.base import _OPEN_UNIT, Threshold, _CannotFit, _is_real
from vigil.thresholds.pot import POT


class DSPOT(Threshold):
    """Drifting peaks over threshold: POT on residuals from a moving mean of ``depth`` scores.

    Fit (training scores in time order): residuals r_t = x_t - mean(x_{t-depth} .. x_{t-1})
    of the training scores after the first ``depth``; the ``pot`` threshold fitted on them (same
    ``risk`` and ``level``, same exclusion of anomalies among the training scores) gives the
    initial threshold t, the peaks r_t - t > 0 and the residual threshold z. New scores, in
    order (Siffer et al. 2017, DSPOT): the threshold is M_t + z; a residual above z is an
    alarm and changes nothing; a residual above t is a peak, stored for the next tail refit and
    moved into the window; any other score only moves the window.

    Bounded cost, deterministic given the scores (our choices; Siffer's C++ libspot likewise
    keeps only the last 200 excesses in its bounded mode and takes the rate N_t/n from all
    the counts): the last ``MAX_PEAKS`` peaks are kept, and the tail is refitted when the new
    peaks number as many as the last fit used, and at least every ``REFIT_EVERY`` peaks.

    A refit re-estimates the tail's scale only; the shape stays the one fitted in training (our
    change to the paper, which refits both). Alarms never enter the peaks, so every peak seen
    after training lies below the threshold z in force when it came: the tail above z, the part
    z is extrapolated to, is missing. Refitting both parameters on such peaks as if complete
    (the paper) bends the tail down, lowers z, truncates more: on iid normal scores at risk
    1e-3 it ran away to 4% of rows flagged. Fitting both with that truncation in the likelihood
    (each peak's density divided by F(its limit)) stops the runaway but still flagged 1.4x to
    1.6x the risk, as the shape then rests on the body of the tail only (both measured at level
    0.9, depth 50). The scale alone, fitted with the truncation and the training shape (which
    saw the whole tail), flags 0.75x to 1.5x the risk on 1,000,000 iid normal scores (4 seeds,
    level 0.98, risk 1e-3) where pot fitted on the same 20,000 training scores flags 0.9x to
    1.2x (half-normal and gamma scores agree: tests/test_thresholds_adaptive.py). The price:
    a shape badly fitted in training (few peaks) is never corrected.

    Example:
        The normal level of the scores rises by 6 standard deviations over the series, and
        one spike of +6 rides on it. The ``pot`` cut-off fitted on the first 20% of the rows
        flags most of the last rows; ``dspot`` follows the drift, flags 4 of the 80,000 new
        rows falsely (risk 1e-4: 8 expected) and still flags the spike (new row 70,000):

        >>> import numpy as np
        >>> from vigil.thresholds import make_threshold
        >>> rng = np.random.default_rng(1)
        >>> scores = rng.normal(size=100_000) + np.linspace(0.0, 6.0, 100_000)
        >>> scores[90_000] += 6.0
        >>> train, new = scores[:20_000], scores[20_000:]
        >>> pot, dspot = make_threshold("pot").fit(train), make_threshold("dspot").fit(train)
        >>> round(float(pot.decide(new)[-20_000:].mean()), 2)
        0.82
        >>> np.flatnonzero(dspot.decide(new)).tolist()
        [10266, 23165, 58543, 64298, 70000]

        Each row has its own threshold, the first one ``value_``; a stream fed in chunks gets
        the same thresholds as one call:

        >>> thresholds = dspot.values(new)
        >>> bool(thresholds[0] == dspot.value_), bool(thresholds[-1] > thresholds[0] + 4.5)
        (True, True)
        >>> stepper = dspot.stepper()
        >>> chunked = np.concatenate([stepper.update(new[:1234]), stepper.update(new[1234:])])
        >>> bool(np.array_equal(chunked, thresholds))
        True
    """

    name = "dspot"
    description = ("drifting peaks over threshold: POT on residuals from a moving mean, "
                   "so the cut-off follows a slow drift of the scores")
    _parameter_constraints = {"risk": _OPEN_UNIT, "level": _OPEN_UNIT,
                              "depth": (1.0, math.inf, True, False)}
    _primary, _min_scores_param = "risk", "depth"
    # risk and level: pot's defaults (tested to stay so). depth 100 (our choice): the residual
    # x_t - M_t has (1 + 1/depth) times the scores' variance, 1% here; a linear drift of slope
    # s per row puts M_t s (depth + 1) / 2 behind, e.g. 0.002 sigma for +3 sigma over 100,000
    # rows; an anomaly ramping up over many more rows than depth is learned as normal, so
    # longer is safer; but the first depth training scores give no residual, and 100 still
    # fits wherever pot fits on NAB's 604-row training parts (pot needs 500 at level 0.98).
    # On shared/datasets (benchmarks/compare_dspot.py) depths 50, 100 and 200 are equal within
    # noise; 200 falls back on 10 more NAB series.
    #: Peaks kept for the tail refit: about 100,000 normal rows at level 0.98. The scale they
    #: give is within about 1/sqrt(2000) = 2% (the Fisher information of a GPD scale, shape
    #: known, is N / ((1 + 2 shape) scale^2)); libspot keeps 200 by default. The saved state
    #: holds them and their limits (about 80 kB of JSON).
    MAX_PEAKS: ClassVar[int] = 2000
    #: Refit the tail at least every this many new peaks, i.e. at most a tenth of the stored
    #: peaks late. A scale refit takes about 0.5 ms (a bounded 1-D search over 2000 peaks,
    #: measured), so 1,000,000 rows at level 0.9 (100,000 peaks) cost 500 refits, about
    #: 0.25 s; the paper refits both parameters on every peak, which at ``fit_gpd``'s 5 ms a
    #: fit would take minutes. The drift itself is followed by the moving mean on every row.
    REFIT_EVERY: ClassVar[int] = 200

    def __init__(self, *, risk: float = 1e-4, level: float = 0.98, depth: int = 100) -> None:
        super().__init__(risk=risk, level=level, depth=depth)

    def _validated_params(self) -> dict[str, float]:
        depth = self._params["depth"]
        if not (_is_real(depth) and math.isfinite(depth) and depth >= 1
                and float(depth).is_integer()):
            raise ConfigError(f"The 'depth' parameter of dspot must be an integer >= 1. "
                              f"Got {depth!r}.")
        return super()._validated_params()

    @property
    def min_scores(self) -> int:
        """``depth`` scores for the first window, then as many residuals as ``pot`` needs."""
        params = self._validated_params()
        return int(params["depth"]) + POT(level=params["level"]).min_scores

    def fit(self, scores: np.ndarray, *, fallback: float | None = None) -> DSPOT:
        """Fit on training scores in time order; too few: a constant fallback, as ``pot``."""
        super().fit(scores, fallback=fallback)
        if self.fallback_used_:
            self._stepper = Stepper(constant=self.value_)
        return self

    def _fit_value(self, scores: np.ndarray, params: dict[str, float]) -> float:
        depth = int(params["depth"])
        means = sliding_window_view(scores, depth)[:-1].mean(axis=1)
        residuals = scores[depth:] - means
        pot = POT(risk=params["risk"], level=params["level"])
        pot.details_ = {"n_scores": int(residuals.size)}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", FitWarning)
            try:
                z = pot._fit_value(residuals, {"risk": params["risk"], "level": params["level"]})
            except _CannotFit as reason:
                raise _CannotFit(f"on the {residuals.size} residuals from the moving mean, "
                                 f"{reason}") from None
        for warning in caught:  # pot's own warnings, told as dspot's
            text = str(warning.message).replace("pot threshold: the training scores'",
                                                "dspot threshold: the training residuals'")
            warnings.warn(text, warning.category, stacklevel=4)
        tail = pot.details_
        kept = residuals.size - tail["n_excluded"]
        largest_kept = np.partition(residuals, kept - 1)[kept - 1]
        in_tail = (residuals > tail["initial"]) & (residuals <= largest_kept)
        peaks = residuals[in_tail] - tail["initial"]  # in time order, as the stream appends
        window = scores[-depth:]
        self._stepper = Stepper(
            risk=params["risk"], initial=tail["initial"], shape=tail["shape"],
            scale=tail["scale"], z=z, window_sum=math.fsum(window), n=kept,
            n_peaks=tail["n_peaks"], since_refit=0, fitted_on=tail["n_peaks"],
            max_peaks=self.MAX_PEAKS, refit_every=self.REFIT_EVERY, window=window,
            peaks=peaks[-self.MAX_PEAKS:], limits=[None] * min(peaks.size, self.MAX_PEAKS))
        self.details_.update({key: tail[key] for key in
                              ("initial", "shape", "scale", "n_peaks", "n_excluded")},
                             residual_threshold=z)
        return z + self._stepper.window_sum / depth

    def _fitted(self) -> Stepper:
        if not hasattr(self, "_stepper"):
            raise NotFittedError(f"{self.name} threshold is not fitted: "
                                 f"call fit(training_scores) first.")
        return self._stepper

    def state(self) -> dict[str, Any]:
        """The fitted state as plain JSON: what ``values(..., state=)`` and ``stepper`` resume."""
        return self._fitted().to_dict()

    def stepper(self, state: dict[str, Any] | None = None) -> Stepper:
        """A stepper for a stream: from the fitted state, or from a saved ``state``."""
        fitted = self._fitted()
        return fitted.copy() if state is None else Stepper.from_dict(state)

    def values(self, scores: np.ndarray, *, state: dict[str, Any] | None = None) -> np.ndarray:
        """The threshold of each new score (float64, score units), in time order, continuing
        from the fitted state (or ``state``); the fitted object is left unchanged."""
        return self.stepper(state).update(scores)

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """True where a score is above its own row's threshold (NaN -> False)."""
        scores = np.asarray(scores, dtype=float)
        return scores > self.values(scores)

    def to_dict(self) -> dict[str, Any]:
        """As every threshold, plus (once fitted) ``state``: window, peaks, tail, counts."""
        out = super().to_dict()
        if hasattr(self, "_stepper"):
            out["state"] = self.state()
        return out

    def _restore(self, d: dict[str, Any]) -> None:
        if "state" not in d:
            raise ConfigError("A fitted dspot threshold dict needs its 'state' "
                              "(as written by to_dict).")
        self.details_.pop("state")
        self._stepper = Stepper.from_dict(d["state"])
