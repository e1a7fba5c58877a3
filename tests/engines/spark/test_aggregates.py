"""zscore, robust_zscore and iqr fit on Spark as aggregates over every training row: the same
model as the local fit, exactly with ``exact=True`` and within the documented rank error of
Spark's quantile sketch without it, gaps filled as locally."""

import numpy as np
import pandas as pd
import pytest

import vigil
from vigil.engines.spark import fit
from vigil.engines.spark.aggregates import ACCURACY
from vigil.errors import ConfigError, DataError
from vigil.io import from_frame

pytestmark = pytest.mark.filterwarnings("ignore::vigil.errors.DataWarning")


def turbines(rows=3000, seed=2):
    """Two turbines' heavy-tailed readings with spikes, gaps (one leading) and an infinite
    value, interleaved and shuffled over partitions."""
    rng = np.random.default_rng(seed)
    frames = []
    for name in ["t-1", "t-2"]:
        frame = pd.DataFrame({"timestamp": pd.date_range("2024-05-01", periods=rows, freq="min"),
                              "turbine": name, "power": rng.standard_t(3, rows).round(2),
                              "vibration": rng.normal(2.0, 0.1, rows)})
        frame.loc[[0, 1, 900, 901], "power"] = np.nan
        frame.loc[[500, 2500], "vibration"] += 3
        frame.loc[1500, "vibration"] = np.inf
        frames.append(frame)
    return pd.concat(frames).sample(frac=1, random_state=0).reset_index(drop=True)


def local_fit(method, data, train_rows=None):
    part = data if train_rows is None else (data.sort_values("timestamp", kind="stable")
                                            .groupby("turbine").head(train_rows))
    return vigil.Model(method).fit(from_frame(part, series_column="turbine",
                                              time_column="timestamp"))


@pytest.mark.parametrize("method", ["zscore", "robust_zscore", "iqr"])
@pytest.mark.parametrize("train_rows", [None, 2000])
def test_an_exact_aggregate_fit_is_the_local_fit(spark, method, train_rows):
    data = turbines()
    model = fit(spark.createDataFrame(data).repartition(3), method, series_column="turbine",
                train_rows=train_rows, exact=True)
    local = local_fit(method, data, train_rows)
    ours, theirs = model.detector.get_state(), local.detector.get_state()
    np.testing.assert_allclose(ours["center_"], theirs["center_"], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(ours["scale_"], theirs["scale_"], rtol=1e-13)
    assert model.threshold_ == pytest.approx(local.threshold_, rel=1e-12)
    assert model.alarms.center_ == pytest.approx(local.alarms.center_, rel=1e-12)
    assert model.training_["rows"] == local.training_["rows"] == (train_rows or 3000) * 2
    assert model.training_["score_max"] == pytest.approx(local.training_["score_max"], rel=1e-12)


def test_one_channel_with_gaps_fits_and_a_series_without_any_value_is_named(spark):
    data = turbines().drop(columns="vibration")
    model = fit(spark.createDataFrame(data), "robust_zscore", series_column="turbine",
                exact=True)
    assert model.threshold_ == pytest.approx(local_fit("robust_zscore", data).threshold_,
                                             rel=1e-12)
    data.loc[data["turbine"] == "t-2", "power"] = np.nan
    with pytest.raises(DataError, match="^series 't-2' has no value at all in channel 'power'"):
        fit(spark.createDataFrame(data), "robust_zscore", series_column="turbine")


def test_without_exact_each_quantile_is_a_training_value_within_the_sketchs_rank_error(spark):
    rng = np.random.default_rng(5)
    n = 50_000
    data = pd.DataFrame({"power": rng.standard_t(3, n), "vibration": rng.normal(2, 0.1, n)})
    model = fit(spark.createDataFrame(data).repartition(4), "iqr")
    local = vigil.Model("iqr").fit(data)
    state = model.detector.get_state()
    q1 = state["center_"] - state["scale_"] / 2
    for j, name in enumerate(["power", "vibration"]):
        values = np.sort(data[name].to_numpy())
        rank = int(np.abs(values - q1[j]).argmin())
        assert values[rank] == pytest.approx(q1[j], rel=1e-12)  # a training value ...
        assert abs(rank - 0.25 * (n - 1)) <= n / ACCURACY + 1  # ... of about the right rank
    assert model.threshold_ == pytest.approx(local.threshold_, rel=1e-3)
    assert "with quantiles within 6 ranks (exact with --exact)" in model.training_["sample"]


def test_exact_is_refused_for_a_method_fitted_on_a_sample(spark):
    df = spark.createDataFrame(turbines())
    with pytest.raises(ConfigError, match="exact is for the statistical methods"):
        fit(df, "isolation_forest", series_column="turbine", exact=True)
