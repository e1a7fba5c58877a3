"""A supervised random forest (Breiman 2001) for when anomalies are labelled: it learns what
the labelled anomalies look like, where the unsupervised methods learn only what is normal.

Not an Isolation Forest: it needs labels of both kinds in the training rows (``--label-column``)
and finds again what it was shown, not the unknown. Anomalies are rare, so the classes are
weighted by their inverse frequency; the score is the forest's anomaly probability. scikit-learn
grows the trees, then vigil keeps them as plain arrays and scores them with the Isolation
Forest's traversal (``_forest_scoring``): no pickled object in a model file.
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np

from vigil.detectors._forest_scoring import checked_heaps, heap_from_trees, path_length_sums
from vigil.detectors.base import Detector, Param
from vigil.detectors.state import StateSpec
from vigil.errors import DataError, ModelFileError
from vigil.preprocess import trailing_windows


class RandomForest(Detector):
    """Anomaly probability of a class-weighted random forest classifier, in [0, 1].

    The threshold is fitted on out-of-bag scores of the training rows labelled normal (each
    tree scores only the rows it did not see), so it says how high a normal row the model has
    not trained on scores, and ``natural_threshold`` is 0.5: the balanced decision. Evaluate it
    on rows it was not trained on (``vigil bench`` does: its metrics skip the training rows).

    Parameters:
        n_estimators: trees.
        max_depth: depth of every tree at most (a tree is stored as a complete heap of
            ``2^max_depth`` leaves).
        min_samples_leaf: training rows per leaf at least (smooths the probability).
        window: classify each row together with the ``window - 1`` rows before it (None: the
            row alone).
        random_state: seed of the bootstrap samples and split choices.

    Examples:
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> X = rng.normal(size=(600, 2)); y = np.zeros(600, dtype=int)
        >>> X[::20, 0] += 8.0; y[::20] = 1  # labelled anomalies
        >>> det = RandomForest(n_estimators=50).fit(X[:400], y[:400])
        >>> scores = det.score(X[400:])
        >>> bool(scores[y[400:] == 1].min() > 0.5 > scores[y[400:] == 0].max())
        True
    """

    name = "random_forest"
    supervised = True
    params: ClassVar[dict[str, Param]] = {
        "n_estimators": Param(100, int, low=1, high=10_000),
        "max_depth": Param(10, int, low=1, high=16),
        "min_samples_leaf": Param(1, int, low=1),
        "window": Param(None, int, low=1, allow_none=True),
        "random_state": Param(0, int),
    }
    min_rows = 2
    natural_threshold = 0.5
    fitted_state = {
        "feature_": StateSpec("iu", ("n_estimators", "<=heap_leaves"), low=0),
        "threshold_": StateSpec("f", ("n_estimators", "<=heap_leaves"), allow_inf=True),
        "leaf_value_": StateSpec("f", ("n_estimators", "<=heap_leaves"), low=0.0, high=1.0),
    }

    @property
    def heap_leaves(self) -> int:
        """Bottom-level slots of a tree's heap at most: ``2^max_depth``."""
        return 2 ** int(self.max_depth)

    def _fit_labelled(self, X: np.ndarray, y: np.ndarray) -> None:
        from sklearn.ensemble import RandomForestClassifier

        window = self.window or 1
        if window > len(X):
            raise DataError(f"window {window} is longer than the series ({len(X)} rows): lower "
                            "window or give more data.")
        rows = trailing_windows(X, window, dtype=np.float32)
        forest = RandomForestClassifier(
            n_estimators=self.n_estimators, max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf, class_weight="balanced",
            oob_score=len(X) >= 10, random_state=self.random_state, n_jobs=1,
        )
        with warnings.catch_warnings():
            # a row that no tree left out has no out-of-bag score: handled below
            warnings.filterwarnings("ignore", "Some inputs do not have OOB scores")
            forest.fit(rows, y)
        depth = max(1, max(est.tree_.max_depth for est in forest.estimators_))
        columns = [np.arange(rows.shape[1])] * len(forest.estimators_)

        def anomaly_probability(tree) -> np.ndarray:
            counts = tree.value[:, 0, :]
            return counts[:, 1] / np.maximum(counts.sum(axis=1), np.finfo(float).tiny)

        self.feature_, self.threshold_, self.leaf_value_ = heap_from_trees(
            [est.tree_ for est in forest.estimators_], columns, depth, anomaly_probability)
        # out-of-bag probabilities of the normal rows; a row no tree left out has none
        oob = getattr(forest, "oob_decision_function_", None)
        normal = y == 0
        if oob is not None:
            held_out = normal & np.isfinite(oob[:, 1])
            self._training = (len(X), oob[held_out, 1])
        else:
            self._training = None

    def _score(self, X: np.ndarray) -> np.ndarray:
        rows = trailing_windows(X, self.window or 1, dtype=np.float32)
        sums = path_length_sums(rows, self.feature_, self.threshold_, self.leaf_value_)
        return sums / len(self.leaf_value_)

    def training_scores(self, X: np.ndarray) -> np.ndarray:
        """Out-of-bag anomaly probabilities of the training rows labelled normal (in-sample
        scores of all rows where too few rows gave no out-of-bag estimate)."""
        training = getattr(self, "_training", None)
        if training is not None and training[0] == len(X) and len(training[1]):
            return training[1]
        return self.score(X)

    def _context_rows(self) -> int:
        return (self.window or 1) - 1

    def _row_bytes(self) -> int:
        return 4 * (self.window or 1) * self.n_channels_ + 8 * 8

    def check_training_rows(self, rows: int) -> None:
        """``window`` is at most the training rows, as ``fit`` requires."""
        if (self.window or 1) > rows:
            raise ModelFileError(f"random_forest window {self.window} is longer than the "
                                 f"{rows} training rows it was fitted on; the file is damaged")

    def _check_state(self) -> None:
        """The heaps fit together and the columns (:func:`checked_heaps`)."""
        checked_heaps(self)
