"""Operating modes: a duty-cycled machine is normal in a few distinct states (off, running, ...),
each with its own levels, spread and correlations; a row is scored against the state that
explains it best.

Global per-channel methods judge a value against the whole range, so vibration at running level
while the pump idles, or noise bursts at rest, sit inside it; one global covariance spans the gap
between the states, which makes it loose in exactly the directions a single state never moves in.
Here a Gaussian mixture learns the states from the training rows (the number of them chosen by
BIC) and a row's score is its Mahalanobis distance to the nearest state. The mixture is fitted
with scikit-learn; only plain arrays (weights, means, precision Cholesky factors) are kept, so a
model file holds no estimator and scoring is numpy alone.
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np
from scipy import linalg, stats

from vigil.detectors.base import Detector, Param
from vigil.detectors.state import PER_CHANNEL, StateSpec
from vigil.detectors.statistical import SCALE_FLOOR, RobustZScore
from vigil.errors import ModelFileError

#: Added to each mode's covariance (robustly standardised channels, so about unit spread over
#: the training rows): scikit-learn's default ``reg_covar``, and the ridge ``mahalanobis`` uses;
#: keeps a precision finite where a channel is constant within one mode.
RIDGE = 1e-6
#: A mixture component broader than the training data as a whole by more than this factor in
#: variance (twice the standard deviation) along some direction is not an operating mode but a
#: catch-all: on training rows with anomalies in them, EM spends a rare, very wide component on
#: the scattered outliers (the role of Banfield & Raftery's 1993 noise component). It stays in the
#: fit, keeping those rows out of the real modes, and is left out of scoring. Measured on the
#: bundled plant data: real modes reach 2.5 (a mode moves freely in a direction the others pin
#: down), catch-alls 7 to 110.
BROAD = 4.0
#: The fewest training rows a mode holds (its weight times the rows fitted on), and never fewer
#: than channels + 1 (below that its covariance is singular, held up by the ridge alone). EM
#: gladly spends a component on a spike of a row or three in the training rows (its covariance
#: collapses to the ridge and its likelihood soars, which BIC rewards), and the spike would
#: then be normal; a state held for a few rows is an event, not an operating mode. 10: the
#: bundled spikes (1-2 rows) stay out, and starts and stops, a few rows each but many of them,
#: pool into hundreds; a rare real state (SKAB's flow one litre lower for 19 of 400 rows) stays.
MIN_MODE_ROWS = 10
#: Training rows the mixture is fitted on at most (a seeded random sample beyond): three weeks
#: of minute data fit whole; a million rows would add seconds per candidate and no modes.
MAX_FIT_ROWS = 50_000


def resolution(x: np.ndarray) -> float:
    """The step between adjacent levels of ``x``: the median of the gaps between its sorted
    distinct values that are at least their average (range / (distinct values - 1)); smaller
    gaps are jitter within a level. 0.328 bar for SKAB's pressure (6 exact levels), 0.98 L/min
    for its flow (levels 31, 32, 33, each jittered by up to 0.025); for a continuous channel a
    few times range / rows (0.02 degC for SKAB's temperature, std 1.4).

    Examples:
        >>> resolution(np.array([0.0, 0.5, 0.5, 1.0, 1.5]))  # exact levels
        0.5
        >>> round(resolution(np.array([31.0, 31.002, 32.0, 32.001, 32.003, 33.0])), 4)  # jittered
        0.9975
    """
    gaps = np.diff(np.unique(x))
    if not len(gaps):
        return 0.0
    return float(np.median(gaps[gaps >= gaps.mean()]))


def _dequantised(X: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``X`` plus uniform noise of one ``resolution`` step per channel, for fitting only. On a
    quantised channel EM would collapse a component onto one level, its variance down to the
    jitter or the ridge, and put the next level up hundreds of sigma away (SKAB's flow: 800);
    spread over its step (uniform dequantisation, as in density modelling of discrete data), a
    level keeps the variance q^2 / 12 its rounding hides, and the next level is a few sigma off.
    On a continuous channel the step, and so the noise, is negligible."""
    out = np.empty_like(X)
    for j in range(X.shape[1]):
        out[:, j] = X[:, j] + resolution(X[:, j]) * (rng.random(len(X)) - 0.5)
    return out


class OperatingModes(Detector):
    """Mahalanobis distance of a row to the nearest operating mode of the training rows.

    Channels are standardised by their training median and 1.4826 MAD (channels constant in
    training are not scored); a Gaussian mixture with full covariances is fitted for 1 to
    ``max_modes`` components (k-means initialised, seeded by ``random_state``) and the one with
    the lowest BIC is kept (``bic_`` holds each candidate's). Its modes are the components that
    hold at least ``MIN_MODE_ROWS`` (10) training rows and are not catch-alls broader than the
    data (``BROAD``). The fit sees each channel plus uniform noise of one quantisation step
    (``resolution``), so a quantised channel cannot pin a mode to one level. A Gaussian
    mixture, not k-means: each mode gets its own spread and correlations, so a broken
    correlation within a mode and a burst of noise in a quiet mode stand out, and BIC gives the
    number of modes. A row's score is
    ``min_k sqrt((z - mu_k)^T P_k (z - mu_k))``, the distance to the mode that explains it best
    (never to a mode picked by one channel, so a single-channel spike cannot move the row into a
    mode where it looks normal); start-ups and stops that training saw get a mode of their own
    when BIC finds them worth one. ``natural_threshold``: sqrt of the chi-square quantile at
    ``support``, which a normal row of its own mode exceeds with probability 1 - support, and the
    minimum over modes with no more.

    ``score_channels`` gives each channel's standardised residual given all the other channels,
    within the nearest mode (``|(P_k (z - mu_k))_i| / sqrt(P_k,ii)``): the channel that drove
    the row is the largest.

    Parameters:
        max_modes: the most mixture components BIC chooses among. 4, measured on the bundled
            plant data (fit on the clean week, the model's own POT threshold): BIC takes all it
            is offered, past the two real modes (it also splits the non-Gaussian daily cycle
            and gives starts and stops a component); at 4, 7-8 of the 12 events are caught with
            no false alarm (random_state 0-3); at 8 as many are caught but the finer modes
            overfit one week (warm weekend afternoons at rest: 4-7 false alarms); at 2 the
            starts and stops set the threshold and 5 are caught. Capped so each component has
            at least as many rows as parameters.
        random_state: seed of the k-means initialisation, of the quantisation noise and of the
            row sample on large data.
        support: the chi-square probability ``natural_threshold`` is the quantile of.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> running = np.repeat([0.0, 1.0] * 5, 200)  # five stops and starts
        >>> pump = 1.2 + 4.3 * running + rng.normal(0, 0.1, 2000)
        >>> flow = 11.5 * pump + 2.0 + rng.normal(0, 0.5, 2000)
        >>> vibration = 0.25 + 2.05 * running + rng.normal(0, 0.05, 2000)
        >>> det = OperatingModes().fit(np.column_stack([pump, flow, vibration]))
        >>> len(det.weights_)  # off and running
        2
        >>> rows = np.array([[5.5, 65.2, 2.3],    # running
        ...                  [1.2, 15.8, 0.25],   # off
        ...                  [1.2, 15.8, 1.0]])   # off, vibration within the global range
        >>> (det.score(rows) > det.natural_threshold).tolist()
        [False, False, True]
        >>> int(det.score_channels(rows)[2].argmax())  # vibration drove it
        2
    """

    name = "modes"
    attributes: ClassVar[bool] = True
    kinds: ClassVar[tuple[str, ...]] = ("spike", "level_shift", "variance_burst",
                                        "broken_correlation")
    params = {
        "max_modes": Param(4, int, low=1),
        "random_state": Param(0, int),
        "support": Param(0.999, float, low=0.5, high=1.0, low_open=True),
    }
    #: Small chunks keep each chunk's column temporaries in the CPU cache.
    chunk_bytes: ClassVar[int] = 2 * 2**20
    fitted_state = {
        "center_": PER_CHANNEL,
        # +inf: a channel constant in training, left out of scoring
        "scale_": StateSpec("f", ("d",), positive=True, allow_inf=True),
        "weights_": StateSpec("f", ("*",), low=0.0),
        # one row per mode, over the scored (finite-scale) channels; checked in _check_state
        "means_": StateSpec("f", ("weights_[0]", "*")),
        "precisions_cholesky_": StateSpec("f", ("weights_[0]", "means_[1]", "means_[1]")),
        "bic_": StateSpec("f", ("*",)),
    }

    @property
    def natural_threshold(self) -> float:  # type: ignore[override]
        """sqrt of the chi-square quantile at ``support`` for the scored channels."""
        d = int(np.isfinite(self.scale_).sum()) if hasattr(self, "scale_") else 1
        return float(np.sqrt(stats.chi2.ppf(self.support, max(d, 1))))

    # -- fitting ---------------------------------------------------------------------------
    def _fit(self, X: np.ndarray) -> None:
        robust = RobustZScore().fit(X)  # median and 1.4826 MAD, floored by channel_scale
        # A channel constant in training (its range within SCALE_FLOOR of its magnitude) has no
        # known spread in any mode: it is left out (infinite scale) rather than given a floor
        # that would make a mode's covariance singular and any later change a huge score.
        constant = np.ptp(X, axis=0) <= SCALE_FLOOR * np.abs(X).max(axis=0)
        self.center_ = robust.center_
        self.scale_ = np.where(constant, np.inf, robust.scale_)
        scored = ~constant
        d = int(scored.sum())
        if d == 0:  # every channel constant: nothing is scored
            self.weights_, self.means_ = np.ones(1), np.zeros((1, 0))
            self.precisions_cholesky_, self.bic_ = np.zeros((1, 0, 0)), np.zeros(1)
            self._derive()
            return
        rng = np.random.default_rng(self.random_state)
        if len(X) > MAX_FIT_ROWS:
            X = X[np.sort(rng.choice(len(X), MAX_FIT_ROWS, replace=False))]
        X = _dequantised(X[:, scored], rng)
        Z = (X - self.center_[scored]) / self.scale_[scored]
        per_mode = d + d * (d + 1) // 2 + 1  # mean, covariance, weight
        candidates = [self._mixture(Z, k)
                      for k in range(1, max(1, min(self.max_modes, len(Z) // per_mode)) + 1)]
        self.bic_ = np.array([mixture.bic(Z) for mixture in candidates])
        best = candidates[int(self.bic_.argmin())]
        keep = self._modes(best, Z, max(MIN_MODE_ROWS, d + 1))
        self.weights_ = best.weights_[keep]
        self.means_ = best.means_[keep]
        self.precisions_cholesky_ = best.precisions_cholesky_[keep]
        self._derive()

    def _mixture(self, Z: np.ndarray, k: int):
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.mixture import GaussianMixture
        from threadpoolctl import threadpool_limits

        # One thread: EM on d x d covariances spends more waking BLAS and OpenMP threads than on
        # the arithmetic (the bundled week's fit: 2 s on one thread, 10 s on two busy cores).
        with warnings.catch_warnings(), threadpool_limits(1):
            # an EM run stopped at max_iter is still a usable fit, and BIC judges it as it is
            warnings.simplefilter("ignore", ConvergenceWarning)
            return GaussianMixture(k, covariance_type="full", reg_covar=RIDGE,
                                   random_state=self.random_state).fit(Z)

    @staticmethod
    def _modes(mixture, Z: np.ndarray, min_rows: int) -> np.ndarray:
        """Which components are operating modes: those holding at least ``min_rows`` rows and
        not broader than the data (``BROAD``); the heaviest one at least. The others stay in
        the fit (their rows are kept out of the modes) and are left out of scoring."""
        overall = np.atleast_2d(np.cov(Z, rowvar=False, bias=True))
        overall[np.diag_indices_from(overall)] += RIDGE
        # largest variance of each component relative to the data's, over all directions
        breadth = np.array([linalg.eigh(c, overall, eigvals_only=True)[-1]
                            for c in mixture.covariances_])
        keep = (breadth <= BROAD) & (mixture.weights_ * len(Z) >= min_rows)
        keep[mixture.weights_.argmax()] = True
        return keep

    def _check_state(self) -> None:
        """One mode at least, over exactly the scored channels, each with a precision whose
        diagonal (``score_channels`` divides by its square root) is finite and > 0."""
        scored = int(np.isfinite(self.scale_).sum())
        if not len(self.weights_) or self.means_.shape[1] != scored:
            raise ModelFileError(f"modes state holds {len(self.weights_)} mode(s) over "
                                 f"{self.means_.shape[1]} channel(s), but {scored} channel(s) "
                                 "are scored; the file is damaged")
        with np.errstate(over="ignore"):
            diagonal = np.square(self.precisions_cholesky_).sum(axis=2)
        if not (np.isfinite(diagonal).all() and (diagonal > 0).all()):
            raise ModelFileError("modes state 'precisions_cholesky_' gives a precision whose "
                                 "diagonal is not finite and > 0; the file is damaged")
        self._derive()

    def _derive(self) -> None:
        # Standardising folded into each mode's projections, as in mahalanobis.py:
        # (z - mu) U = x (U / s) - (c / s + mu) U over the scored channels, one pass over x.
        scored = np.flatnonzero(np.isfinite(self.scale_))
        center, scale = self.center_[scored], self.scale_[scored]
        self._scored = scored
        self._projections = []
        for mean, factor in zip(self.means_, self.precisions_cholesky_):
            precision = factor @ factor.T
            residual = precision / np.sqrt(np.diag(precision))  # see score_channels
            self._projections.append(tuple(
                (matrix / scale[:, None], (center / scale + mean) @ matrix)
                for matrix in (factor, residual)))

    # -- scoring ---------------------------------------------------------------------------
    def _project(self, X: np.ndarray, mode: int, which: int, k: int, out: np.ndarray,
                 term: np.ndarray) -> np.ndarray:
        """Column k of ``(z - mu) M`` for one mode into ``out``: multiply-adds over the scored
        channels (exact zeros of the triangular factor skipped), the same arithmetic for a row
        whatever chunk it is in; BLAS on a d x d matrix spends more waking threads."""
        matrix, offset = self._projections[mode][which]
        out.fill(-offset[k])
        for j in np.flatnonzero(matrix[:, k]):
            np.multiply(X[:, self._scored[j]], matrix[j, k], out=term)
            out += term
        return out

    def _squared_distances(self, X: np.ndarray, mode: int, out: np.ndarray) -> np.ndarray:
        column, term = np.empty(len(X)), np.empty(len(X))
        out.fill(0.0)
        for k in range(len(self._scored)):
            self._project(X, mode, 0, k, column, term)
            np.multiply(column, column, out=term)
            out += term
        return out

    def _nearest(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The squared distance to the nearest mode and which mode it is, per row."""
        best, mode = np.full(len(X), np.inf), np.zeros(len(X), dtype=np.intp)
        squared = np.empty(len(X))
        for m in range(len(self._projections)):
            self._squared_distances(X, m, squared)
            closer = squared < best
            np.copyto(best, squared, where=closer)
            mode[closer] = m
        return best, mode

    def _score(self, X: np.ndarray) -> np.ndarray:
        if not len(self._scored):
            return np.zeros(len(X))
        best, _ = self._nearest(X)
        return np.sqrt(best, out=best)

    def _score_channels(self, X: np.ndarray) -> np.ndarray:
        out = np.zeros(X.shape)
        if not len(self._scored):
            return out
        _, nearest = self._nearest(X)
        for m in range(len(self._projections)):
            rows = np.flatnonzero(nearest == m)
            if not len(rows):
                continue
            sub, column, term = X[rows], np.empty(len(rows)), np.empty(len(rows))
            for k, channel in enumerate(self._scored):
                out[rows, channel] = np.abs(self._project(sub, m, 1, k, column, term))
        return out

    def _row_bytes(self) -> int:
        return 8 * 6  # nearest distance and mode, this mode's distance, a column, a term, mask
