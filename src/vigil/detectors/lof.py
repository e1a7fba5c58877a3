"""Local Outlier Factor (Breunig et al., SIGMOD 2000) in novelty mode: a row whose
neighbourhood among the training rows is much sparser than those neighbours' own
neighbourhoods is an outlier.

vigil keeps the reference rows (a seeded sample of the training rows), their k-distances and
their local reachability densities as plain arrays, and finds neighbours by brute force in
bounded blocks; scores equal scikit-learn's ``-score_samples`` with ``novelty=True``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from vigil.detectors._novelty import _NoveltyDetector
from vigil.detectors.base import Param
from vigil.detectors.state import StateSpec
from vigil.errors import ModelFileError

#: scikit-learn's guard against a zero mean reachability distance (duplicated rows).
_EPSILON = 1e-10
#: Reference rows compared at once while finding the training rows' own neighbours.
_BLOCK = 1024


class LocalOutlierFactor(_NoveltyDetector):
    """LOF of each row against the training rows: ~1 inside a cluster, above 1 where the
    row's neighbourhood is sparser than its neighbours'; higher = more anomalous.

    ``natural_threshold`` 1.5 is scikit-learn's ``contamination="auto"`` cut-off. Training
    rows are scored leaving themselves out (a row is not its own neighbour), so the threshold
    is fitted on out-of-sample scores. Neighbour search is brute force, quadratic in the
    training rows: at most ``max_train`` (a seeded sample) are kept as the reference.

    Parameters:
        n_neighbors: k, the neighbourhood size (clipped to the reference rows less one).
        window: score each row together with the ``window - 1`` rows before it (None: the row
            alone).
        max_train: training rows kept as the reference at most (a seeded random sample).
        random_state: seed of the sample.

    Examples:
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(500, 2)); X[50] = 6.0
        >>> scores = LocalOutlierFactor().fit(X[100:]).score(X)
        >>> int(scores.argmax()), bool(scores[50] > 1.5 > np.median(scores))
        (50, True)
    """

    name = "lof"
    params: ClassVar[dict[str, Param]] = {
        "n_neighbors": Param(20, int, low=1),
        **_NoveltyDetector._common_params,
    }
    min_rows = 3
    natural_threshold = 1.5
    fitted_state = {
        **_NoveltyDetector._scaling_state,
        "reference_": StateSpec("f", ("<=max_train", "*")),
        "k_distance_": StateSpec("f", ("reference_[0]",), low=0.0),
        "lrd_": StateSpec("f", ("reference_[0]",), positive=True),
        "n_neighbors_": StateSpec("iu", (), low=1),
    }

    def _fit(self, X: np.ndarray) -> None:
        reference, rows = self._training_features(X)
        k = min(int(self.n_neighbors), len(reference) - 1)
        squares = np.einsum("ij,ij->i", reference, reference)
        index = np.empty((len(reference), k), dtype=np.intp)
        distance = np.empty((len(reference), k))
        for start in range(0, len(reference), _BLOCK):
            stop = min(start + _BLOCK, len(reference))
            block = self._squared_distances(reference[start:stop], reference, squares)
            block[np.arange(stop - start), np.arange(start, stop)] = np.inf  # not its own
            index[start:stop], distance[start:stop] = _nearest(block, k)
        self.reference_, self.n_neighbors_ = reference, k
        self.k_distance_ = distance.max(axis=1)
        self.lrd_ = _density(distance, self.k_distance_[index])
        self._prepare()
        # out-of-sample scores of the reference rows, for training_scores
        self._fit_rows = rows
        self._fit_lof = self.lrd_[index].mean(axis=1) / self.lrd_
        self._fit_length = len(X)

    def _prepare(self) -> None:
        self._squares = np.einsum("ij,ij->i", self.reference_, self.reference_)

    def _score(self, X: np.ndarray) -> np.ndarray:
        rows = self._features(X)
        squared = self._squared_distances(rows, self.reference_, self._squares)
        index, distance = _nearest(squared, self.n_neighbors_)
        return self.lrd_[index].mean(axis=1) / _density(distance, self.k_distance_[index])

    def training_scores(self, X: np.ndarray) -> np.ndarray:
        """``score(X)``, except that the rows kept as the reference are scored leaving
        themselves out (their own LOF among the other reference rows)."""
        scores = self.score(X)
        if getattr(self, "_fit_length", None) == len(X):
            scores[self._fit_rows] = self._fit_lof
        return scores

    def _reference_rows(self) -> int:
        return len(self.reference_)

    def _check_state(self) -> None:
        self._check_reference(self.reference_)
        if self.n_neighbors_ >= len(self.reference_) or self.n_neighbors_ > self.n_neighbors:
            raise ModelFileError(f"lof state: {self.n_neighbors_} neighbours among "
                                 f"{len(self.reference_)} reference rows; the file is damaged")
        self._prepare()


def _nearest(squared: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and distances of each row's ``k`` nearest references (any order)."""
    index = np.argpartition(squared, k - 1, axis=1)[:, :k]
    return index, np.sqrt(np.take_along_axis(squared, index, axis=1))


def _density(distance: np.ndarray, k_distance: np.ndarray) -> np.ndarray:
    """Local reachability density: 1 / mean of max(d(x, o), k-distance(o)) over neighbours."""
    return 1.0 / (np.maximum(distance, k_distance).mean(axis=1) + _EPSILON)
