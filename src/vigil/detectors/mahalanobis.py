"""Mahalanobis distance: how far a row lies from the training rows' centre, measured against
their joint covariance.

Per-channel statistics see each sensor alone, so a row whose every value is in range but whose
combination is not (flow that stops following pump power; vibration at running level while the
pump is idle) looks normal to them. The covariance of the channels learns how they move together,
and the distance grows along directions the training data never moved in.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy import linalg, stats

from vigil.detectors.base import Detector, Param
from vigil.detectors.statistical import _floor_scale

#: Ridge added to the covariance of the standardised channels (unit variances): keeps the
#: precision finite when channels are collinear or constant, far below any real variance.
RIDGE = 1e-6


class Mahalanobis(Detector):
    """Mahalanobis distance to the training mean under the training covariance.

    ``score_channels`` gives each channel's standardised residual given all the other channels
    (``|(P z)_i| / sqrt(P_ii)``, P the precision matrix): how unexpected that channel's value is,
    the others being known; the channel that drove a row is the largest.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> pump = rng.normal(5, 1, 500)
        >>> X = np.column_stack([pump, 11.5 * pump + rng.normal(0, 0.5, 500)])
        >>> det = Mahalanobis().fit(X)
        >>> in_range_but_broken = np.array([[4.0, 11.5 * 6.0]])  # both values are common
        >>> bool(det.score(in_range_but_broken)[0] > det.natural_threshold)
        True
    """

    name = "mahalanobis"
    attributes: ClassVar[bool] = True
    params = {"support": Param(0.999, float, low=0.5, high=1.0, low_open=True)}

    @property
    def natural_threshold(self) -> float:  # type: ignore[override]
        """sqrt of the chi-square quantile at ``support``: the distance that normal, Gaussian
        rows of d channels exceed with probability 1 - support (d known once fitted)."""
        d = getattr(self, "n_channels_", 1)
        return float(np.sqrt(stats.chi2.ppf(self.support, d)))

    def _fit(self, X: np.ndarray) -> None:
        self.center_ = X.mean(axis=0)
        self.scale_ = _floor_scale(X.std(axis=0), self.center_)
        Z = (X - self.center_) / self.scale_
        covariance = np.atleast_2d(np.cov(Z, rowvar=False, bias=True))
        covariance[np.diag_indices_from(covariance)] += RIDGE
        # whitening_ W with W W^T = covariance^-1, so the squared distance is |z W|^2
        self.whitening_ = linalg.cholesky(linalg.inv(covariance), lower=True)

    def _standardised(self, X: np.ndarray) -> np.ndarray:
        Z = np.subtract(X, self.center_)
        Z /= self.scale_
        return Z

    def _score(self, X: np.ndarray) -> np.ndarray:
        W = self._standardised(X) @ self.whitening_
        return np.sqrt(np.einsum("ij,ij->i", W, W))

    def _score_channels(self, X: np.ndarray) -> np.ndarray:
        precision = self.whitening_ @ self.whitening_.T
        # (P z)_i / sqrt(P_ii) is channel i's standardised residual given all other channels
        # (regression of i on the rest): how unexpected that channel is, the others being known.
        residual = self._standardised(X) @ precision
        residual /= np.sqrt(np.diag(precision))
        return np.abs(residual, out=residual)

    def _row_bytes(self) -> int:
        return 8 * 3 * self.n_channels_
