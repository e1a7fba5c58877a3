"""A long series is cut into chunks that many tasks score at once, each with the rows around it
(the detector's context and lookahead): scores, thresholds, flags and events equal those of the
whole series, gaps at a chunk's edge are filled as locally, and an event may span chunks."""

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import functions as F

import vigil
from vigil.engines.spark import executor_errors
from vigil.engines.spark.chunked import _edges, _in_order, score_chunked
from vigil.errors import DataError
from vigil.io import from_frame

pytestmark = pytest.mark.filterwarnings("ignore::vigil.errors.DataWarning")  # the gaps, said


def long_pumps(rows=3000, seed=1):
    """Two pumps in one frame, each with spikes, a 700-row level shift (longer than a chunk),
    a stuck stretch, a leading gap, a 600-row gap and an infinite value in one channel."""
    rng = np.random.default_rng(seed)
    frames = []
    for k, name in enumerate(["pump-1", "pump-2"]):
        t = np.arange(rows)
        temperature = 60 + 3 * np.sin(t / 25 + k) + rng.normal(0, 0.3, rows)
        pressure = 950 + 10 * np.cos(t / 40) + rng.normal(0, 1.0, rows)
        temperature[[1300, 1301, 2200]] += 15
        pressure[1500:2200] += 40
        temperature[2500:2600] = temperature[2500]
        temperature[:7] = np.nan
        pressure[600:1200] = np.nan
        pressure[2700] = np.inf
        frames.append(pd.DataFrame({"timestamp": pd.date_range("2024-03-19", periods=rows,
                                                               freq="min"),
                                    "pump": name, "temperature": temperature,
                                    "pressure": pressure}))
    return pd.concat(frames).sample(frac=1, random_state=0).reset_index(drop=True)


def detect_both(spark, model, data, chunks, **roles):
    expected = model.detect(from_frame(data, time_column="timestamp", **roles))
    with executor_errors():
        result = score_chunked(spark.createDataFrame(data), model, chunks=chunks).toPandas()
    keys = [c for c in ("pump", "timestamp") if c in data]
    return (result.sort_values(keys).reset_index(drop=True),
            expected.assign(**({"pump": expected["pump"].astype(str)} if "pump" in data else {}))
            .sort_values(keys).reset_index(drop=True))


def assert_same(result, expected):
    np.testing.assert_allclose(result["score"], expected["score"], rtol=1e-9, atol=0)
    np.testing.assert_allclose(result["threshold"], expected["threshold"], rtol=1e-9, atol=0)
    assert np.array_equal(result["is_anomaly"], expected["is_anomaly"])
    assert np.array_equal(result["event"], expected["event"])
    assert np.array_equal(result["filled"], expected["filled"])
    if "driver" in expected:
        assert list(result["driver"]) == list(expected["driver"].astype(object))


@pytest.mark.parametrize("method, threshold", [
    ("subsequence_pca", "pot"), ("matrix_profile", "pot"), ("stuck", "pot"),
    ("zscore", "dspot")])
def test_a_series_cut_into_chunks_scores_as_the_whole_series(spark, method, threshold):
    data = long_pumps()
    train = from_frame(data.sort_values("timestamp").groupby("pump").head(1000),
                       series_column="pump", time_column="timestamp")
    model = vigil.Model(method, threshold=threshold).fit(train)
    result, expected = detect_both(spark, model, data, chunks=13, series_column="pump")
    assert_same(result, expected)
    if method == "zscore":  # an event longer than a chunk (about 460 rows) spans two or more
        assert expected.groupby("event").size().drop(0).max() > 500


@pytest.fixture
def small_batches(spark):
    """Arrow batches of 100 rows: a chunk reaches the Python worker in many batches."""
    key = "spark.sql.execution.arrow.maxRecordsPerBatch"
    before = spark.conf.get(key)
    spark.conf.set(key, "100")
    yield
    spark.conf.set(key, before)


def test_one_series_without_a_series_column_and_a_model_per_series(spark, small_batches):
    data = long_pumps()
    one = data[data["pump"] == "pump-1"].drop(columns="pump")
    model = vigil.Model("subsequence_pca", threshold="dspot").fit(
        one.sort_values("timestamp").head(1000))
    result, expected = detect_both(spark, model, one, chunks=7)
    assert_same(result, expected)
    bundle = vigil.ModelBundle("iqr", series_column="pump", time_column="timestamp").fit(
        data.sort_values("timestamp").groupby("pump").head(1000))
    result, expected = detect_both(spark, bundle, data, chunks=5, series_column="pump")
    assert_same(result, expected)


def test_a_series_with_no_value_in_a_channel_is_refused_by_name(spark):
    data = long_pumps()
    model = vigil.Model("zscore", series_column="pump").fit(data.dropna())
    data.loc[data["pump"] == "pump-2", "pressure"] = np.nan
    with pytest.raises(DataError, match="^series 'pump-2': channel 'pressure' has no values"):
        score_chunked(spark.createDataFrame(data), model, chunks=3)


def test_rows_in_time_order_are_scored_where_they_lie_without_a_sort(spark):
    data = long_pumps().sort_values("timestamp", kind="stable").reset_index(drop=True)
    model = vigil.Model("subsequence_pca", series_column="pump").fit(
        data.groupby("pump").head(1000))
    result, expected = detect_both(spark, model, data, chunks=None, series_column="pump")
    assert_same(result, expected)
    roles = ("pump", "timestamp", ["temperature", "pressure"])

    def follow(frame):
        narrow = spark.createDataFrame(frame).select(
            F.monotonically_increasing_id().alias("__vigil_row"), "pump", "timestamp",
            "temperature", "pressure")
        return _in_order(_edges(narrow, roles, (90, 90), narrow.schema["pump"].dataType))

    assert follow(data) and not follow(data.iloc[::-1])
