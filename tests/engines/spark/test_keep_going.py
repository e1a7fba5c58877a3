"""A series that cannot be scored stops a Spark job with its name and reason; with
``keep_going`` the job finishes without it and says which series were left out, and why."""

import numpy as np
import pandas as pd
import pytest

import vigil
from vigil.engines.spark import executor_errors, fit, score
from vigil.errors import DataError
from vigil.io import from_frame

pytestmark = pytest.mark.filterwarnings("ignore::vigil.errors.DataWarning")


def fleet(rows=300, seed=0):
    """Four pumps: pump-2 has no pressure reading at all, pump-4 one row without a time."""
    rng = np.random.default_rng(seed)
    frames = []
    for k, name in enumerate(["pump-1", "pump-2", "pump-3", "pump-4"]):
        t = np.arange(rows)
        frames.append(pd.DataFrame({
            "timestamp": pd.date_range("2024-03-19", periods=rows, freq="min"), "pump": name,
            "temperature": 60 + 3 * np.sin(t / 15 + k) + rng.normal(0, 0.3, rows),
            "pressure": 950 + 10 * np.cos(t / 20) + rng.normal(0, 1.0, rows)}))
        frames[-1].loc[rows // 2: rows // 2 + 3, "temperature"] += 12
    data = (pd.concat(frames).sort_values(["timestamp", "pump"], kind="stable")
            .reset_index(drop=True))
    data.loc[data["pump"] == "pump-2", "pressure"] = np.nan
    data["timestamp"] = data["timestamp"].astype(object)
    data.loc[data.index[data["pump"] == "pump-4"][100], "timestamp"] = None
    return data


def good_model(data):
    good = data[data["pump"].isin(["pump-1", "pump-3"])]
    return vigil.Model("zscore").fit(from_frame(good.groupby("pump").head(200),
                                                series_column="pump", time_column="timestamp"))


def test_the_job_stops_at_the_first_series_that_cannot_be_scored(spark):
    data = fleet()
    with pytest.raises(DataError, match="^series 'pump-2': channel 'pressure' has no values"):
        with executor_errors():
            score(spark.createDataFrame(data), good_model(data)).collect()


def test_keep_going_scores_the_other_series_as_locally_and_names_those_left_out(spark):
    data = fleet()
    model = good_model(data)
    result, failures = score(spark.createDataFrame(data), model, keep_going=True)
    failed = failures.toPandas().sort_values("series").reset_index(drop=True)
    assert failed["series"].tolist() == ["pump-2", "pump-4"]
    assert failed["rows"].tolist() == [300, 300]
    assert failed["reason"][0] == ("channel 'pressure' has no values at all (every cell is "
                                   "missing or infinite)")
    assert failed["reason"][1].startswith("a row has no time (a null in 'timestamp')")

    got = result.toPandas().sort_values(["pump", "timestamp"]).reset_index(drop=True)
    good = data[data["pump"].isin(["pump-1", "pump-3"])]
    expected = model.detect(good.assign(timestamp=pd.to_datetime(good["timestamp"])))
    expected = expected.sort_values(["pump", "timestamp"]).reset_index(drop=True)
    assert len(got) == 600 and set(got["pump"]) == {"pump-1", "pump-3"}
    np.testing.assert_allclose(got["score"], expected["score"], rtol=1e-9)
    assert np.array_equal(got["event"], expected["event"]) and got["event"].max() == 2


def test_keep_going_on_text_times_reports_the_series_whose_time_cannot_be_read(spark):
    data = fleet().query("pump != 'pump-2' and pump != 'pump-4'").reset_index(drop=True)
    model = good_model(data)
    text = data.assign(timestamp=data["timestamp"].astype(str))
    text.loc[text.index[text["pump"] == "pump-3"][7], "timestamp"] = "yesterday"
    result, failures = score(spark.createDataFrame(text), model, keep_going=True)
    failed = failures.toPandas()
    assert failed["series"].tolist() == ["pump-3"] and failed["rows"].tolist() == [300]
    assert "yesterday" in failed["reason"][0]
    assert sorted(result.toPandas()["pump"].unique()) == ["pump-1"]


def test_a_series_that_cannot_be_fitted_is_left_out_of_the_bundle_and_said_at_scoring(spark):
    data = fleet(seed=1).query("pump != 'pump-4'").reset_index(drop=True)
    data.loc[data.index[data["pump"] == "pump-2"][250:], "pressure"] = 950.0  # late readings
    df = spark.createDataFrame(data.assign(timestamp=pd.to_datetime(data["timestamp"])))
    roles = {"series_column": "pump", "channels": ["temperature", "pressure"]}
    with pytest.raises(DataError, match="^series 'pump-2': channel 'pressure' has no values"):
        with executor_errors():
            fit(df, "zscore", train_rows=200, per_series=True, **roles)
    bundle = fit(df, "zscore", train_rows=200, per_series=True, keep_going=True, **roles)
    assert list(bundle.models_) == ["pump-1", "pump-3"] and list(bundle.failed_) == ["pump-2"]
    result, failures = score(df, bundle, keep_going=True)
    failed = failures.toPandas()
    assert failed["series"].tolist() == ["pump-2"]
    assert failed["reason"][0].startswith("not fitted: ")
    assert result.count() == 600
