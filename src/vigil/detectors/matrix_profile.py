"""Matrix-profile discords against the training series: a window of the scored data is as
anomalous as it is far from its nearest window of the training data, in z-normalised Euclidean
distance (an AB-join, Yeh et al. 2016, "Matrix Profile I"). Shape is compared, not level: a
window unlike anything seen in training scores high, a repeat of a normal cycle scores ~0.

The fitted state is the training series itself (its last ``max_reference_rows`` rows per
channel): scores never depend on the rest of the scored batch (no self-join), so a chunk, a
stream micro-batch or a Spark partition gets exactly the scores of the whole series.

Why not stumpy: ``stumpy.stump`` walks diagonals with running dot products, so a window's
distance depends (in the last bits) on where the scored slice starts; chunked scores would not
equal whole scores. The join here restarts every running product at reference windows
``k = 0, R, 2R, ...`` (``R = restart_rows(window)``), so a window's distance depends only on
itself, at most ``R - 1`` rows before it and the reference: bit-identical however the rows are
cut. It equals a direct computation to ~1e-14 and stumpy's AB-join to stumpy's own rounding
(~1e-6, tested), and needs neither stumpy nor its ~50 s first-call compile.
"""

from __future__ import annotations

import functools
from typing import ClassVar

import numpy as np

from vigil.detectors.base import Detector, Param
from vigil.detectors.state import PER_CHANNEL, PER_CHANNEL_SCALE, StateSpec
from vigil.detectors.statistical import _floor_scale
from vigil.errors import DataError, ModelFileError
from vigil.preprocess import dominant_period, windows_to_points

#: The shortest window ``window="auto"`` picks: a z-normalised window of m points has m - 2
#: degrees of freedom in shape (mean and scale are removed), so below ~8 points almost every
#: window matches some training window and distances carry little more than noise.
MIN_WINDOW = 8
#: ``window="auto"`` takes at most 1/AUTO_MAX_FRACTION of the training rows (the convention of
#: vigil's windowed detectors). Measured on NAB, whose training parts are 230-750 rows: a quarter
#: caps the daily period (288 rows) of the 604-row artificial series at 151, and the mean AUC-PR
#: is 0.236; a half (2) gives 0.304 (measured while building it, sklearn average precision).
AUTO_MAX_FRACTION = 4
#: A window whose standard deviation is at most this (in units of its channel's training std)
#: is flat. As stumpy (``config.STUMPY_STDDEV_THRESHOLD``): two flat windows are at distance
#: 0, a flat and a non-flat one at sqrt(m) (correlation 1/2), since z-normalising a constant
#: divides by zero.
FLAT_STD = 1e-7
#: Scored windows one numba task joins against the whole reference (its arrays stay in cache).
_TILE = 2048


def restart_rows(window: int) -> int:
    """R: running dot products restart at every R-th reference window. A restart costs an
    m-long dot product per scored window, so R >= 2m keeps it to half a multiply-add per pair
    of windows (a step costs four); 64 floors it for short windows."""
    return max(2 * window, 64)


