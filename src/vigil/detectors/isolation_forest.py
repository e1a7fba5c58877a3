"""Isolation Forest (Liu, Ting & Zhou, ICDM 2008): anomalies are few and different, so random
axis-parallel splits isolate them in fewer steps than normal points.

scikit-learn grows the trees; vigil then keeps them only as plain numeric arrays (a complete
binary heap per tree, see ``_forest_scoring``), so a model file holds no pickled object and
scores without scikit-learn's per-tree Python loop. Scores equal ``-score_samples`` of the same
scikit-learn forest. With ``window``, each row is scored together with the ``window - 1`` rows
before it (causal: a row's score never depends on later rows).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from vigil.detectors._forest_scoring import (
    average_path_length,
    checked_heaps,
    heap_from_sklearn,
    path_length_sums,
)
from vigil.detectors.base import Detector, Param
from vigil.detectors.state import StateSpec
from vigil.errors import DataError, ModelFileError
from vigil.preprocess import trailing_windows

#: scikit-learn's (and Liu et al.'s) default subsample size: 256 points per tree.
AUTO_MAX_SAMPLES = 256


class IsolationForest(Detector):
    """Isolation Forest score ``2 ** (-mean path length / c(max_samples))`` in (0, 1].

    Scores near 1 are anomalies, scores well below 0.5 normal (Liu et al. 2008, section 2).

    Examples:
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(300, 2)); X[50] = 6.0
        >>> scores = IsolationForest(n_estimators=50).fit(X).score(X)
        >>> int(scores.argmax()), bool(scores[50] > 0.5 > np.median(scores))
        (50, True)
    """

    name = "isolation_forest"
    params: ClassVar[dict[str, Param]] = {
        "n_estimators": Param(100, int, low=1),
        "max_samples": Param("auto", int, low=2, allow_auto=True),
        "max_features": Param(1.0, float, low=0.0, high=1.0, low_open=True),
        "window": Param(None, int, low=1, allow_none=True),
        "random_state": Param(0, int),
    }
    min_rows = 2
    natural_threshold = 0.5  # Liu et al.; scikit-learn's contamination="auto" offset
    fitted_state = {  # heaps of n_estimators trees; their depth is checked in _check_state
        "feature_": StateSpec("iu", ("n_estimators", "<=heap_leaves"), low=0),
        # +inf: "always left", the chain below a leaf above the bottom level
        "threshold_": StateSpec("f", ("n_estimators", "<=heap_leaves"), allow_inf=True),
        "leaf_value_": StateSpec("f", ("n_estimators", "<=heap_leaves")),
        "max_samples_": StateSpec("iu", (), low=2),
        "average_path_length_": StateSpec("f", (), positive=True),  # divided by
    }

    def _fit(self, X: np.ndarray) -> None:
        from sklearn.ensemble import IsolationForest as SklearnForest

        window = self.window or 1
        if window > len(X):
            raise DataError(
                f"window {window} is longer than the series ({len(X)} rows): lower window "
                "or give more data."
            )
        max_samples = AUTO_MAX_SAMPLES if self.max_samples == "auto" else self.max_samples
        forest = SklearnForest(
            n_estimators=self.n_estimators,
            # clipped here, as scikit-learn would after a warning
            max_samples=min(int(max_samples), len(X)),
            max_features=float(self.max_features),  # an int 1 would mean "one feature"
            random_state=self.random_state,
        ).fit(trailing_windows(X, window, dtype=np.float32))
        self.feature_, self.threshold_, self.leaf_value_ = heap_from_sklearn(forest)
        self.max_samples_ = int(forest.max_samples_)
        self.average_path_length_ = float(average_path_length(self.max_samples_))

    @property
    def heap_leaves(self) -> int:
        """The most bottom-level slots a tree's heap can have: ``2^D`` for the depth ``D``
        that ``max_samples`` gives (fewer training rows give shallower trees)."""
        samples = AUTO_MAX_SAMPLES if self.max_samples == "auto" else int(self.max_samples)
        return 2 ** (max(samples, 2) - 1).bit_length()  # 2^ceil(log2(samples))

    def _score(self, X: np.ndarray) -> np.ndarray:
        # float32, as scikit-learn rounds its input; the thresholds are floored to match
        rows = trailing_windows(X, self.window or 1, dtype=np.float32)
        sums = path_length_sums(rows, self.feature_, self.threshold_, self.leaf_value_)
        # the same operations as scikit-learn's score_samples, so scores agree bit for bit
        denominator = len(self.leaf_value_) * self.average_path_length_
        return 2 ** (-np.divide(sums, denominator))

    def _context_rows(self) -> int:
        return (self.window or 1) - 1

    def _row_bytes(self) -> int:
        # float32 feature rows and the sums, plus the numpy engine's per-row index arrays
        return 4 * self.n_channels_ + 8 * 8

    def check_training_rows(self, rows: int) -> None:
        """``window`` (the state does not bound it; scoring builds rows of window x channels
        values) is at most the training rows, as ``fit`` requires."""
        if (self.window or 1) > rows:
            raise ModelFileError(f"isolation_forest window {self.window} is longer than the "
                                 f"{rows} training rows it was fitted on; the file is damaged")

    def _check_state(self) -> None:
        """The heaps fit together and the columns (:func:`checked_heaps`)."""
        checked_heaps(self)
