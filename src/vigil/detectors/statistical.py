"""Per-channel statistical detectors: two-sided z-score, robust z-score (median and MAD) and
Tukey's IQR fences as a continuous score.

Each channel is scored on its own scale learnt from the training rows; the row's score is the
largest channel score, and that channel is the one that drove it (``score_channels``). No scale
is ever zero: it is floored at a tiny fraction of the channel's own magnitude, so a channel
constant in training does not divide by zero and any later change in it stands out.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from vigil.detectors.base import Detector, Param
from vigil.detectors.state import PER_CHANNEL, PER_CHANNEL_SCALE

#: Consistency constant making the MAD estimate the standard deviation of normal data.
MAD_TO_SIGMA = 1.482602218505602
#: Iglewicz & Hoaglin (1993): when MAD is 0, scale the mean absolute deviation by sqrt(pi/2).
MEAN_AD_TO_SIGMA = 1.2533141373155001
#: Relative floor of a scale: below this a channel is treated as constant.
SCALE_FLOOR = 1e-9


def _floor_scale(scale: np.ndarray, center: np.ndarray) -> np.ndarray:
    """Replace zero (or negligible) scales by a tiny floor relative to the level (for scores,
    whose level sets their precision)."""
    floor = SCALE_FLOOR * np.maximum(1.0, np.abs(center))
    return np.where(scale > floor, scale, floor)


def channel_scale(scale: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Per-channel ``scale`` fitted on the training rows ``X``, floored at ``SCALE_FLOOR`` times
    the channel's own magnitude (its largest absolute value; 1 for an all-zero channel). Relative,
    so a channel of tiny values (1e-10 +- 1e-12) keeps its real spread and a 20-sigma jump in it
    still stands out; a channel constant in training gets the floor, so any change stands out."""
    magnitude = np.abs(X).max(axis=0)
    return np.maximum(scale, SCALE_FLOOR * np.where(magnitude > 0, magnitude, 1.0))


class _PerChannel(Detector):
    """A detector whose channel score is ``|x - center_| / scale_`` (less ``_offset()``);
    row score = max over channels."""

    attributes: ClassVar[bool] = True
    score_is_channel_max: ClassVar[bool] = True
    #: Small chunks: a chunk's column-long temporaries stay in the CPU cache while each channel
    #: is read, transformed and folded into the row maximum.
    chunk_bytes: ClassVar[int] = 2 * 2**20
    fitted_state = {"center_": PER_CHANNEL, "scale_": PER_CHANNEL_SCALE}

    def _row_bytes(self) -> int:
        return 2 * 8 + self.n_channels_  # row scores, one channel's scores, the finite mask

    def _offset(self) -> float:
        """A constant taken off every channel score (0 here)."""
        return 0.0

    def _score(self, X: np.ndarray) -> np.ndarray:
        # Channel by channel into a running row maximum: never an (n, d) temporary, and no
        # reduction over the short last axis (numpy's slowest case: a length-d loop per row).
        out = np.empty(len(X))
        column = np.empty(len(X)) if X.shape[1] > 1 else out
        for j in range(X.shape[1]):
            self._channel(X[:, j], j, out if j == 0 else column)
            if j:
                np.maximum(out, column, out=out)
        offset = self._offset()
        if offset:
            out -= offset  # max(a - c) == max(a) - c exactly: rounding is monotone
        return out

    def _score_channels(self, X: np.ndarray) -> np.ndarray:
        out = np.empty(X.shape)
        for j in range(X.shape[1]):
            self._channel(X[:, j], j, out[:, j])
        offset = self._offset()
        if offset:
            out -= offset
        return out

    def _channel(self, x: np.ndarray, j: int, out: np.ndarray) -> None:
        """Channel ``j``'s score of the values ``x``, written into ``out``."""
        np.subtract(x, self.center_[j], out=out)
        np.abs(out, out=out)
        out /= self.scale_[j]


class ZScore(_PerChannel):
    """Two-sided z-score: ``|x - mean| / std`` per channel, the largest over channels.

    Examples:
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(200, 2)); X[50, 1] = 9.0
        >>> det = ZScore().fit(X)
        >>> int(det.score(X).argmax())
        50
    """

    name = "zscore"
    natural_threshold = 3.0  # the three-sigma rule, both tails

    def _fit(self, X: np.ndarray) -> None:
        self.center_ = X.mean(axis=0)
        self.scale_ = channel_scale(X.std(axis=0), X)


class RobustZScore(_PerChannel):
    """Robust (modified) z-score: ``|x - median| / (1.4826 MAD)`` per channel, the largest.

    Median and MAD ignore the outliers they are meant to find, so a few spikes in the training
    rows do not hide themselves (a plain z-score's mean and std are pulled by them).

    Examples:
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(200, 2)); X[50, 1] = 9.0
        >>> det = RobustZScore().fit(X)
        >>> int(det.score(X).argmax()), bool(det.score(X)[50] > 3.5)
        (50, True)
    """

    name = "robust_zscore"
    natural_threshold = 3.5  # Iglewicz & Hoaglin (1993), modified z-score cut-off

    def _fit(self, X: np.ndarray) -> None:
        self.center_ = np.median(X, axis=0)
        deviation = np.abs(X - self.center_)
        scale = MAD_TO_SIGMA * np.median(deviation, axis=0)
        mean_ad = MEAN_AD_TO_SIGMA * deviation.mean(axis=0)
        self.scale_ = channel_scale(np.where(scale > 0, scale, mean_ad), X)


class IQR(_PerChannel):
    """Tukey's fences as a continuous score: the signed distance outside the fences
    ``[Q1 - k IQR, Q3 + k IQR]`` in IQR units, the largest over channels.

    A score above 0 lies outside a fence; inside the fences the score is negative (how far
    inside), so scores still rank the normal rows and a threshold can be fitted on them.

    Examples:
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(200, 2)); X[50, 1] = 9.0
        >>> scores = IQR().fit(X).score(X)
        >>> int(scores.argmax()), bool(scores[50] > 0), bool(np.median(scores) < 0)
        (50, True, True)
    """

    name = "iqr"
    params = {"k": Param(1.5, float, low=0.0)}  # 1.5: Tukey's inner fences
    natural_threshold = 0.0  # outside the fences

    def _fit(self, X: np.ndarray) -> None:
        q1, q3 = np.quantile(X, [0.25, 0.75], axis=0)
        self.center_ = (q1 + q3) / 2
        self.scale_ = channel_scale(q3 - q1, X)

    def _offset(self) -> float:
        # distance outside a fence = |x - mid| / IQR - (half the box + k), in IQR units
        return 0.5 + self.k
