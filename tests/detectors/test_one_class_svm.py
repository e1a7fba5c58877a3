"""One-Class SVM: scikit-learn's boundary, kept as arrays; windows; bounded training."""

import numpy as np
import pytest
from sklearn.svm import OneClassSVM as SklearnSVM

from vigil.detectors.one_class_svm import OneClassSVM
from vigil.errors import ConfigError
from vigil.preprocess import trailing_windows
from vigil.testing import check_detector


@pytest.fixture
def rows():
    return np.random.default_rng(0).normal(size=(1500, 3))


@pytest.mark.parametrize("params", [{}, {"window": 4, "nu": 0.1, "gamma": 0.2}])
def test_scores_are_sklearns_decision_function_over_the_dual_total(rows, params):
    det = OneClassSVM(**params).fit(rows)
    windows = trailing_windows((rows - det.center_) / det.scale_, params.get("window", 1))
    reference = SklearnSVM(nu=params.get("nu", 0.05), gamma=det.gamma_).fit(windows)
    expected = -reference.decision_function(windows) / reference.dual_coef_.sum()
    np.testing.assert_allclose(det.score(rows), expected, rtol=0, atol=1e-9)


def test_a_far_row_is_outside_the_boundary_and_most_rows_inside(rows):
    det = OneClassSVM().fit(rows)
    test = rows.copy()
    test[700] = 6.0
    scores = det.score(test)
    assert scores[700] > det.natural_threshold
    assert (scores > det.natural_threshold).mean() < 0.1  # nu = 0.05 outside, roughly


def test_training_rows_are_sampled_reproducibly_up_to_max_train(rows):
    first, second = (OneClassSVM(max_train=300).fit(rows) for _ in range(2))
    assert len(first.support_vectors_) <= 300
    assert np.array_equal(first.score(rows), second.score(rows))


def test_a_training_sample_too_large_for_memory_is_refused_before_fitting(rows):
    huge = np.zeros((1, 3))
    det = OneClassSVM(max_train=10**9)
    det.max_train = 10**9
    with pytest.raises(ConfigError, match="Lower max_train"):
        det._training_features(np.broadcast_to(huge, (10**8, 3)))


def test_windowed_svm_keeps_the_contract():
    check_detector(OneClassSVM(window=3, max_train=800))
