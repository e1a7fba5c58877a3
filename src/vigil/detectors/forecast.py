"""Forecasting-residual detection: predict each row from the rows just before it and score how
far the real value lands from the prediction.

A value can be perfectly ordinary on its own (inside the channel's usual range) and still be
wrong *here*: a flat stretch where the series should rise, a jump inside a smooth curve, a cycle
that skips. A one-step forecast from the recent past knows what "here" expects, so its error is
large exactly at such rows. Two forecasters, both a fixed linear filter over the last ``window``
values, so scoring is linear in the rows:

``ar``    a linear autoregressive model per channel, fitted by ridge least squares on the
          training rows (the classic AR residual detector, e.g. Box & Jenkins' forecast errors);
``poly``  a polynomial of degree ``degree`` fitted to the last ``window`` values and extrapolated
          one step (TSB-AD's POLY family); nothing to learn but the residual scale.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from vigil.detectors.base import Detector, Param
from vigil.detectors.state import PER_CHANNEL, PER_CHANNEL_SCALE, StateSpec
from vigil.detectors.statistical import MAD_TO_SIGMA, MEAN_AD_TO_SIGMA, channel_scale
from vigil.errors import DataError, ModelFileError

#: Smallest window ``window="auto"`` picks: TSB-AD's period estimator trusts no period below 6
#: rows (``find_length_rank``), and an AR model of order < 6 cannot follow one cycle.
MIN_WINDOW = 6
#: The AR fit uses at most this many windows (16 contiguous runs spread over the training rows,
#: so every phase of a cycle is represented): the normal equations cost rows x window^2.
MAX_FIT_WINDOWS = 20_000
FIT_RUNS = 16
#: Floor of a channel's residual scale, in units of the channel's own robust spread: a forecast
#: error a millionth of the channel's range is rounding, not signal (a noise-free training series
#: would otherwise divide later rounding noise by ~0).
RESIDUAL_FLOOR = 1e-6


class ForecastResidual(Detector):
    """One-step forecast error per channel, as a z-score against the training errors.

    Each channel is standardised by its training median and MAD; a linear forecaster predicts
    row ``t`` from rows ``t - window .. t - 1`` (``model="ar"``: ridge least-squares AR model
    with intercept; ``model="poly"``: degree-``degree`` polynomial through those rows,
    extrapolated one step); the error's robust z-score is
    ``z_t = |residual_t| / (1.4826 * median |training residual|)``.

    - ``smooth=1``: the channel score is ``z_t`` (spikes stand out at their own row).
    - ``smooth=s > 1`` (default ``"auto"``: ``s = window``, one cycle): the channel score is the
      z-score of the mean of ``z`` over the last ``s`` rows, ``(mean_s z - m) / (sd / sqrt(s))``
      with ``m``, ``sd`` the mean and std of ``z`` on the training rows (the standard error of a
      mean of ``s`` independent errors). It sees a sustained change of shape or level that the
      forecaster half-follows, at the cost of spreading a lone spike over ``s`` rows. On nab and
      skab it lifts AUC-PR from 0.19 to 0.30 and from 0.77 to 0.86
      (``vigil bench ../shared/datasets --methods "forecast,forecast(smooth=1)"``), so it is
      the default.

    Row score = max over channels; ``score_channels`` gives each channel's score.

    **Causal**, unlike the windowed detectors that give a row the worst of the windows covering
    it: a one-step forecast error belongs to the row it predicts, so row ``t``'s score depends on
    rows ``t - window - smooth + 1 .. t`` only (a stream scores a row as it arrives; there is no
    lookahead). The first ``window`` rows of a series have no full history to be forecast from:
    their residual is taken as 0 (no evidence either way), so they are scored, never flagged for
    being first; data shorter than the window is scored the same way.

    ``natural_threshold`` = 3.5, the modified z-score cut-off of Iglewicz & Hoaglin (1993): both
    scores are z-scores (robust for ``smooth=1``; of a mean, by the central limit theorem, for
    ``smooth > 1``).

    The AR fit solves the normal equations on at most 20,000 windows (16 runs spread over the
    training rows): fitting costs ``20,000 * window^2`` per channel at most, plus one pass over
    the training rows for the residual scale; scoring costs ``window + smooth`` multiply-adds
    per row and channel.

    Parameters:
        window: rows of history per forecast, or "auto": the training series' dominant period
            (channel 0), clipped to [6, rows // 4].
        model: "ar" or "poly" (the AR model scores better on nab and skab).
        degree: the polynomial degree of ``model="poly"`` (lowered to ``window - 1`` if needed).
        ridge: the AR fit's ridge, relative to the mean diagonal of the normal equations.
        smooth: rows of trailing mean of the error z-score, "auto" (= window) or 1 (none).

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> t = np.arange(2000)
        >>> X = np.sin(2 * np.pi * t / 50)[:, None] + 0.05 * rng.normal(size=(2000, 1))
        >>> X[1500, 0] += 0.5  # within the range of the values, but not of the curve
        >>> spikes = ForecastResidual(window=50, smooth=1).fit(X[:1000]).score(X)
        >>> int(spikes[50:].argmax()) + 50, bool(spikes[1500] > 3.5)  # rows with a full history
        (1500, True)
        >>> X[1800:1900, 0] = 0.0  # the cycle stops: each value is ordinary on its own
        >>> det = ForecastResidual().fit(X[:1000])  # window and smooth = the period, 50
        >>> scores = det.score(X)
        >>> peak = int(scores[100:].argmax()) + 100  # rows with a full history and smoothing
        >>> det.window_, 1800 <= peak < 1900, bool(scores[peak] > 3.5)
        (50, True, True)
    """

    name = "forecast"
    attributes: ClassVar[bool] = True
    natural_threshold = 3.5  # Iglewicz & Hoaglin (1993), modified z-score cut-off
    min_rows = MIN_WINDOW + 1
    params: ClassVar[dict[str, Param]] = {
        "window": Param("auto", int, low=2, allow_auto=True),
        "model": Param("ar", str, choices=("ar", "poly")),
        "degree": Param(3, int, low=0, high=10),
        "ridge": Param(1e-3, float, low=0.0),
        "smooth": Param("auto", int, low=1, allow_auto=True),
    }
    #: Small chunks: each chunk's column-long temporaries stay in the CPU cache across the
    #: ``window`` multiply-adds of the filter.
    chunk_bytes: ClassVar[int] = 2 * 2**20
    fitted_state = {
        "window_": StateSpec("iu", (), low=2, param="window"),
        "smooth_": StateSpec("iu", (), low=1),
        "center_": PER_CHANNEL,
        "scale_": PER_CHANNEL_SCALE,
        "coef_": StateSpec("f", ("d", "window_")),
        "intercept_": PER_CHANNEL,
        "residual_scale_": PER_CHANNEL_SCALE,
        "error_mean_": PER_CHANNEL,
        "error_std_": PER_CHANNEL_SCALE,
    }

    # -- fit ---------------------------------------------------------------------------------
    def _fit(self, X: np.ndarray) -> None:
        n = len(X)
        self.window_ = self._choose_window(X)
        self.smooth_ = self.window_ if self.smooth == "auto" else int(self.smooth)
        self.center_ = np.median(X, axis=0)
        deviation = np.abs(X - self.center_)
        scale = MAD_TO_SIGMA * np.median(deviation, axis=0)
        mean_ad = MEAN_AD_TO_SIGMA * deviation.mean(axis=0)
        self.scale_ = channel_scale(np.where(scale > 0, scale, mean_ad), X)
        Z = (X - self.center_) / self.scale_
        d, w = X.shape[1], self.window_
        if self.model == "poly":
            self.coef_ = np.tile(_poly_extrapolation(w, min(self.degree, w - 1)), (d, 1))
            self.intercept_ = np.zeros(d)
        else:
            fits = [_fit_ar(Z[:, j], w, self.ridge) for j in range(d)]
            self.coef_ = np.array([coef for coef, _ in fits])
            self.intercept_ = np.array([intercept for _, intercept in fits])
        # the residual scale from rows with a full history (the padded first rows are not data)
        residual = np.abs(self._residuals(Z)[w:]) if n > w else np.zeros((1, d))
        scale = MAD_TO_SIGMA * np.median(residual, axis=0)
        mean_ad = MEAN_AD_TO_SIGMA * residual.mean(axis=0)
        scale = np.where(scale > 0, scale, mean_ad)
        self.residual_scale_ = np.maximum(scale, RESIDUAL_FLOOR)
        # the mean and spread of |residual z| on the training rows, to standardise its
        # trailing mean (smooth > 1) into a z-score of its own
        error = residual / self.residual_scale_
        self.error_mean_ = error.mean(axis=0)
        self.error_std_ = np.maximum(error.std(axis=0), RESIDUAL_FLOOR)

    def _choose_window(self, X: np.ndarray) -> int:
        n = len(X)
        if self.window == "auto":
            from vigil.preprocess import dominant_period

            return int(np.clip(dominant_period(X[:, 0]), MIN_WINDOW, max(MIN_WINDOW, n // 4)))
        window = int(self.window)
        if window > n:
            raise DataError(f"window {window} is longer than the series ({n} rows): lower window "
                            "or give more data")
        if window == n:
            raise DataError(f"window {window} is as long as the series ({n} rows), leaving no row "
                            "to forecast: lower window or give more data")
        return window

    # -- score -------------------------------------------------------------------------------
    def _residuals(self, Z: np.ndarray) -> np.ndarray:
        """Forecast errors of the standardised rows ``Z``, ``[n, d]``: row t predicted from rows
        t-w..t-1; the first w rows, which have no full history, get residual 0. Multiply-adds in
        a fixed order, so a row's residual does not depend on where its chunk starts."""
        w = self.window_
        n, d = Z.shape
        padded = np.empty((n + w, d), order="F")  # column-major: each channel contiguous
        padded[:w] = Z[:1]
        padded[w:] = Z
        out = np.empty((n, d), order="F")
        term = np.empty(n)
        for j in range(d):
            prediction = out[:, j]
            prediction.fill(self.intercept_[j])
            column = padded[:, j]
            for k in range(w):  # coef_[j, k] weighs row t - w + k
                np.multiply(column[k : k + n], self.coef_[j, k], out=term)
                prediction += term
            np.subtract(Z[:, j], prediction, out=prediction)
        out[:w] = 0.0  # no full history yet: nothing to judge them by, so no evidence either way
        return out

    def _score_channels(self, X: np.ndarray) -> np.ndarray:
        Z = (X - self.center_) / self.scale_
        scores = np.abs(self._residuals(Z), out=Z) if len(X) else Z
        scores /= self.residual_scale_
        rows = int(self.smooth_)
        if rows == 1:
            return scores
        # z-score of the mean |error| over the last `rows` rows: its standard error is
        # std / sqrt(rows) for independent errors (a well-fitted forecaster leaves white noise)
        scores = _trailing_mean(scores, rows)
        scores -= self.error_mean_
        scores *= np.sqrt(rows) / self.error_std_
        return scores

    def _score(self, X: np.ndarray) -> np.ndarray:
        return self._score_channels(X).max(axis=1)

    def _check_state(self) -> None:
        expected = self.window_ if self.smooth == "auto" else self.smooth
        if self.smooth_ != expected:
            raise ModelFileError(f"forecast state 'smooth_' is {self.smooth_} but smooth="
                                 f"{self.smooth!r} gives {expected}; the file is damaged")

    def _context_rows(self) -> int:
        return int(self.window_) + int(self.smooth_) - 1

    def _lookahead_rows(self) -> int:
        return 0

    def _row_bytes(self) -> int:
        return 8 * (4 * self.n_channels_ + 2)


def _poly_extrapolation(window: int, degree: int) -> np.ndarray:
    """Weights ``c`` (oldest first) with ``c @ last_window`` = the least-squares polynomial of
    ``degree`` through the window, evaluated one step after it: a fixed linear filter
    (as Savitzky-Golay's smoothing weights are)."""
    times = (np.arange(window) - window) / window  # the predicted row at time 0; scaled for
    vandermonde = np.vander(times, degree + 1, increasing=True)  # a well-conditioned fit
    return np.linalg.pinv(vandermonde)[0]  # the constant term = the value at time 0


def _fit_ar(z: np.ndarray, window: int, ridge: float) -> tuple[np.ndarray, float]:
    """Ridge least-squares AR(window) with intercept on one standardised channel: coefficients
    (oldest lag first) and intercept, from at most MAX_FIT_WINDOWS windows."""
    from numpy.lib.stride_tricks import sliding_window_view

    windows = sliding_window_view(z, window + 1)  # history + target, a view
    count = len(windows)
    if count > MAX_FIT_WINDOWS:
        run = MAX_FIT_WINDOWS // FIT_RUNS
        starts = np.linspace(0, count - run, FIT_RUNS).astype(int)
        rows = (starts[:, None] + np.arange(run)).ravel()
    else:
        rows = np.arange(count)
    gram = np.zeros((window + 2, window + 2))
    step = max(1, 2**22 // (window + 2))  # blocks of windows bound the copy to 32 MiB
    for first in range(0, len(rows), step):
        block = windows[rows[first : first + step]]
        design = np.hstack([block[:, :window], np.ones((len(block), 1)), block[:, window:]])
        gram += design.T @ design
    normal, target = gram[: window + 1, : window + 1], gram[: window + 1, window + 1]
    penalty = ridge * max(np.trace(normal[:window, :window]) / window, 1e-12)
    normal[np.arange(window), np.arange(window)] += penalty  # the intercept is not shrunk
    solution = np.linalg.lstsq(normal, target, rcond=None)[0]
    return solution[:window], float(solution[window])


def _trailing_mean(scores: np.ndarray, rows: int) -> np.ndarray:
    """Mean of each column over the last ``rows`` rows (fewer at the start), summed newest to
    oldest in a fixed order so the result does not depend on where a chunk starts."""
    if rows <= 1 or len(scores) == 0:
        return scores
    total = scores.copy()
    for lag in range(1, min(rows, len(scores))):
        total[lag:] += scores[:-lag]
    counts = np.minimum(np.arange(1, len(scores) + 1), rows).astype(np.float64)
    total /= counts[:, None]
    return total
