"""The dominant period of a series from its autocorrelation: the window TSB-AD 1.5 feeds to
VUS (``TSB_AD.utils.slidingWindows.find_length_rank(x, rank=1)``), computed the same way with
numpy alone, so vigil's evaluation needs neither statsmodels nor TSB-AD."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from vigil.errors import DataError

#: TSB-AD's constants: the ACF uses at most the first 20,000 rows and lags up to 400; lags below
#: 3 are skipped; a peak at a lag outside [6, 303] (index < 3 or > 300 after the skip) is not
#: trusted and the window falls back to 125.
_MAX_ROWS = 20_000
_MAX_LAG = 400
_SKIP = 3
_FALLBACK = 125


def dominant_period(x: ArrayLike) -> int:
    """The lag of the highest local maximum of the autocorrelation (lags 4..400), or 125 when
    there is none or it lies outside 6..303 rows. Equals TSB-AD's ``find_length_rank(x, 1)``.

    Examples
    --------
    >>> t = np.arange(2000)
    >>> dominant_period(np.sin(2 * np.pi * t / 48))
    48
    >>> dominant_period(np.zeros(500))  # no periodicity: TSB-AD's fallback
    125
    """
    values = np.asarray(x, dtype=np.float64)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise DataError(f"dominant_period takes one channel; got shape {values.shape}: pass "
                        "one column, e.g. data[:, 0] as TSB-AD's protocol does")
    if not np.isfinite(values).all():
        raise DataError("dominant_period needs finite values: fill or drop missing rows first")
    values = values[:_MAX_ROWS]
    centred = values - values.mean()
    if values.size < 2 or not centred.any():
        return _FALLBACK
    autocorr = _acf(centred)[_SKIP:_MAX_LAG + 1]
    inner = autocorr[1:-1]
    peaks = np.flatnonzero((inner > autocorr[:-2]) & (inner > autocorr[2:])) + 1
    if peaks.size == 0:
        return _FALLBACK
    best = peaks[np.argsort(autocorr[peaks])[::-1][0]]  # TSB-AD's tie order, kept on purpose
    if best < 3 or best > 300:
        return _FALLBACK
    return int(best) + _SKIP


def _acf(centred: np.ndarray) -> np.ndarray:
    """Biased autocorrelation by FFT, as statsmodels' ``acf(fft=True)`` computes it (same FFT
    length and operations, so ties between peaks break the same way)."""
    n = centred.size
    spectrum = np.fft.fft(centred, n=_next_regular(2 * n + 1))
    autocov = np.fft.ifft(spectrum * np.conjugate(spectrum))[:n].real / n
    return autocov / autocov[0]


def _next_regular(target: int) -> int:
    """Smallest 2^a 3^b 5^c >= target (statsmodels' FFT length)."""
    if target <= 6 or not target & (target - 1):
        return target
    best = 2 ** (target - 1).bit_length()
    p5 = 1
    while p5 < target:
        p35 = p5
        while p35 < target:
            p2 = 2 ** ((-(-target // p35)) - 1).bit_length()
            best = min(best, p2 * p35)
            p35 *= 3
        best = min(best, p35)
        p5 *= 5
    return min(best, p5)
