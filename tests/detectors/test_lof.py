"""Local Outlier Factor in novelty mode: scikit-learn's scores from arrays alone; training rows
scored leaving themselves out."""

import numpy as np
import pytest
from sklearn.neighbors import LocalOutlierFactor as SklearnLOF

from vigil.detectors.lof import LocalOutlierFactor
from vigil.errors import ModelFileError
from vigil.model import Model, load
from vigil.testing import check_detector


@pytest.fixture
def rows():
    return np.random.default_rng(0).normal(size=(1200, 2))


def test_scores_equal_sklearns_novelty_scores(rows):
    det = LocalOutlierFactor(n_neighbors=15).fit(rows)
    scaled = (rows - det.center_) / det.scale_
    reference = SklearnLOF(n_neighbors=15, novelty=True).fit(scaled)
    new = np.random.default_rng(1).normal(size=(400, 2)) * 1.5
    np.testing.assert_allclose(det.score(new),
                               -reference.score_samples((new - det.center_) / det.scale_),
                               rtol=1e-12)


def test_training_scores_leave_each_row_out_as_sklearns_negative_outlier_factor(rows):
    det = LocalOutlierFactor().fit(rows)
    scaled = (rows - det.center_) / det.scale_
    expected = -SklearnLOF(n_neighbors=20).fit(scaled).negative_outlier_factor_
    np.testing.assert_allclose(det.training_scores(rows), expected, rtol=1e-12)


def test_the_reference_is_a_sample_of_at_most_max_train_rows(rows):
    det = LocalOutlierFactor(max_train=500).fit(rows)
    assert det.reference_.shape == (500, 2)
    scores = det.training_scores(rows)
    assert scores.shape == (1200,) and np.isfinite(scores).all()


def test_duplicated_rows_give_finite_scores():
    X = np.repeat(np.arange(50.0)[:, None], 4, axis=0)  # every row four times
    det = LocalOutlierFactor(n_neighbors=3).fit(X)
    assert np.isfinite(det.score(np.array([[10.0], [1e3]]))).all()


def test_a_saved_model_scores_the_same_and_a_damaged_one_is_refused(rows, tmp_path):
    model = Model("lof", window=3).fit(rows)
    model.save(tmp_path / "lof.vigil")
    assert np.array_equal(load(tmp_path / "lof.vigil").score(rows), model.score(rows))
    state = model.detector.get_state()
    state["reference_"] = state["reference_"][:, :4]  # rows of 4 values; window 3 x 2 is 6
    with pytest.raises(ModelFileError, match="needs 6"):
        LocalOutlierFactor(window=3).set_state(state)


def test_windowed_lof_keeps_the_contract():
    check_detector(LocalOutlierFactor(window=4, max_train=1000))
