"""``vigil.spark.score`` on a streaming DataFrame: each series keeps its scorer across
micro-batches, so the rows that come out carry batch scoring's scores, flags and events; a row
that cannot be scored in its place comes out with the reason, never dropped."""

import json
import os

import numpy as np
import pandas as pd
import pytest
from confluent_kafka import Producer

import vigil
from stream_data import final_rows, sensor_series
from vigil.engines.spark import score
from vigil.engines.spark.kafka_source import register
from vigil.io import from_frame

SCHEMA = "timestamp timestamp, pump string, temperature double, pressure double"


def fitted(method, data, **params):
    return vigil.Model(method, **params).fit(
        from_frame(data.groupby("pump").head(150), series_column="pump",
                   time_column="timestamp"))


def land_files(folder, data, files):
    """``data`` cut in time order into ``files`` Parquet files, as a landing folder gets them
    (a file source takes files in the order of their modification times)."""
    folder.mkdir()
    for i, rows in enumerate(np.array_split(np.arange(len(data)), files)):
        path = folder / f"part-{i:03d}.parquet"
        data.iloc[rows].to_parquet(path, index=False)
        os.utime(path, (1_700_000_000 + 10 * i, 1_700_000_000 + 10 * i))


def run(scored, checkpoint):
    """Every row the query gives over what is there now, as one pandas frame."""
    got = []
    query = (scored.writeStream.foreachBatch(lambda df, _: got.append(df.toPandas()))
             .option("checkpointLocation", str(checkpoint)).trigger(availableNow=True).start())
    query.awaitTermination(180)
    assert query.exception() is None
    return pd.concat(got, ignore_index=True) if got else pd.DataFrame()


def assert_as_batch(streamed, model, data):
    """Each streamed row has batch scoring's score, flag and filled mark, and the events split
    each series' rows as batch events do."""
    batch = model.detect(from_frame(data, series_column="pump", time_column="timestamp"))
    batch.index = data["pump"] + " " + data["timestamp"].astype(str)
    streamed = streamed.set_index(streamed["pump"] + " " + streamed["timestamp"].astype(str))
    assert not streamed.index.duplicated().any()
    expected = batch.loc[streamed.index]
    assert np.array_equal(streamed["score"].to_numpy(), expected["score"].to_numpy())
    assert np.array_equal(streamed["is_anomaly"].to_numpy(dtype=bool),
                          expected["is_anomaly"].to_numpy())
    filled = expected["filled"] if "filled" in expected else False  # batch: only if any
    assert np.array_equal(streamed["filled"].to_numpy(dtype=bool),
                          np.broadcast_to(filled, len(streamed)))
    for pump in data["pump"].unique():
        mine = streamed["pump"] == pump
        ours = pd.factorize(streamed.loc[mine, "event"].where(lambda e: e > 0))[0]
        theirs = pd.factorize(expected.loc[mine, "event"].where(lambda e: e > 0))[0]
        assert np.array_equal(ours, theirs)


@pytest.mark.parametrize("method,params", [("robust_zscore", {}),
                                           ("subsequence_pca", {"window": 20})])
def test_a_landing_folder_scores_as_batch_across_micro_batches(spark, tmp_path, method,
                                                               params):
    data = sensor_series(rows=400)
    data.loc[[30, 31, 700], "temperature"] = np.nan  # filled from the past, as batch does
    model = fitted(method, data, **params)
    land_files(tmp_path / "in", data, files=6)
    stream = spark.readStream.schema(SCHEMA).option("maxFilesPerTrigger", 1).parquet(
        str(tmp_path / "in"))
    streamed = run(score(stream, model), tmp_path / "ck")
    assert streamed["error"].isna().all(), streamed["error"].dropna().unique()[:3]
    assert len(streamed) == final_rows(model, data)
    assert streamed["is_anomaly"].astype(bool).any()
    assert_as_batch(streamed, model, data)


def test_late_and_infinite_rows_come_out_with_the_reason(spark, tmp_path):
    data = sensor_series(rows=200)
    model = fitted("robust_zscore", data)
    land_files(tmp_path / "in", data, files=2)
    late = data.iloc[[5]].assign(temperature=61.0)  # pump-? at minute 1, after minute 200
    broken = data.iloc[[-1]].assign(timestamp=data["timestamp"].max() + pd.Timedelta("1min"),
                                    pressure=np.inf)
    pd.concat([late, broken]).to_parquet(tmp_path / "in" / "part-999.parquet", index=False)
    os.utime(tmp_path / "in" / "part-999.parquet", (1_800_000_000, 1_800_000_000))
    stream = spark.readStream.schema(SCHEMA).option("maxFilesPerTrigger", 1).parquet(
        str(tmp_path / "in"))
    streamed = run(score(stream, model), tmp_path / "ck")
    refused = streamed[streamed["error"].notna()]
    assert sorted(refused["error"]) == [
        "channel 'pressure' is infinite",
        f"time is earlier than the series' last scored row ({data['timestamp'].max()})"]
    assert refused["score"].isna().all()
    assert len(streamed) == final_rows(model, data) + 2  # the rest wait in the state


def test_a_kafka_topic_read_with_vigil_kafka_scores_as_batch(spark, broker, topic, tmp_path):
    from pyspark.sql import functions as F

    data = sensor_series(rows=300)
    model = fitted("subsequence_pca", data, window=20)
    name = topic(2)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for row in data.itertuples(index=False):
        producer.produce(name, json.dumps({
            "timestamp": str(row.timestamp), "pump": row.pump, "temperature": row.temperature,
            "pressure": row.pressure}).encode(), row.pump.encode())
    producer.flush(10)
    register(spark)
    records = (spark.readStream.format("vigil-kafka")
               .option("kafka.bootstrap.servers", broker.bootstrap).option("subscribe", name)
               .option("maxOffsetsPerTrigger", 200).load())
    readings = records.select(F.from_json(F.col("value").cast("string"), SCHEMA).alias("r"))
    streamed = run(score(readings.select("r.*"), model), tmp_path / "ck")
    assert streamed["error"].isna().all()
    assert len(streamed) == final_rows(model, data)
    assert_as_batch(streamed, model, data)
