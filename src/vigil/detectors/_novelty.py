"""What the novelty detectors of scikit-learn's kind share (``one_class_svm``, ``lof``): fitted
on training rows, they score new rows by how far these lie from the training ones.

Each row (with ``window``, the row and the ``window - 1`` rows before it, causal as in
``isolation_forest``) becomes a feature vector in training z units: every channel less its
training mean, over its training standard deviation. Both methods cost time (and, while
fitting, memory) quadratic in the training rows, so at most ``max_train`` of them are used: a
seeded random sample, the same for the same data. A sample whose working arrays would not fit
in the memory this machine has free is refused before any work starts.

Distances are computed with ``np.einsum`` (never a BLAS product, whose summation order can
change with the number of rows it is given), so chunked scores equal whole-series scores.
"""

from __future__ import annotations

import os
from typing import ClassVar

import numpy as np

from vigil.detectors.base import Detector, Param
from vigil.detectors.state import PER_CHANNEL, PER_CHANNEL_SCALE, StateSpec
from vigil.detectors.statistical import channel_scale
from vigil.errors import ConfigError, DataError, ModelFileError
from vigil.preprocess import trailing_windows

#: Reference rows held at once while scoring a chunk: a chunk's distance block is
#: rows x reference values, bounded through ``_row_bytes``.
_PAIR_BYTES = 8


class _NoveltyDetector(Detector):
    """Rows (or trailing windows) scaled to training z units; a quadratic model of a seeded
    sample of at most ``max_train`` of them."""

    #: The common parameters; each subclass adds its own.
    _common_params: ClassVar[dict[str, Param]] = {
        "window": Param(None, int, low=1, allow_none=True),
        "max_train": Param(5000, int, low=2),
        "random_state": Param(0, int),
    }
    _scaling_state: ClassVar[dict[str, StateSpec]] = {
        "center_": PER_CHANNEL,
        "scale_": PER_CHANNEL_SCALE,
    }

    # -- fitting --------------------------------------------------------------------------
    def _training_features(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The sampled training feature rows (float64, C-ordered) and their row numbers."""
        window = self.window or 1
        if window > len(X):
            raise DataError(f"window {window} is longer than the series ({len(X)} rows): lower "
                            "window or give more data.")
        self.center_ = X.mean(axis=0)
        self.scale_ = channel_scale(X.std(axis=0), X)
        rows = np.arange(len(X))
        if len(X) > self.max_train:
            rng = np.random.default_rng(self.random_state)
            rows = np.sort(rng.choice(len(X), self.max_train, replace=False))
        _check_memory(self.name, len(rows), window * X.shape[1])
        return np.ascontiguousarray(self._features(X)[rows]), rows

    def _features(self, X: np.ndarray) -> np.ndarray:
        """Feature rows of ``X``: a read-only strided view of its trailing windows in training z
        units (``float64[n, window * d]``)."""
        return trailing_windows((X - self.center_) / self.scale_, self.window or 1)

    # -- scoring helpers ------------------------------------------------------------------
    @staticmethod
    def _squared_distances(rows: np.ndarray, reference: np.ndarray,
                           reference_squares: np.ndarray) -> np.ndarray:
        """``|r - x|^2`` for every row ``r`` and reference ``x`` (``float64[n, m]``), >= 0."""
        out = np.einsum("ij,kj->ik", rows, reference)
        out *= -2.0
        out += np.einsum("ij,ij->i", rows, rows)[:, None]
        out += reference_squares[None, :]
        return np.maximum(out, 0.0, out=out)

    def _reference_rows(self) -> int:
        raise NotImplementedError

    def _row_bytes(self) -> int:
        return _PAIR_BYTES * 3 * self._reference_rows() + 8 * (self.window or 1) * (
            self.n_channels_ + 1)

    def _context_rows(self) -> int:
        return (self.window or 1) - 1

    def check_training_rows(self, rows: int) -> None:
        """``window`` is at most the training rows, as ``fit`` requires (the state does not
        bound it)."""
        if (self.window or 1) > rows:
            raise ModelFileError(f"{self.name} window {self.window} is longer than the {rows} "
                                 "training rows it was fitted on; the file is damaged")

    def _feature_count(self) -> int:
        return (self.window or 1) * self.n_channels_

    def _check_reference(self, reference: np.ndarray) -> None:
        if reference.ndim != 2 or reference.shape[1] != self._feature_count():
            raise ModelFileError(
                f"{self.name} state holds rows of {reference.shape[-1]} values; window "
                f"{self.window or 1} x {self.n_channels_} channel(s) needs "
                f"{self._feature_count()}: the file is damaged")


def _check_memory(name: str, rows: int, features: int) -> None:
    """Refuse a training sample whose working arrays (the sample, its scaled copies, one block
    of pairwise distances) would not fit in the memory free now (where the system says;
    elsewhere nothing is refused)."""
    need = 8 * rows * (3 * features + min(rows, 4096))
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not a POSIX system that tells
        return
    if need > free:
        raise ConfigError(
            f"{name} on {rows} training rows of {features} values needs about "
            f"{need / 2**30:.1f} GiB; {free / 2**30:.1f} GiB is free. Lower max_train (or "
            "window): its cost grows with the square of the training rows.")
