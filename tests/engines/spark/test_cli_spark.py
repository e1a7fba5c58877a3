"""``--engine spark`` on the command line, as a user runs it: the same events as the local
engine, results in a Parquet folder; and the documented Spark example script."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from vigil import sample_data

VIGIL = [sys.executable, "-m", "vigil"]
ROOT = Path(__file__).resolve().parents[3]


def _run(*args):
    return subprocess.run([*VIGIL, *map(str, args)], capture_output=True, text=True, timeout=300)


def _summary(text):
    return re.search(r"\d+ anomaly events \(.*?\)", " ".join(text.split())).group(0)


def test_detect_on_spark_prints_and_writes_what_the_local_engine_does(tmp_path):
    data = sample_data.path()
    local = _run("detect", data, "--train-rows", 10080, "--show", 0)
    spark = _run("detect", data, "--train-rows", 10080, "--show", 3, "--engine", "spark",
                 "--out", tmp_path / "scores.parquet", "--partition-by", "day",
                 "--plot", tmp_path / "plot.png")
    assert local.returncode == spark.returncode == 0, spark.stderr
    assert _summary(spark.stdout) == _summary(local.stdout)  # "9 anomaly events (1275 rows ...)"
    assert "Anomaly events (first 3 of" in spark.stdout
    written = pd.read_parquet(tmp_path / "scores.parquet")
    assert len(written) == 30240 and written["day"].nunique() == 21
    assert (tmp_path / "plot.png").stat().st_size > 10_000
    assert "Traceback" not in spark.stderr and "PySpark does not" not in spark.stderr


@pytest.mark.slow
def test_detect_through_a_standalone_cluster_finds_the_local_engines_events(standalone,
                                                                           tmp_path):
    data = sample_data.path()
    local = _run("detect", data, "--train-rows", 10080, "--show", 0)
    cluster = subprocess.run(
        [*VIGIL, "detect", str(data), "--train-rows", "10080", "--show", "0", "--engine",
         "spark", "--master", standalone, "--out", str(tmp_path / "scores.parquet")],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"})
    assert cluster.returncode == 0, cluster.stderr[-3000:]
    assert _summary(cluster.stdout) == _summary(local.stdout)
    assert len(pd.read_parquet(tmp_path / "scores.parquet")) == 30240


def test_train_then_score_on_spark_and_clear_errors(tmp_path):
    data = sample_data.path()
    trained = _run("train", data, "-o", tmp_path / "m.vigil", "--train-rows", 10080,
                   "--method", "robust_zscore", "--engine", "spark")
    assert trained.returncode == 0, trained.stderr
    assert "every training row as Spark aggregates" in trained.stdout  # all 10,080 of them
    assert "(10,080 rows)" in trained.stdout
    local = _run("score", data, "--model", tmp_path / "m.vigil", "--show", 0)
    spark = _run("score", data, "--model", tmp_path / "m.vigil", "--show", 0,
                 "--engine", "spark")
    assert spark.returncode == 0, spark.stderr
    assert _summary(spark.stdout) == _summary(local.stdout)
    missing = _run("score", tmp_path / "nothing.csv", "--model", tmp_path / "m.vigil",
                   "--engine", "spark")
    assert missing.returncode == 2 and "nothing.csv: no such file" in missing.stderr
    assert "Traceback" not in missing.stderr
    wrong = _run("score", data, "--model", tmp_path / "m.vigil", "--master", "local[2]")
    assert wrong.returncode == 2 and "--master needs --engine spark" in wrong.stderr


def test_the_spark_pipeline_example_runs():
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "spark_pipeline.py")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Rows outside 3 sigma and outside the IQR fences" in done.stdout
    found = re.search(r"(\d+) anomalous rows of 30240 in (\d+) events", done.stdout)
    assert found and int(found.group(1)) > 0


def test_demo_on_spark_flags_equal_the_batch_demo(tmp_path):
    done = _run("demo", "--spark", "--out-dir", tmp_path / "demo")
    assert done.returncode == 0, done.stderr
    assert "its flags equal the batch demo's on all 30240 rows" in " ".join(done.stdout.split())


def test_keep_going_writes_the_other_series_and_lists_the_ones_left_out(tmp_path):
    rows = 300
    frames = [pd.DataFrame({"timestamp": pd.date_range("2024-03-19", periods=rows, freq="min"),
                            "pump": name, "temperature": 60.0 + (k + 1) * (pd.Series(range(rows)) % 7),
                            "pressure": None if name == "pump-2" else 950.0 + k})
              for k, name in enumerate(["pump-1", "pump-2", "pump-3"])]
    data = tmp_path / "fleet.csv"
    pd.concat(frames).to_csv(data, index=False)
    args = ["detect", data, "--engine", "spark", "--series-column", "pump", "--method", "iqr",
            "--channels", "temperature,pressure", "--train-rows", 200, "--show", 0,
            "--out", tmp_path / "scores.parquet"]
    stopped = _run(*args)
    assert stopped.returncode == 2, stopped.stderr
    assert "error: series 'pump-2' has no value at all in channel 'pressure'" in stopped.stderr
    assert "Traceback" not in stopped.stderr

    kept = _run(*args, "--keep-going")
    assert kept.returncode == 3, kept.stderr
    assert "1 series could not be scored and was left out (--keep-going)" in kept.stderr
    failures = pd.read_csv(tmp_path / "scores_failures.csv")
    assert failures.to_dict("records") == [{"series": "pump-2", "rows": 300, "reason": (
        "channel 'pressure' has no values at all (every cell is missing or infinite)")}]
    written = pd.read_parquet(tmp_path / "scores.parquet")
    assert sorted(written["pump"].unique()) == ["pump-1", "pump-3"] and len(written) == 600


def test_evaluate_on_spark_gives_the_local_engines_metrics():
    import json

    series = ROOT.parent / "shared" / "datasets" / "skab" / "valve1__3.csv"
    local = _run("evaluate", series, "--quiet")
    spark = _run("evaluate", series, "--quiet", "--engine", "spark")
    assert local.returncode == spark.returncode == 0, spark.stderr
    expected, got = json.loads(local.stdout), json.loads(spark.stdout)
    assert got.keys() == expected.keys()
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-9, nan_ok=True), name