class MatrixProfile(Detector):
    """Z-normalised distance of each window to its nearest training window, per channel; a row
    takes the worst window covering it, the row score is the largest over channels.

    Scores lie in ``[0, 2 sqrt(window)]``. ``natural_threshold`` is None (the distance has no
    textbook cut-off: a threshold falls back to the largest training score). Training rows
    beyond the last ``max_reference_rows`` are not kept (the join costs scored x reference
    windows). Data shorter than the window has no complete window: its rows score 0.
    ``score_channels`` gives each channel's own distance.

    Examples:
        >>> import numpy as np
        >>> t = np.arange(1000)
        >>> X = np.sin(2 * np.pi * t / 40)[:, None]
        >>> det = MatrixProfile(window=40).fit(X[:400])
        >>> X[700:710, 0] = np.linspace(-1, 1, 10)  # a changed shape, in range
        >>> scores = det.score(X)
        >>> bool(scores[700:710].min() > 10 * scores[400:650].max())
        True
    """

    name = "matrix_profile"
    attributes: ClassVar[bool] = True
    params: ClassVar[dict[str, Param]] = {
        # 3, as stumpy's minimum: every 2-row window z-normalises to +-(1, -1), so all distances
        # would be 0 or 2 sqrt(2) and nothing but a step's sign could be seen
        "window": Param("auto", int, low=3, allow_auto=True),
        "max_reference_rows": Param(20_000, int, low=2),
    }
    min_rows = 3
    natural_threshold = None
    fitted_state = {
        "window_": StateSpec("iu", (), low=3, param="window"),
        "center_": PER_CHANNEL,
        "scale_": PER_CHANNEL_SCALE,
        # the training rows in z units: at least one window of them, at most the parameter
        "reference_": StateSpec("f", ("<=max_reference_rows", "d")),
    }

    def training_scores(self, X: np.ndarray) -> np.ndarray:
        """Two-fold out-of-sample scores of the training rows: each half scored against a
        reference of the other half (against itself every training window is at distance 0,
        and a threshold fitted on zeros would flag everything new)."""
        half = len(X) // 2
        if half < 2 * self.window_:
            return self.score(X)  # too short to split: the fallback threshold handles it
        params = {**self.get_params(), "window": int(self.window_)}
        first = type(self)(**params).fit(X[:half]).score(X[half:])
        second = type(self)(**params).fit(X[half:]).score(X[:half])
        return np.concatenate([second, first])

    def _fit(self, X: np.ndarray) -> None:
        n = len(X)
        if self.window == "auto":
            upper = max(3, n // AUTO_MAX_FRACTION)
            window = min(max(dominant_period(X[:, 0]), MIN_WINDOW), upper)
        else:
            window = int(self.window)
        if window > n:
            raise DataError(f"window {window} is longer than the series ({n} rows): lower "
                            "window or give more data.")
        if window > self.max_reference_rows:
            raise DataError(f"window {window} is longer than max_reference_rows "
                            f"({self.max_reference_rows}): lower window or raise "
                            "max_reference_rows.")
        self.window_ = window
        self.center_ = X.mean(axis=0)
        self.scale_ = _floor_scale(X.std(axis=0), self.center_)
        # the most recent rows: the latest normal behaviour
        self.reference_ = (X[-self.max_reference_rows:] - self.center_) / self.scale_
        self._derive()

    def _check_state(self) -> None:
        """At least one reference window; then the reference windows' statistics."""
        self.reference_ = np.ascontiguousarray(self.reference_, dtype=np.float64)
        if len(self.reference_) < self.window_:
            raise ModelFileError(f"{self.name} state holds {len(self.reference_)} reference "
                                 f"rows, fewer than its window {self.window_}: fit the model "
                                 "again.")
        self._derive()

    def _derive(self) -> None:
        m = self.window_
        self._reference = []  # per channel: (values, 1 / (m std), mean / std, any flat)
        for j in range(self.n_channels_):
            b = np.ascontiguousarray(self.reference_[:, j])
            mean, inverse, flat = window_stats(b, m)
            self._reference.append((b, inverse / m, mean * inverse, bool(flat.any())))

    def _context_rows(self) -> int:
        # the windows covering a row, and the running products' restart R - 1 rows before them
        return self.window_ - 1 + restart_rows(self.window_) - 1

    def _lookahead_rows(self) -> int:
        return self.window_ - 1

    def _row_bytes(self) -> int:
        return 8 * (12 + self.n_channels_)  # one channel's temporaries and the output rows

    def _score(self, X: np.ndarray) -> np.ndarray:
        out = self._channel(X[:, 0], 0)
        for j in range(1, X.shape[1]):
            np.maximum(out, self._channel(X[:, j], j), out=out)
        return out

    def _score_channels(self, X: np.ndarray) -> np.ndarray:
        return np.column_stack([self._channel(X[:, j], j) for j in range(X.shape[1])])

    def _channel(self, x: np.ndarray, j: int) -> np.ndarray:
        """Point scores of channel ``j``'s values ``x``."""
        m, n = self.window_, len(x)
        if n < m:
            return np.zeros(n)  # no complete window: nothing to compare (documented)
        a = (x - self.center_[j]) / self.scale_[j]
        b, b_inverse, b_ratio, reference_flat = self._reference[j]
        a_mean, a_inverse, flat = window_stats(a, m)
        rho = _join(a, a_mean, a_inverse, b, b_inverse, b_ratio, m)
        rho[~np.isfinite(rho)] = -1.0  # values whose squares overflow: as far as can be
        # flat windows (see FLAT_STD): flat-flat correlates 1, flat-other 1/2
        if reference_flat:
            np.maximum(rho, 0.5, out=rho)
        rho[flat] = 1.0 if reference_flat else 0.5
        np.clip(rho, -1.0, 1.0, out=rho)
        distance = np.sqrt(2.0 * m * (1.0 - rho))  # |z(a) - z(b)| = sqrt(2m (1 - corr))
        return windows_to_points(distance, n, m)


def window_stats(a: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per window of ``m`` values of ``a``: the mean, ``1 / std`` (0 where flat) and the flat
    mask (``std <= FLAT_STD``).

    Sums run row by row in a fixed order (never a pairwise or SIMD reduction whose order could
    depend on where the window sits in memory), so a window's statistics are the same in any
    slice that holds it."""
    n = len(a) - m + 1
    total, term = np.zeros(n), np.empty(n)
    for j in range(m):
        total += a[j : j + n]
    mean = total / m
    total[:] = 0.0
    for j in range(m):
        np.subtract(a[j : j + n], mean, out=term)
        term *= term
        total += term
    std = np.sqrt(total / m)
    flat = std <= FLAT_STD
    return mean, np.divide(1.0, std, out=np.zeros(n), where=~flat), flat


def nearest_correlation(a: np.ndarray, b: np.ndarray, m: int,
                        engine: str | None = None) -> np.ndarray:
    """For each window of ``m`` values of ``a``: the largest Pearson correlation with any window
    of ``b`` (an AB-join; a flat window, on either side, counts as correlation 0 here),
    ``float64[len(a) - m + 1]``. The z-normalised distance is ``sqrt(2 m (1 - corr))``.

    ``engine``: "numba" (the default where numba imports) or "numpy"; bit-identical results.
    """
    a, b = (np.ascontiguousarray(v, dtype=np.float64) for v in (a, b))
    a_mean, a_inverse, _ = window_stats(a, m)
    b_mean, b_inverse, _ = window_stats(b, m)
    return _join(a, a_mean, a_inverse, b, b_inverse / m, b_mean * b_inverse, m, engine)


def _join(a, a_mean, a_inverse, b, b_inverse, b_ratio, m, engine=None) -> np.ndarray:
    """:func:`nearest_correlation` from the windows' statistics (``b_inverse`` divided by m).

    corr(i, k) = (QT - m mean_i mean_k) / (m std_i std_k)
               = a_inverse[i] * (QT * b_inverse[k] - a_mean[i] * b_ratio[k]),
    so the kernels keep the largest bracket per scored window and multiply once at the end."""
    n_b = len(b) - m + 1
    # chains starting at scored window 0 (no earlier row to run from): direct dot products
    head = np.zeros(n_b)
    for j in range(m):
        head += a[j] * b[j : j + n_b]
    out = np.empty(len(a) - m + 1)
    if engine is None:
        try:
            kernel = _numba_kernel()
        except ImportError:
            kernel = _join_numpy
    elif engine in ("numba", "numpy"):
        kernel = _numba_kernel() if engine == "numba" else _join_numpy
    else:
        raise ValueError(f"engine must be 'numba' or 'numpy'; got {engine!r}.")
    kernel(a, a_mean, b, b_inverse, b_ratio, m, restart_rows(m), head, out)
    out *= a_inverse
    return out


def _join_numpy(a, a_mean, b, b1, b2, m, restart, head, out) -> None:
    """The join with numpy, all scored windows at once (the fallback without numba).

    ``qt[s - s0]`` is the running dot product of the chain that starts at scored window ``s``
    and reference window ``k0``; at step t it holds windows (s + t, k0 + t)."""
    n_a, n_b = len(a) - m + 1, len(b) - m + 1
    s0 = 1 - restart
    qt, z = np.empty(n_a - s0), np.empty(n_a)
    out[:] = -np.inf
    for k0 in range(0, n_b, restart):
        qt[-s0:] = 0.0
        for j in range(m):
            qt[-s0:] += a[j : j + n_a] * b[k0 + j]
        for t in range(min(restart, n_b - k0)):
            k = k0 + t
            if t:
                qt[-t - s0] = head[k]
                chains = qt[1 - t - s0 : n_a - t - s0]  # windows 1 .. n_a - 1
                chains -= a[: n_a - 1] * b[k - 1]
                chains += a[m : n_a - 1 + m] * b[k + m - 1]
            np.multiply(qt[-t - s0 : n_a - t - s0], b1[k], out=z)
            z -= a_mean * b2[k]
            np.maximum(out, z, out=out)


def _join_python(a, a_mean, b, b1, b2, m, restart, head, out):  # pragma: no cover (numba)
    """The numba kernel's source: :func:`_join_numpy` tile by tile, the same operations in the
    same order (no fastmath), so the engines agree bit for bit. Inner loops index slices from
    0 (no negative-index wraparound checks) over at most three arrays, so LLVM vectorises
    them; advancing and folding in one loop measured ~10% slower."""
    n_a, n_b = len(a) - m + 1, len(b) - m + 1
    for tile in _prange((n_a + _TILE - 1) // _TILE):
        lo = tile * _TILE
        hi = min(n_a, lo + _TILE)
        s0 = lo - restart + 1  # qt[u] is the chain that starts at scored window s0 + u
        qt = np.empty(hi - s0)
        best = np.full(hi - lo, -np.inf)
        mean = a_mean[lo:hi]
        started = qt[max(s0, 0) - s0 :]
        for k0 in range(0, n_b, restart):
            started[:] = 0.0
            for j in range(m):
                bj = b[k0 + j]
                rows = a[max(s0, 0) + j : hi + j]
                for u in range(len(started)):
                    started[u] += rows[u] * bj
            for t in range(min(restart, n_b - k0)):
                k = k0 + t
                c1, c2 = b1[k], b2[k]
                v0 = 0  # the tile's first window to advance (window 0 starts from head)
                if t > 0:
                    if -t >= s0:
                        qt[-t - s0] = head[k]
                    v0 = 1 if lo == 0 else 0
                    b_out, b_in = b[k - 1], b[k + m - 1]
                    s_lo = max(s0, 1 - t)  # chains still before the tile: advance only
                    ahead = qt[s_lo - s0 : lo - t - s0]
                    leaving = a[s_lo + t - 1 : lo - 1]
                    entering = a[s_lo + t + m - 1 : lo + m - 1]
                    for u in range(len(ahead)):
                        ahead[u] = ahead[u] - leaving[u] * b_out + entering[u] * b_in
                    current = qt[lo + v0 - t - s0 : hi - t - s0]
                    leaving = a[lo + v0 - 1 : hi - 1]
                    entering = a[lo + v0 + m - 1 : hi + m - 1]
                    for u in range(len(current)):
                        current[u] = current[u] - leaving[u] * b_out + entering[u] * b_in
                current = qt[lo - t - s0 : hi - t - s0]
                for u in range(hi - lo):
                    z = current[u] * c1 - mean[u] * c2
                    best[u] = max(best[u], z)
        out[lo:hi] = best


_prange = range  # replaced by numba.prange inside the compiled kernel


@functools.cache
def _numba_kernel():
    """Compile (or load from numba's on-disk cache) the kernel; ImportError without numba."""
    import numba

    global _prange
    _prange = numba.prange
    return numba.njit(parallel=True, cache=True, nogil=True)(_join_python)
