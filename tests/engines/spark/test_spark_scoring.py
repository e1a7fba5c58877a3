"""Spark gives the local engine's scores, flags and events: every method, several series,
gaps and repeated timestamps, rows in any order."""

import json

import numpy as np
import pandas as pd
import pytest

import vigil
from vigil.detectors import METHODS, get_class
from vigil.engines.spark import executor_errors, fit, score
from vigil.engines.spark.aggregates import AGGREGATED
from vigil.errors import DataError
from vigil.io import from_frame


def pumps(rows=400, seed=0):
    """Three interleaved pumps a minute apart, each with a spike and a level shift, a few
    missing values, and one repeated timestamp."""
    rng = np.random.default_rng(seed)
    frames = []
    for k, name in enumerate(["pump-1", "pump-2", "pump-3"]):
        t = np.arange(rows)
        temperature = 60 + 3 * np.sin(t / 15 + k) + rng.normal(0, 0.3, rows)
        pressure = 950 + 10 * np.cos(t / 20) + rng.normal(0, 1.0, rows)
        temperature[rows // 2 + 7 * k: rows // 2 + 7 * k + 4] += 12
        pressure[3 * rows // 4: 3 * rows // 4 + 6] -= 60
        temperature[[5, 250]] = np.nan
        times = pd.date_range("2024-03-19", periods=rows, freq="min")
        times = times.insert(300, times[300]).delete(301)  # a tie
        frames.append(pd.DataFrame({"timestamp": times, "pump": name,
                                    "temperature": temperature, "pressure": pressure}))
    return (pd.concat(frames).sort_values(["timestamp", "pump"], kind="stable")
            .reset_index(drop=True))


def local_model(method, data, train_rows):
    first = data.groupby("pump", sort=False).head(train_rows)
    return vigil.Model(method).fit(from_frame(first, series_column="pump",
                                              time_column="timestamp"))


def spark_result(spark, model, data):
    df = spark.createDataFrame(data)
    out = score(df, model).toPandas()
    return out.sort_values(["pump", "timestamp", "temperature"], kind="stable",
                           na_position="first")


def assert_same(result, expected):
    expected = expected.assign(pump=expected["pump"].astype(str)).sort_values(
        ["pump", "timestamp", "temperature"], kind="stable", na_position="first")
    assert len(result) == len(expected)
    np.testing.assert_allclose(result["score"], expected["score"], rtol=1e-9, atol=0)
    assert np.array_equal(result["is_anomaly"], expected["is_anomaly"])
    assert np.array_equal(result["event"], expected["event"])
    if "driver" in expected:
        assert list(result["driver"]) == list(expected["driver"].astype(object))
    assert np.array_equal(result["filled"], expected["filled"])  # the gaps, named


UNSUPERVISED = sorted(m for m in METHODS if not get_class(m).supervised)


@pytest.mark.parametrize("method", UNSUPERVISED)
def test_every_method_scores_on_spark_as_it_does_locally(spark, method):
    data = pumps()
    aggregated = method in AGGREGATED  # fitted as aggregates over the training rows
    model = fit(spark.createDataFrame(data), method, series_column="pump", train_rows=200,
                **({"exact": True} if aggregated else {}))
    local = local_model(method, data, 200)
    assert model.threshold_ == pytest.approx(local.threshold_, rel=1e-12)
    assert model.training_["sample"].startswith(
        "every training row as Spark aggregates" if aggregated else
        "the first 200 rows of each of 3 series in time order")
    expected = local.detect(from_frame(data, series_column="pump", time_column="timestamp"))
    assert_same(spark_result(spark, model, data), expected)


def test_a_supervised_forest_learns_the_label_column_on_spark_as_locally(spark):
    data = pumps()
    position = data.groupby("pump", sort=False).cumcount()
    pump = data["pump"].str[-1].astype(int) - 1
    spike = (position >= 200 + 7 * pump) & (position < 204 + 7 * pump)
    data["label"] = (spike | position.between(300, 305)).astype(int)
    model = fit(spark.createDataFrame(data), "random_forest", series_column="pump",
                label_column="label", n_estimators=20)
    local = vigil.Model("random_forest", n_estimators=20).fit(
        from_frame(data, series_column="pump", time_column="timestamp", label_column="label"))
    assert model.threshold_ == local.threshold_
    expected = local.detect(from_frame(data.drop(columns="label"), series_column="pump",
                                       time_column="timestamp"))
    assert_same(spark_result(spark, model, data.drop(columns="label")), expected)


def test_events_are_numbered_through_the_series_in_the_order_they_first_appear(spark):
    data = pumps()
    model = local_model("robust_zscore", data, 200)
    result = spark_result(spark, model, data.iloc[::-1])  # rows in reverse: same scores
    expected = model.detect(from_frame(data.iloc[::-1], series_column="pump",
                                       time_column="timestamp"))
    assert_same(result, expected)
    assert result["event"].max() > 3 and result["is_anomaly"].any()


def test_a_saved_model_scores_a_csv_read_by_spark(spark, tmp_path):
    data = pumps().assign(timestamp=lambda d: d["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S"))
    data.to_csv(tmp_path / "pumps.csv", index=False)
    model = local_model("zscore", pumps(), 200)
    model.save(tmp_path / "model.vigil")
    df = spark.read.csv(str(tmp_path / "pumps.csv"), header=True, inferSchema=True)
    out = score(df, vigil.load(tmp_path / "model.vigil")).toPandas()
    expected = model.detect(tmp_path / "pumps.csv")
    assert set(out.columns) >= {"score", "threshold", "is_anomaly", "event", "driver", "filled"}
    assert sorted(out["score"]) == sorted(expected["score"])
    assert out["event"].max() == expected["event"].max()


def test_bad_input_gets_the_local_engines_clear_error(spark):
    model = local_model("zscore", pumps(), 200)
    with pytest.raises(DataError, match="column 'pressure', which the model needs"):
        score(spark.createDataFrame(pumps().drop(columns="pressure")), model)
    empty_channel = pumps().assign(pressure=lambda d: d["pressure"].where(d["pump"] != "pump-2"))
    with pytest.raises(DataError, match="^series 'pump-2': channel 'pressure' has no values"):
        with executor_errors():
            score(spark.createDataFrame(empty_channel), model).collect()


def test_one_model_per_series_fits_on_the_executors_and_scores_as_locally(spark):
    data = pumps()
    df = spark.createDataFrame(data)
    bundle = fit(df, "subsequence_pca", series_column="pump", train_rows=200, per_series=True,
                 window=20)
    local = vigil.ModelBundle("subsequence_pca", series_column="pump", time_column="timestamp",
                              window=20).fit(data.groupby("pump", sort=False).head(200))
    assert list(bundle.models_) == list(local.models_) == ["pump-1", "pump-2", "pump-3"]
    for name in local.models_:
        assert bundle.models_[name].threshold_ == local.models_[name].threshold_
    assert_same(spark_result(spark, bundle, data), local.detect(data))


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".csv"])
def test_files_folders_and_globs_of_each_format_score_as_locally(spark, tmp_path, suffix):
    from vigil.engines.spark.reading import read

    data = pumps()
    model = local_model("zscore", data, 200)
    folder = tmp_path / "parts"
    folder.mkdir()
    for k, part in enumerate([data.iloc[:600], data.iloc[600:]]):
        path = folder / f"part-{k}{suffix}"
        if suffix == ".parquet":
            part.to_parquet(path, index=False)
        elif suffix == ".jsonl":  # every digit kept (pandas' to_json keeps 10)
            records = part.assign(timestamp=part["timestamp"].astype(str)).to_dict("records")
            path.write_text("".join(json.dumps(r) + "\n" for r in records).replace(
                "NaN", "null"))
        else:
            part.to_csv(path, index=False)
    expected = model.detect(from_frame(data, series_column="pump", time_column="timestamp"))
    for source in (folder, folder / f"*{suffix}"):
        out = score(read(spark, str(source)), model).toPandas()
        assert sorted(out["score"]) == sorted(expected["score"])
        assert out["event"].max() == expected["event"].max()
    with pytest.raises(DataError, match="no such file or folder"):
        read(spark, str(tmp_path / f"missing{suffix}"))
