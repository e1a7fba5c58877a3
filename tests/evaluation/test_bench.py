"""vigil bench: the BASELINES.md protocol over a folder of labeled series."""

import json

import numpy as np
import pandas as pd
import pytest

from vigil.errors import ConfigError, DataError
from vigil.evaluation.bench import discover, parse_methods, run_bench, summarize, write_results


@pytest.fixture
def collection(tmp_path):
    """A tiny collection in the shared/datasets format: two labeled series, one clean."""
    rng = np.random.default_rng(0)
    entries = []
    for name, spike in (("a.csv", 300), ("b.csv", 350), ("clean.csv", None)):
        n = 500
        frame = pd.DataFrame({
            "timestamp": pd.date_range("2024-01-01", periods=n, freq="min").astype(str),
            "value": np.sin(np.arange(n) / 8) + rng.normal(0, 0.05, n),
            "label": 0,
        })
        if spike is not None:
            frame.loc[spike:spike + 4, "value"] += 4
            frame.loc[spike:spike + 4, "label"] = 1
        frame.to_csv(tmp_path / name, index=False)
        entries.append({"file": name, "rows": n, "channels": ["value"], "train_rows": 200,
                        "anomaly_rows": int(frame["label"].sum()), "anomaly_events": 1,
                        "category": "test"})
    (tmp_path / "manifest.json").write_text(json.dumps({"name": "tiny", "series": entries}))
    return tmp_path


def test_methods_with_parameters_are_parsed():
    assert parse_methods("iqr,isolation_forest(window=10,n_estimators=50)") == [
        ("iqr", {}), ("isolation_forest", {"window": 10, "n_estimators": 50})]
    with pytest.raises(ConfigError, match="'nope' is not a method"):
        parse_methods("iqr,nope")


def test_discover_reads_the_manifest(collection):
    series = discover(collection)
    assert [s.path.endswith(f) for s, f in zip(series, ["a.csv", "b.csv", "clean.csv"])]
    assert series[0].train_rows == 200 and series[2].anomaly_rows == 0
    (collection / "empty").mkdir()
    with pytest.raises(DataError, match="no manifest.json"):
        discover(collection / "empty")


def test_bench_scores_series_with_anomalies_and_writes_tables(collection, tmp_path):
    results = run_bench(discover(collection), parse_methods("robust_zscore,zscore"), jobs=2)
    assert len(results) == 4 and set(results["status"]) == {"ok"}  # clean.csv is not scored
    assert (results["VUS-PR"] > 0.5).all()
    table = summarize(results)["tiny"]
    assert list(table["n ok / series"]) == ["2 / 2", "2 / 2"]
    summary = write_results(results, tmp_path / "out", "vigil bench tiny")
    assert "| robust_zscore |" in summary.read_text() and "PA-F1 (optimistic)" in summary.read_text()


def test_a_method_over_its_time_limit_is_stopped_and_listed(collection):
    slow = parse_methods("isolation_forest(n_estimators=5000)")  # seconds, not milliseconds
    results = run_bench(discover(collection), slow, jobs=1, timeout=0.5)
    assert set(results["status"]) == {"timeout"}
    assert results["error"].str.contains("stopped after|timed out on a shorter").all()
