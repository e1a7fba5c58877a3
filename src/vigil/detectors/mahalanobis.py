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
from vigil.detectors.state import PER_CHANNEL, PER_CHANNEL_SCALE, StateSpec
from vigil.detectors.statistical import channel_scale
from vigil.errors import ModelFileError

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
    fitted_state = {"center_": PER_CHANNEL, "scale_": PER_CHANNEL_SCALE,
                    "whitening_": StateSpec("f", ("d", "d"))}

    @property
    def natural_threshold(self) -> float:  # type: ignore[override]
        """sqrt of the chi-square quantile at ``support``: the distance that normal, Gaussian
        rows of d channels exceed with probability 1 - support (d known once fitted)."""
        d = getattr(self, "n_channels_", 1)
        return float(np.sqrt(stats.chi2.ppf(self.support, d)))

    def _fit(self, X: np.ndarray) -> None:
        self.center_ = X.mean(axis=0)
        self.scale_ = channel_scale(X.std(axis=0), X)
        Z = (X - self.center_) / self.scale_
        covariance = np.atleast_2d(np.cov(Z, rowvar=False, bias=True))
        covariance[np.diag_indices_from(covariance)] += RIDGE
        # whitening_ W with W W^T = covariance^-1, so the squared distance is |z W|^2
        # C order, as a loaded model holds it: a product's last bits depend on the layout
        self.whitening_ = np.ascontiguousarray(linalg.cholesky(linalg.inv(covariance),
                                                               lower=True))
        self._derive()

    def _check_state(self) -> None:
        """The precision's diagonal, whose square root ``score_channels`` divides by, must be
        finite and > 0 (so no row of ``whitening_`` is all zeros)."""
        with np.errstate(over="ignore"):
            diagonal = np.square(self.whitening_).sum(axis=1)
        if not (np.isfinite(diagonal).all() and (diagonal > 0).all()):
            raise ModelFileError("mahalanobis state 'whitening_' gives a precision whose "
                                 "diagonal is not finite and > 0; the file is damaged")
        self._derive()

    def _derive(self) -> None:
        # Standardising folded into each projection: z M = x (M / s) - (c / s) M, one pass.
        precision = self.whitening_ @ self.whitening_.T
        # (P z)_i / sqrt(P_ii) is channel i's standardised residual given all other channels
        # (regression of i on the rest): how unexpected that channel is, the others being known.
        residual = precision / np.sqrt(np.diag(precision))
        self._projections = {}
        for name, matrix in (("distance", self.whitening_), ("residual", residual)):
            self._projections[name] = (matrix / self.scale_[:, None],
                                       (self.center_ / self.scale_) @ matrix)

    def _project(self, X: np.ndarray, name: str, k: int, out: np.ndarray,
                 term: np.ndarray) -> np.ndarray:
        """Column k of ``z M`` into ``out``, by d multiply-adds over the columns of X: BLAS on
        a d x d matrix spends more on waking its threads than on the arithmetic."""
        matrix, offset = self._projections[name]
        np.multiply(X[:, 0], matrix[0, k], out=out)
        for j in range(1, X.shape[1]):
            np.multiply(X[:, j], matrix[j, k], out=term)
            out += term
        out -= offset[k]
        return out

    def _score(self, X: np.ndarray) -> np.ndarray:
        squared = np.zeros(len(X))
        column, term = np.empty(len(X)), np.empty(len(X))
        for k in range(X.shape[1]):
            self._project(X, "distance", k, column, term)
            np.multiply(column, column, out=term)
            squared += term
        return np.sqrt(squared, out=squared)

    def _score_channels(self, X: np.ndarray) -> np.ndarray:
        out, term = np.empty(X.shape), np.empty(len(X))
        for k in range(X.shape[1]):
            np.abs(self._project(X, "residual", k, out[:, k], term), out=out[:, k])
        return out

    #: Small chunks keep each chunk's temporaries in the CPU cache.
    chunk_bytes: ClassVar[int] = 2 * 2**20

    def _row_bytes(self) -> int:
        return 8 * 3
