"""vigil evaluate and vigil bench, run as a user runs them."""

import json

import numpy as np
import pandas as pd
from pathlib import Path

from typer.testing import CliRunner

from vigil.cli import app
from vigil.evaluation import FLAG_METRICS

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
SKAB = str(DATASETS / "skab" / "valve1__2.csv")
runner = CliRunner()


def test_evaluate_takes_the_training_part_from_the_manifest(tmp_path):
    result = runner.invoke(app, ["evaluate", SKAB, "--plot", str(tmp_path / "eval.png")])
    assert result.exit_code == 0, result.output
    assert "fitted on rows 0..399" in result.stdout
    assert "VUS-PR" in result.stdout and "PA-F1 (optimistic)" in result.stdout
    assert (tmp_path / "eval.png").exists()


def test_evaluate_shows_the_models_own_flags_first():
    result = runner.invoke(app, ["evaluate", SKAB, "--method", "robust_zscore"])
    assert result.exit_code == 0, result.output
    shown = [line.split("│")[1].strip() for line in result.stdout.splitlines()
             if line.startswith("│")]
    assert shown[:len(FLAG_METRICS)] == list(FLAG_METRICS)
    assert shown.index("VUS-PR") > len(FLAG_METRICS) and "precision @ threshold" not in shown


def test_evaluate_quiet_is_json_with_null_for_undefined_metrics():
    result = runner.invoke(app, ["evaluate", SKAB, "--method", "robust_zscore", "--threshold",
                                 "fixed:1e9", "--quiet"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert list(report)[:len(FLAG_METRICS)] == list(FLAG_METRICS)
    assert report["flagged"] == 0.0 and report["events caught"] == 0.0
    assert report["delay"] is None  # no event caught
    assert "NaN" not in result.stdout and 0 < report["VUS-PR"] <= 1


def test_evaluate_needs_labels_and_a_training_part(tmp_path):
    example = str(DATASETS / "examples" / "sensor_data.csv")
    assert "no label column 'label'" in runner.invoke(app, ["evaluate", example]).stderr
    two = runner.invoke(app, ["evaluate", SKAB, "--train-rows", "10", "--train-fraction", "0.5"])
    assert two.exit_code == 2 and "only one of" in two.stderr


def test_bench_on_a_collection(tmp_path):
    result = runner.invoke(app, ["bench", str(DATASETS / "skab"), "--methods", "robust_zscore",
                                 "--jobs", "1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    summary = (tmp_path / "summary.md").read_text()
    assert "## skab" in summary and "| events caught |" in summary
    assert "| robust_zscore |" in summary and "16 / 16" in summary


def test_evaluate_judges_the_flags_of_the_alarm_rules_given():
    def flags(*options):
        result = runner.invoke(app, ["evaluate", SKAB, "--method", "robust_zscore", "--quiet",
                                     *options])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    default, off = flags(), flags("--alarms", "off")
    assert off["flagged"] != default["flagged"]
    assert off["false alarms / 1k rows"] >= default["false alarms / 1k rows"]  # unmerged runs
    assert flags("--alarms", "off", "--merge-gap", "3") != off
    shown = runner.invoke(app, ["evaluate", SKAB, "--method", "robust_zscore", "--alarms", "off"])
    assert "alarm rules: off" in shown.stdout


def test_invalid_alarm_rules_are_one_usage_error():
    for args, message in ((["evaluate", SKAB, "--exit-level", "-0.5"], "'exit_level' alarm rule"),
                          (["bench", str(DATASETS / "skab"), "--merge-gap", "-1"],
                           "'merge_gap' alarm rule must be an int >= 0")):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


def test_a_damaged_manifest_is_one_line_and_exit_2(tmp_path):
    (tmp_path / "s.csv").write_text("timestamp,value,label\n2024-01-01 00:00,1,0\n")
    for text in ("{not json", '{"series": [{"file": "s.csv"}]}', '["a list"]'):
        (tmp_path / "manifest.json").write_text(text)
        for args in (["evaluate", str(tmp_path / "s.csv")], ["bench", str(tmp_path)]):
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 2, result.output
            assert "manifest.json" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_train_until_works_on_times_with_utc_offsets(tmp_path):
    times = pd.date_range("2024-01-01", periods=400, freq="min", tz="Europe/Berlin")
    label = np.zeros(400, dtype=int)
    label[300:305] = 1
    path = tmp_path / "tz.csv"
    pd.DataFrame({"timestamp": times.astype(str), "value": np.sin(np.arange(400) / 5) + label * 5,
                  "label": label}).to_csv(path, index=False)
    for until, last in (("2024-01-01 03:19+01:00", 199), ("2024-01-01 03:19", 259)):  # naive: UTC
        result = CliRunner().invoke(app, ["evaluate", str(path), "--method", "robust_zscore",
                                          "--train-until", until])
        assert result.exit_code == 0, result.output
        assert f"fitted on rows 0..{last}" in result.stdout
