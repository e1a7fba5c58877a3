"""One-Class SVM (Schölkopf et al., Neural Computation 2001): the smallest region of feature
space, under an RBF kernel, that holds all but a fraction ``nu`` of the training rows; a row far
outside it is an anomaly.

scikit-learn (libsvm) solves the dual; vigil keeps only the support vectors, their
coefficients and the offset as plain arrays, and evaluates the kernel sum itself, so a model
file holds no pickled object and chunked scores equal whole ones.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from vigil.detectors._novelty import _NoveltyDetector
from vigil.detectors.base import Param
from vigil.detectors.state import StateSpec


class OneClassSVM(_NoveltyDetector):
    """One-Class SVM, RBF kernel, in novelty mode: fitted on training rows, scoring new ones.

    Score ``(rho - sum_i a_i K(x_i, x)) / sum_i a_i``: the kernel-space distance outside the
    learnt boundary, in units of the dual coefficients' total. It is 0 on the boundary
    (``natural_threshold``), negative inside and positive outside; higher = more anomalous.
    Rows are in training z units (see ``vigil.detectors._novelty``); fitting is quadratic in
    the training rows, so at most ``max_train`` of them (a seeded sample) are used.

    Parameters:
        nu: upper bound on the share of training rows left outside the boundary (and lower
            bound on the share of support vectors); small for training data that is mostly
            normal.
        gamma: RBF width ``K = exp(-gamma |x - y|^2)``, or "auto": ``1 / (features * var)``
            (scikit-learn's "scale"), 1 / features for z-scaled rows.
        window: score each row together with the ``window - 1`` rows before it (None: the row
            alone).
        max_train: training rows used at most (a seeded random sample).
        random_state: seed of the sample.

    Examples:
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(500, 2)); X[50] = 6.0
        >>> scores = OneClassSVM().fit(X[100:]).score(X)
        >>> int(scores.argmax()), bool(scores[50] > 0 > np.median(scores))
        (50, True)
    """

    name = "one_class_svm"
    params: ClassVar[dict[str, Param]] = {
        "nu": Param(0.05, float, low=0.0, high=1.0, low_open=True),
        "gamma": Param("auto", float, low=0.0, low_open=True, allow_auto=True),
        **_NoveltyDetector._common_params,
    }
    min_rows = 2
    natural_threshold = 0.0  # the boundary itself
    fitted_state = {
        **_NoveltyDetector._scaling_state,
        "support_vectors_": StateSpec("f", ("<=max_train", "*")),
        "dual_coef_": StateSpec("f", ("support_vectors_[0]",), low=0.0),
        "rho_": StateSpec("f", ()),
        "gamma_": StateSpec("f", (), positive=True),
    }

    def _fit(self, X: np.ndarray) -> None:
        from sklearn.svm import OneClassSVM as SklearnSVM

        rows, _ = self._training_features(X)
        variance = rows.var()
        gamma = (1.0 / (rows.shape[1] * variance) if variance > 0 else 1.0
                 ) if self.gamma == "auto" else float(self.gamma)
        svm = SklearnSVM(kernel="rbf", nu=float(self.nu), gamma=gamma).fit(rows)
        self.support_vectors_ = np.ascontiguousarray(svm.support_vectors_, dtype=np.float64)
        self.dual_coef_ = np.ascontiguousarray(svm.dual_coef_[0], dtype=np.float64)
        self.rho_ = float(-svm.intercept_[0])
        self.gamma_ = float(gamma)
        self._prepare()

    def _prepare(self) -> None:
        self._squares = np.einsum("ij,ij->i", self.support_vectors_, self.support_vectors_)
        self._total = float(self.dual_coef_.sum()) or 1.0

    def _score(self, X: np.ndarray) -> np.ndarray:
        rows = self._features(X)
        kernel = self._squared_distances(rows, self.support_vectors_, self._squares)
        kernel *= -self.gamma_
        np.exp(kernel, out=kernel)
        inside = np.einsum("ik,k->i", kernel, self.dual_coef_)
        return (self.rho_ - inside) / self._total

    def _reference_rows(self) -> int:
        return len(self.support_vectors_)

    def _check_state(self) -> None:
        self._check_reference(self.support_vectors_)
        self._prepare()
