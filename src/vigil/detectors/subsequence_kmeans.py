"""Subsequence k-means: the training windows of a channel gather around a few typical shapes
(the cluster centres); a window far from every centre is a shape or level never seen in
training. The public reference is KMeansAD (TimeEval, as packaged in TSB-AD).

scikit-learn finds the centres; only ``cluster_centers_`` is kept, as a plain array, so a model
file holds no estimator and scoring needs no scikit-learn.
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np

from vigil.detectors.base import Param
from vigil.detectors.state import StateSpec
from vigil.detectors.subsequence_pca import _Subsequence


class SubsequenceKMeans(_Subsequence):
    """Distance of each window to the nearest k-means centre of the training windows, per
    channel; a row takes the largest distance of the windows covering it.

    Each channel is z-normalised by its training mean and standard deviation; the score of a
    window ``z`` of ``window`` rows is its RMS distance per value to the nearest of the
    channel's ``n_clusters`` centres, in training standard deviations:
    ``sqrt(min_k |z - c_k|^2 / window)``. Row score = max over channels;
    ``score_channels`` gives each channel's. ``natural_threshold`` is None (no textbook
    cut-off on a centroid distance): the threshold falls back to the largest training score.

    Fitting runs scikit-learn's ``KMeans`` (k-means++, seeded by ``random_state``) on at most
    ``MAX_FIT_WINDOWS`` (10,000) training windows per channel; a channel with fewer distinct
    windows than ``n_clusters`` gets one centre per distinct window.

    Parameters:
        window: rows per window, or "auto": the training series' dominant period (channel 0),
            clipped to [6, rows // 4].
        n_clusters: centres per channel. 10, TSB-AD's tuned value for KMeansAD (uni- and
            multivariate, ``HP_list.py``); on the labelled collections 20 or 40 changed the
            mean AUC-PR by less than 0.01 and cost proportionally more scoring time.
        random_state: seed of the training-window sample and of k-means++.

    Examples:
        >>> import numpy as np
        >>> t = np.arange(3000)
        >>> X = np.sin(2 * np.pi * t / 50)[:, None]
        >>> X += 0.05 * np.random.default_rng(0).normal(size=X.shape)
        >>> det = SubsequenceKMeans(window=50).fit(X[:1000])
        >>> X[2000:2025, 0] = -X[2000:2025, 0]  # half a cycle upside down, values in range
        >>> 1975 <= int(det.score(X).argmax()) < 2050
        True
    """

    name = "subsequence_kmeans"
    params: ClassVar[dict[str, Param]] = {
        "window": Param("auto", int, low=2, allow_auto=True),
        "n_clusters": Param(10, int, low=1),
        "random_state": Param(0, int),
    }
    fitted_state = {**_Subsequence._window_state,
                    "cluster_centers_": StateSpec("f", ("d", "n_clusters", "window_"))}

    def _fit_windows(self, samples: list[np.ndarray]) -> None:
        from sklearn.cluster import KMeans

        centers = np.empty((len(samples), self.n_clusters, self.window_))
        for j, windows in enumerate(samples):
            distinct = np.unique(windows, axis=0)
            if len(distinct) <= self.n_clusters:
                found = distinct  # every distinct window is its own centre
            else:
                with warnings.catch_warnings():
                    # near-duplicate windows can still leave a cluster empty; harmless here
                    warnings.simplefilter("ignore")
                    # n_init=1: one k-means++ start, scikit-learn's n_init="auto" for it
                    found = KMeans(n_clusters=self.n_clusters, n_init=1,
                                   random_state=self.random_state).fit(windows).cluster_centers_
            # repeat centres to fill the array: a duplicate never changes the nearest distance
            centers[j] = found[np.arange(self.n_clusters) % len(found)]
        self.cluster_centers_ = centers

    def _window_scores(self, windows: np.ndarray, j: int) -> np.ndarray:
        centers = self.cluster_centers_[j]
        squares, dots = self._products(windows, centers)
        # |z - c|^2 = |z|^2 - 2 z.c + |c|^2, nearest centre
        dots *= -2.0
        dots += np.einsum("ij,ij->i", centers, centers)
        nearest = dots.min(axis=1)
        nearest += squares
        return np.sqrt(np.maximum(nearest, 0.0, out=nearest) / self.window_, out=nearest)

    def _products_per_window(self) -> int:
        return self.n_clusters + 2
