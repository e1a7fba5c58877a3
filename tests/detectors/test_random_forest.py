"""The supervised random forest: scikit-learn's probabilities from heap arrays, labels checked,
a threshold from out-of-bag scores of the normal rows."""

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier

from vigil.detectors.random_forest import RandomForest
from vigil.errors import ConfigError, DataError
from vigil.model import Model, load
from vigil.testing import check_detector


@pytest.fixture
def labelled():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 3))
    y = np.zeros(3000, dtype=np.int8)
    y[::30] = 1
    X[::30, 1] += 6.0  # the labelled anomalies: channel 1 high
    return X, y


@pytest.mark.parametrize("params", [{}, {"max_depth": 4, "min_samples_leaf": 5}])
def test_scores_equal_sklearns_predict_proba(labelled, params):
    X, y = labelled
    det = RandomForest(n_estimators=30, **params).fit(X, y)
    reference = RandomForestClassifier(
        n_estimators=30, max_depth=params.get("max_depth", 10),
        min_samples_leaf=params.get("min_samples_leaf", 1), class_weight="balanced",
        random_state=0).fit(X.astype(np.float32), y)
    new = np.random.default_rng(1).normal(size=(500, 3)) * 2
    expected = reference.predict_proba(new.astype(np.float32))[:, 1]
    np.testing.assert_allclose(det.score(new), expected, rtol=0, atol=1e-12)


def test_it_needs_labels_of_both_classes(labelled):
    X, y = labelled
    with pytest.raises(ConfigError, match="supervised"):
        RandomForest().fit(X)
    with pytest.raises(DataError, match="normal \\(0\\) only"):
        RandomForest().fit(X, np.zeros(len(X)))
    with pytest.raises(DataError, match="0 \\(normal\\) or 1"):
        RandomForest().fit(X, np.full(len(X), 2))


def test_the_model_learns_from_the_label_column_and_scores_without_it(labelled, tmp_path):
    X, y = labelled
    frame = pd.DataFrame(X, columns=["a", "b", "c"]).assign(label=y)
    model = Model("random_forest", n_estimators=40).fit(frame.iloc[:2000])
    assert model.channels_ == ["a", "b", "c"]  # the label is never a channel
    model.save(tmp_path / "rf.vigil")
    test = frame.iloc[2000:].drop(columns="label")
    result = load(tmp_path / "rf.vigil").detect(test)
    flagged = result["score"] > result["threshold"]
    truth = y[2000:] == 1
    assert (flagged & truth).sum() >= 0.8 * truth.sum()  # recall
    assert (flagged & ~truth).sum() <= 0.02 * (~truth).sum()  # false alarms


def test_the_threshold_comes_from_out_of_bag_scores_of_normal_rows(labelled):
    X, y = labelled
    det = RandomForest(n_estimators=40).fit(X, y)
    held_out = det.training_scores(X)
    assert len(held_out) == (y == 0).sum()
    in_sample = det.score(X)[y == 0]
    assert held_out.mean() > in_sample.mean()  # out of bag is the honest, harder view


def test_a_file_without_a_label_column_is_a_clear_error():
    frame = pd.DataFrame({"a": np.arange(100.0)})
    with pytest.raises(ConfigError, match="--label-column"):
        Model("random_forest").fit(frame)


def test_windowed_forest_keeps_the_contract():
    check_detector(RandomForest(n_estimators=20, window=3))
