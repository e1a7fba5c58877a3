"""Peaks over threshold (POT): the cut-off from extreme value theory, fitted on training scores."""

from __future__ import annotations

import math
import warnings
from typing import ClassVar

import numpy as np

from vigil.errors import FitWarning
from vigil.evt import fit_gpd
from vigil.thresholds.base import _OPEN_UNIT, Threshold, _CannotFit, _fmt

class POT(Threshold):
    """Peaks over threshold (Siffer, Fouque, Termier, Largouet, "Anomaly Detection in Streams with
    Extreme Value Theory", KDD 2017): fit a generalized Pareto tail above the ``level`` quantile
    and extrapolate to the score a normal point exceeds with probability ``risk``."""

    name = "pot"
    description = "peaks over threshold (EVT): the score normal data exceeds with probability risk"
    # level 0.98: the initial-threshold quantile Siffer et al. 2017 recommend (also the default of
    # their reference code, Amossys-team/SPOT), and the best of 0.9, 0.95 and 0.98 for the flags
    # on shared/datasets (benchmarks/results/choose_decisions.md); risk 1e-4: our default, one
    # false alarm per 10,000 normal scores.
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
