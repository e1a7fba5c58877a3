"""The vigil command line, run as a user runs it: exit codes, one-line errors, outputs."""

import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from vigil import __version__, sample_data
from vigil.alarms import Alarms, event_table
from vigil.cli import app
from vigil.errors import DataError
from vigil.io import read
from vigil.model import Model, load
from vigil.report import duration_text

EXAMPLE = str(Path(__file__).resolve().parents[2] / "shared" / "datasets" / "examples"
              / "sensor_data.csv")
SENSORS = str(sample_data.path())  # the bundled three weeks of plant data
runner = CliRunner()


def vigil(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_version_and_help():
    assert vigil("--version").stdout.strip() == f"vigil {__version__}"
    for command in ("detect", "train", "score", "methods", "demo"):
        result = vigil(command, "--help")
        assert result.exit_code == 0 and "Usage" in result.stdout


def test_python_dash_m_runs_the_cli():
    done = subprocess.run([sys.executable, "-m", "vigil", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and __version__ in done.stdout


def test_methods_lists_every_registered_method():
    result = vigil("methods")
    for name in ("zscore", "robust_zscore", "iqr", "isolation_forest"):
        assert name in result.stdout


def test_detect_on_the_four_row_example(tmp_path):
    out, plot = tmp_path / "scores.csv", tmp_path / "plot.png"
    result = vigil("detect", EXAMPLE, "--out", out, "--plot", plot)
    assert result.exit_code == 0, result.output
    assert "12:02:00" in result.stdout and "temperature" in result.stdout
    assert "too few to fit a threshold" in result.stderr
    scores = pd.read_csv(out)
    assert len(scores) == 4 and scores["is_anomaly"].tolist() == [False, False, True, False]
    assert scores["event"].tolist() == [0, 0, 1, 0]
    assert "1 anomaly event (1 row of 4, 25.00%)" in result.stdout
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_fail_on_anomaly_sets_exit_code_1():
    assert vigil("detect", EXAMPLE, "--fail-on-anomaly", "--quiet").exit_code == 1


def test_train_then_score(tmp_path):
    model = tmp_path / "model.vigil"
    trained = vigil("train", EXAMPLE, "--method", "iqr", "-o", model)
    assert trained.exit_code == 0, trained.output
    scored = vigil("score", EXAMPLE, "--model", model, "--out", tmp_path / "s.parquet")
    assert scored.exit_code == 0, scored.output
    assert len(pd.read_parquet(tmp_path / "s.parquet")) == 4


@pytest.mark.parametrize(
    "args, message",
    [
        (["detect", "nowhere.csv"], "nowhere.csv: no such file"),
        (["detect", EXAMPLE, "--method", "nope"], "unknown method 'nope'"),
        (["detect", EXAMPLE, "-p", "k=-1", "--method", "iqr"], "The 'k' parameter of iqr must be"),
        (["detect", EXAMPLE, "-p", "window"], "expected name=value"),
        (["detect", EXAMPLE, "--threshold", "magic"], "magic"),
        (["score", EXAMPLE, "--model", "absent.vigil"], "no such model file"),
        (["detect", EXAMPLE, "--merge-gap", "-1"], "The 'merge_gap' alarm rule must be an int >= 0"),
        (["detect", EXAMPLE, "--min-rows", "0"], "The 'min_rows' alarm rule must be an int >= 1"),
        (["detect", EXAMPLE, "--exit-level", "2"], "The 'exit_level' alarm rule must be a float"),
        (["detect", EXAMPLE, "--alarms", "loud"], "--alarms must be default or off"),
        (["train", EXAMPLE, "-o", "never.vigil", "--cooldown", "-3"], "'cooldown' alarm rule"),
        (["detect", EXAMPLE, "--show", "-1"], "--show -1: give how many events to print"),
        (["score", EXAMPLE, "--model", "absent.vigil", "--show", "-5"], "--show -5"),
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(args, message):
    result = vigil(*args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_debug_shows_the_traceback():
    quiet = vigil("detect", "nowhere.csv")
    assert quiet.exit_code == 2 and isinstance(quiet.exception, SystemExit)
    result = vigil("--debug", "detect", "nowhere.csv")
    assert isinstance(result.exception, DataError)  # raised, with its traceback


def test_an_internal_error_has_its_own_exit_code_and_one_line(monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr("vigil.model.Model.detect", broken)
    result = vigil("detect", EXAMPLE)
    assert result.exit_code == 4
    assert [line for line in result.stderr.splitlines() if line and "warning" not in line] == [
        "internal error: ZeroDivisionError: division by zero; this is a bug in vigil: rerun "
        "with --debug for the traceback and report it."]


def test_demo_writes_table_plot_and_model(tmp_path):
    result = vigil("demo", "--out-dir", tmp_path)
    assert result.exit_code == 0, result.output
    for name in ("scores.csv", "anomalies.png", "model.vigil"):
        assert (tmp_path / name).exists()
    assert str(tmp_path / "anomalies.png") in result.stdout.replace("\n", "")
    # what a first user sees: the default method's events against the 12 labelled ones
    scores = pd.read_csv(tmp_path / "scores.csv")
    labelled = scores.groupby((scores["label"].diff() != 0).cumsum())
    caught = sum(g["is_anomaly"].any() for _, g in labelled if g["label"].iloc[0] == 1)
    events = scores[scores["event"] > 0].groupby("event")["label"].max()
    assert caught >= 7 and (events == 0).sum() <= 3  # measured: 7 of 12 caught, 2 false alarms


def _printed_events(stdout):
    """Event numbers in the first column of the printed events table (a wrapped row's second
    line has no number)."""
    return [int(n) for n in re.findall(r"^│\s+(\d+) │", stdout, re.M)]


def _summary_count(stdout):
    """K of the summary line "K anomaly events (...)" (0 for "No anomaly events")."""
    found = re.search(r"^(\d+|No) anomaly events? \(", stdout, re.M)
    return 0 if found.group(1) == "No" else int(found.group(1))


@pytest.fixture(scope="module")
def sensors_events():
    """The events of the bundled data found in process, as detect --train-rows 10080 finds them."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the CLI test shows them; here they are repeats
        data = read(SENSORS)
        model = Model().fit(data.frame.iloc[:10080])
        return event_table(model.detect(data))


def test_detect_prints_the_models_events(sensors_events):
    result = vigil("detect", SENSORS, "--train-rows", 10080, "--show", 1000)
    assert result.exit_code == 0, result.output
    assert _printed_events(result.stdout) == sensors_events["event"].tolist()
    assert f"Anomaly events ({len(sensors_events)})" in result.stdout
    rows = int(sensors_events["rows"].sum())
    assert re.search(rf"^{len(sensors_events)} anomaly events \({rows} rows of 30240, "
                     r"[\d.]+%\); threshold [\d.]+ on the auto score; alarm rules: exit level 1, "
                     r"merge gap 60, min rows 3", result.stdout, re.M)
    first = duration_text(sensors_events["duration"].iloc[0])
    assert re.fullmatch(r"\d+[dhms]( \d+[hms])?", first) and f"│ {first} " in result.stdout


def test_show_limits_the_table_and_zero_prints_only_the_summary(sensors_events):
    shown = vigil("detect", SENSORS, "--train-rows", 10080, "--show", 3)
    assert _printed_events(shown.stdout) == [1, 2, 3]
    assert f"first 3 of {len(sensors_events)}" in shown.stdout
    assert f"and {len(sensors_events) - 3} more events" in shown.stdout
    summary = vigil("detect", SENSORS, "--train-rows", 10080, "--show", 0)
    assert summary.exit_code == 0 and summary.stdout.strip().count("\n") == 0
    assert _summary_count(summary.stdout) == len(sensors_events)


def test_alarm_rules_off_and_overridden(tmp_path):
    def events(*options):
        result = vigil("detect", SENSORS, "--train-rows", 10080, "--show", 0, *options)
        assert result.exit_code == 0, result.output
        return _summary_count(result.stdout), result.stdout

    default, _ = events()
    off, text = events("--alarms", "off")
    assert off >= default and "alarm rules: off" in text
    merged, text = events("--merge-gap", 600)
    assert merged <= default and "merge gap 600" in text


def test_no_events_is_said_plainly():
    result = vigil("detect", EXAMPLE, "--threshold", "fixed:1e9")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("No anomaly events (0 rows of 4, 0.00%)")
    assert "Anomaly events (" not in result.stdout


def test_train_saves_the_alarm_rules_and_score_uses_them(tmp_path):
    model_path = tmp_path / "model.vigil"
    trained = vigil("train", EXAMPLE, "-o", model_path, "--min-rows", 4, "--cooldown", 10)
    assert trained.exit_code == 0, trained.output
    assert "min rows 4" in trained.stdout.replace("\n", " ")
    rules = load(model_path).alarms
    assert (rules.min_rows, rules.cooldown, rules.merge_gap) == (4, 10, Alarms().merge_gap)
    scored = vigil("score", EXAMPLE, "--model", model_path, "--out", tmp_path / "s.jsonl")
    assert scored.exit_code == 0, scored.output
    assert "min rows 4" in scored.stdout and "cool-down 10" in scored.stdout
    assert "event" in pd.read_json(tmp_path / "s.jsonl", lines=True)


def test_train_rows_apply_to_each_series(tmp_path):
    rng = np.random.default_rng(5)
    frames = [pd.DataFrame({"machine": m, "ts": pd.date_range("2024-01-01", periods=300, freq="min"),
                            "x": rng.normal(level, 1, 300)}) for m, level in (("a", 0), ("b", 100))]
    path = tmp_path / "fleet.csv"
    pd.concat(frames).to_csv(path, index=False)
    model_path = tmp_path / "m.vigil"
    result = vigil("train", path, "-o", model_path, "--series-column", "machine",
                   "--train-rows", 100, "--method", "robust_zscore")
    assert result.exit_code == 0, result.output
    assert load(model_path).training_["rows"] == 200  # 100 of each machine, not 100 of the first


@pytest.mark.parametrize("args, message", [
    (["detect"], "error: Missing argument 'data'. (see 'vigil detect --help')"),
    (["detect", "x.csv", "--show", "abc"], "error: Invalid value for '--show'"),
    (["nope"], "error: No such command 'nope'. (see 'vigil --help')"),
])
def test_usage_errors_of_the_command_are_one_line_and_exit_2(args, message):
    done = subprocess.run([sys.executable, "-m", "vigil", *args], capture_output=True, text=True)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith(message)


def test_train_per_series_saves_one_model_per_series_and_score_routes_rows(tmp_path):
    rng = np.random.default_rng(0)
    frames = []
    for k, (level, noise) in enumerate([(10, 1), (1000, 20)]):
        value = level + rng.normal(0, noise, 800)
        value[600:605] += 10 * noise  # large for this machine, small against the other
        frames.append(pd.DataFrame({"time": pd.date_range("2024-01-01", periods=800,
                                                           freq="min"),
                                    "machine": f"m{k}", "value": value}))
    pd.concat(frames).to_csv(tmp_path / "fleet.csv", index=False)
    trained = vigil("train", tmp_path / "fleet.csv", "-o", tmp_path / "fleet.vigil",
                    "--series-column", "machine", "--per-series", "--train-rows", 500,
                    "--method", "robust_zscore", "--jobs", 2)
    assert trained.exit_code == 0, trained.output
    assert "2 models (robust_zscore, one per series of machine" in " ".join(trained.stdout.split())
    scored = vigil("score", tmp_path / "fleet.csv", "--model", tmp_path / "fleet.vigil",
                   "--out", tmp_path / "scores.csv")
    assert scored.exit_code == 0, scored.output
    flagged = pd.read_csv(tmp_path / "scores.csv").query("is_anomaly")
    assert set(flagged["machine"]) == {"m0", "m1"}  # each machine's jump, against its normal
    wrong = vigil("train", tmp_path / "fleet.csv", "-o", tmp_path / "x.vigil", "--unseen",
                  "fallback")
    assert wrong.exit_code == 2 and "--unseen needs --per-series" in wrong.stderr


def test_a_supervised_method_learns_the_label_column_and_says_when_it_cannot(tmp_path):
    frame = pd.read_csv(SENSORS).drop(columns="anomaly_kind")  # with its labelled anomalies
    frame.to_csv(tmp_path / "plant.csv", index=False)
    model = tmp_path / "rf.vigil"
    trained = vigil("train", tmp_path / "plant.csv", "--method", "random_forest",
                    "--label-column", "label", "-p", "n_estimators=20", "-o", model, "--quiet")
    assert trained.exit_code == 0, trained.output
    assert "label" not in load(model).channels_
    clean = frame[frame["label"] == 0].drop(columns="label")
    clean.to_csv(tmp_path / "clean.csv", index=False)
    refused = vigil("train", tmp_path / "clean.csv", "--method", "random_forest", "-o", model)
    assert refused.exit_code == 2
    assert "supervised" in refused.stderr and "--label-column" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_a_deep_method_trains_from_the_command_line(tmp_path):
    model = tmp_path / "ae.vigil"
    trained = vigil("train", SENSORS, "--method", "autoencoder", "-p", "epochs=2",
                    "--train-rows", "3000", "-o", model, "--quiet")
    assert trained.exit_code == 0, trained.output
    scored = vigil("score", SENSORS, "--model", model, "--out", tmp_path / "s.csv", "--quiet")
    assert scored.exit_code == 0, scored.output
    assert len(pd.read_csv(tmp_path / "s.csv")) == len(read(SENSORS).frame)
