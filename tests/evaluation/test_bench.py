"""vigil bench: the BASELINES.md protocol over a folder of labeled series."""

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from vigil.cli import app
from vigil.errors import ConfigError, DataError
from vigil.evaluation import FLAG_METRICS
from vigil.evaluation.bench import discover, parse_methods, run_bench, summarize, write_results


@pytest.fixture
def collection(tmp_path):
    """A tiny collection in the shared/datasets format: two labeled series, one clean. Each
    labeled series has a 5-row event of +4 that robust_zscore flags at once; b.csv also has a
    labeled +0.3 bump it misses and an unlabeled 3-row +4 step it flags (a false alarm)."""
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
        if name == "b.csv":
            frame.loc[420:424, "value"] += 0.3
            frame.loc[420:424, "label"] = 1
            frame.loc[250:252, "value"] += 4
        frame.to_csv(tmp_path / name, index=False)
        entries.append({"file": name, "rows": n, "channels": ["value"], "train_rows": 200,
                        "anomaly_rows": int(frame["label"].sum()),
                        "anomaly_events": 2 if name == "b.csv" else int(spike is not None),
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
    assert [Path(s.path).name for s in series] == ["a.csv", "b.csv", "clean.csv"]
    assert series[0].train_rows == 200 and series[2].anomaly_rows == 0
    (collection / "empty").mkdir()
    with pytest.raises(DataError, match="no manifest.json"):
        discover(collection / "empty")


def test_bench_scores_series_with_anomalies_and_writes_tables(collection, tmp_path):
    results = run_bench(discover(collection), parse_methods("robust_zscore,zscore"), jobs=1)
    assert len(results) == 4 and set(results["status"]) == {"ok"}  # clean.csv is not scored
    assert (results["VUS-PR"] > 0.5).all()
    table = summarize(results)["tiny"]
    assert list(table["n ok / series"]) == ["2 / 2", "2 / 2"]
    summary = write_results(results, tmp_path / "out", "vigil bench tiny")
    text = summary.read_text()
    assert "| robust_zscore |" in text and "PA-F1 (optimistic)" in text
    assert "| events caught |" in text and "| false alarms / day |" in text
    assert set(FLAG_METRICS) <= set(pd.read_csv(tmp_path / "out" / "series.csv").columns)


def test_bench_reports_the_models_own_flags(collection):
    results = run_bench(discover(collection), parse_methods("robust_zscore"), jobs=1)
    a, b = (results[results["series"] == f].iloc[0] for f in ("a.csv", "b.csv"))
    assert a["events caught"] == 1.0 and a["precision"] == 1.0 and a["recall"] == 1.0
    assert a["false alarms / 1k rows"] == 0.0 and a["delay"] == 0.0
    assert "200 training scores are too few" in a["warnings"]  # pot fell back, recorded
    # b: the +4 event caught at once, the bump missed, the step one false alarm in 300 rows
    # spanning 299 minutes
    assert b["events caught"] == 0.5 and b["delay"] == 0.0
    assert b["precision"] == pytest.approx(5 / 8) and b["recall"] == pytest.approx(0.5)
    assert b["false alarms / 1k rows"] == pytest.approx(1000 / 300)
    assert b["false alarms / day"] == pytest.approx(1440 / 299)
    assert b["event-F1"] == pytest.approx(0.5)  # 1 of 2 runs on a label, 1 of 2 events caught
    assert b["F1 / oracle"] == pytest.approx(b["F1"] / b["Standard-F1"])
    row = summarize(results)["tiny"].iloc[0]
    assert row["method"] == "robust_zscore" and row["events caught"] == 0.75
    assert row["flagged"] == pytest.approx((a["flagged"] + b["flagged"]) / 2)


def test_a_method_failing_on_some_series_is_marked_partial(collection):
    results = run_bench(discover(collection), parse_methods("robust_zscore,zscore(nope=1)"),
                        jobs=1)
    failed = results[results["method"] == "zscore(nope=1)"]
    assert set(failed["status"]) == {"error"}
    assert failed["error"].str.contains("no parameter 'nope'").all()
    table = summarize(results)["tiny"].set_index("method")
    assert table.loc["zscore(nope=1) (partial)", "n ok / series"] == "0 / 2"
    assert math.isnan(table.loc["zscore(nope=1) (partial)", "VUS-PR"])
    assert table.loc["robust_zscore", "n ok / series"] == "2 / 2"


def test_vigil_bench_exits_3_after_writing_results_when_a_run_fails(collection, tmp_path):
    runner = CliRunner()
    ok = runner.invoke(app, ["bench", str(collection), "--methods", "robust_zscore", "--jobs",
                             "1", "--out", str(tmp_path / "ok"), "--quiet"])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, ["bench", str(collection), "--methods", "robust_zscore,zscore(nope=1)",
                              "--jobs", "1", "--out", str(tmp_path / "bad"), "--quiet"])
    assert bad.exit_code == 3, bad.output
    assert "2 of 4 runs failed or timed out" in bad.stderr
    assert "zscore(nope=1) (partial)" in (tmp_path / "bad" / "summary.md").read_text()
    assert len(pd.read_csv(tmp_path / "bad" / "series.csv")) == 4


def test_vigil_bench_passes_the_threshold_to_the_model(collection, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["bench", str(collection), "--methods", "robust_zscore",
                                 "--threshold", "fixed:1000", "--jobs", "1", "--out",
                                 str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    assert (pd.read_csv(tmp_path / "series.csv")["flagged"] == 0).all()  # nothing is that high
    wrong = runner.invoke(app, ["bench", str(collection), "--threshold", "nope", "--out",
                                str(tmp_path)])
    assert wrong.exit_code == 2 and "Unknown threshold 'nope'" in wrong.stderr


def test_bench_passes_the_alarm_rules_to_the_model(collection, tmp_path):
    # b.csv's unlabeled 3-row step is one false alarm by default and with the rules off;
    # needing 4 rows drops it
    def false_alarms(*options):
        result = CliRunner().invoke(app, ["bench", str(collection), "--methods", "robust_zscore",
                                          "--jobs", "1", "--out", str(tmp_path), "--quiet",
                                          *options])
        assert result.exit_code == 0, result.output
        series = pd.read_csv(tmp_path / "series.csv").set_index("series")
        return series.loc["b.csv", "false alarms / 1k rows"]

    assert false_alarms() == pytest.approx(1000 / 300)
    assert false_alarms("--alarms", "off") >= 1000 / 300
    strict = run_bench(discover(collection), parse_methods("robust_zscore"), jobs=1,
                       alarms={"min_rows": 4, "certain": 100.0})
    assert strict.set_index("series").loc["b.csv", "false alarms / 1k rows"] == 0.0


def test_a_method_over_its_time_limit_is_stopped_and_listed(collection):
    slow = parse_methods("isolation_forest(n_estimators=5000)")  # seconds, not milliseconds
    results = run_bench(discover(collection), slow, jobs=1, timeout=0.5)
    assert set(results["status"]) == {"timeout"}
    assert results["error"].str.contains("stopped after|timed out on a shorter").all()
