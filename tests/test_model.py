"""Model: fit once, score anywhere; one output row per input row."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import vigil
from vigil.errors import ConfigError, DataError, FitWarning, NotFittedError

EXAMPLE = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "examples" / "sensor_data.csv"


@pytest.fixture
def sensors():
    rng = np.random.default_rng(1)
    n = 3000
    t = np.arange(n)
    frame = pd.DataFrame({
        "timestamp": pd.date_range("2024-01-01", periods=n, freq="min"),
        "temperature": 20 + 3 * np.sin(2 * np.pi * t / 1440) + rng.normal(0, 0.2, n),
        "pressure": 1013 + rng.normal(0, 0.5, n),
    })
    frame.loc[2500, "pressure"] = 1030.0
    return frame


def test_detect_flags_the_spike_and_names_its_channel(sensors):
    result = vigil.Model("robust_zscore").fit(sensors).detect(sensors)
    assert len(result) == len(sensors)
    assert result.loc[2500, "is_anomaly"]
    assert result.loc[2500, "driver"] == "pressure"
    assert result["is_anomaly"].mean() < 0.01
    assert {"score", "threshold", "score_temperature", "score_pressure"} <= set(result.columns)


def test_threshold_is_fitted_from_the_training_scores(sensors):
    model = vigil.Model("robust_zscore").fit(sensors)
    train_scores = model.score(sensors)
    assert model.threshold.name == "pot"
    assert np.quantile(train_scores, 0.98) < model.threshold_ < train_scores.max()


def test_the_four_row_example_flags_the_spike_with_a_warning():
    with pytest.warns(FitWarning, match="too few"):
        model = vigil.Model().fit(EXAMPLE)
    result = model.detect(EXAMPLE)
    flagged = result.loc[result["is_anomaly"], "timestamp"].astype(str).tolist()
    assert flagged == ["2024-03-19 12:02:00"]


def test_scoring_in_blocks_equals_scoring_at_once(sensors, monkeypatch):
    model = vigil.Model("isolation_forest", window=10, n_estimators=25).fit(sensors)
    whole = model.score(sensors)
    monkeypatch.setattr("vigil.model.BLOCK_ROWS", 700)
    np.testing.assert_array_equal(model.score(sensors), whole)


def test_rows_out_of_time_order_are_scored_in_order_and_returned_as_given(sensors):
    model = vigil.Model("isolation_forest", window=5, n_estimators=25).fit(sensors)
    expected = model.score(sensors)
    shuffled = sensors.sample(frac=1.0, random_state=0)
    with pytest.warns(UserWarning, match="not in time order"):
        got = model.score(shuffled.reset_index(drop=True))
    np.testing.assert_allclose(got, expected[shuffled.index.to_numpy()])


def test_each_series_is_scored_on_its_own(sensors):
    two = pd.concat([sensors.assign(machine="a"), sensors.assign(machine="b")], ignore_index=True)
    model = vigil.Model("isolation_forest", window=5, n_estimators=25, series_column="machine").fit(two)
    scores = model.score(two)
    np.testing.assert_array_equal(scores[: len(sensors)], scores[len(sensors):])


def test_a_channel_missing_at_scoring_time_is_named(sensors):
    model = vigil.Model("robust_zscore").fit(sensors)
    with pytest.raises(DataError, match="channel 'pressure', which the model was trained on, is missing"):
        model.detect(sensors.drop(columns="pressure"))


def test_numpy_arrays_work_too():
    X = np.random.default_rng(0).normal(size=(1000, 3))
    X[700, 2] = 12
    result = vigil.Model("zscore").fit(X).detect(X)
    assert result.loc[700, "is_anomaly"] and result.loc[700, "driver"] == "x2"


def test_unfitted_model_says_so():
    with pytest.raises(NotFittedError, match="call fit first"):
        vigil.Model().score(np.zeros((5, 1)))


def test_save_and_load_keep_scores_and_threshold(sensors, tmp_path):
    model = vigil.Model("iqr", threshold="quantile:0.999").fit(sensors)
    model.save(tmp_path / "m.vigil")
    again = vigil.load(tmp_path / "m.vigil")
    pd.testing.assert_frame_equal(again.detect(sensors), model.detect(sensors))


def test_plot_writes_a_png(sensors, tmp_path):
    result = vigil.Model("robust_zscore").fit(sensors).detect(sensors)
    path = vigil.plot(result, tmp_path / "plot.png")
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_one_channel_name_is_a_channel_not_its_letters():
    frame = pd.DataFrame({"temperature": np.arange(100.0) % 7, "pressure": np.ones(100)})
    assert vigil.Model("zscore", channels="temperature").fit(frame).channels_ == ["temperature"]


def test_a_3d_array_is_refused_in_one_line():
    with pytest.raises(DataError, match="expected a 1-D or 2-D array"):
        vigil.Model("zscore").fit(np.zeros((10, 2, 2)))


def test_numpy_parameters_save_and_a_failed_save_leaves_no_file(tmp_path):
    frame = pd.DataFrame({"x": np.sin(np.arange(500) / 7)})
    model = vigil.Model("subsequence_pca", window=np.int64(20)).fit(frame)
    model.save(tmp_path / "m.vigil")
    assert vigil.load(tmp_path / "m.vigil").params == {"window": 20}
    model.params["window"] = object()  # not JSON: the save fails before writing anything
    with pytest.raises(ConfigError, match="cannot save the model"):
        model.save(tmp_path / "n.vigil")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.vigil"]


def test_an_adaptive_threshold_follows_a_drift_row_by_row_and_saves():
    rng = np.random.default_rng(3)
    n = 20_000
    frame = pd.DataFrame({"x": rng.normal(size=n) + np.linspace(0, 6, n)})  # normal level drifts
    frame.loc[15_000, "x"] += 12.0
    fixed = vigil.Model("zscore", alarms="off").fit(frame.iloc[:3000]).detect(frame)
    model = vigil.Model("zscore", threshold="dspot", alarms="off").fit(frame.iloc[:3000])
    result = model.detect(frame)
    assert result["threshold"].iloc[-1] > result["threshold"].iloc[3000] + 3  # it followed
    assert result["is_anomaly"].iloc[10_000:].mean() < 0.01 < fixed["is_anomaly"].iloc[10_000:].mean()
    assert result.loc[15_000, "is_anomaly"]


def test_an_adaptive_threshold_survives_save_and_load(tmp_path):
    frame = pd.DataFrame({"x": np.random.default_rng(4).normal(size=5000).cumsum() / 50})
    model = vigil.Model("zscore", threshold="dspot").fit(frame.iloc[:2000])
    model.save(tmp_path / "m.vigil")
    pd.testing.assert_frame_equal(vigil.load(tmp_path / "m.vigil").detect(frame),
                                  model.detect(frame))
