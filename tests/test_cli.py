"""The vigil command line, run as a user runs it: exit codes, one-line errors, outputs."""

import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from vigil import __version__
from vigil.cli import app

EXAMPLE = "../shared/datasets/examples/sensor_data.csv"
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
    ],
)
def test_user_errors_are_one_line_with_exit_code_2(args, message):
    result = vigil(*args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_debug_shows_the_traceback():
    result = vigil("--debug", "detect", "nowhere.csv")
    assert result.exit_code != 0 and result.exception is not None


def test_demo_writes_table_plot_and_model(tmp_path):
    result = vigil("demo", "--out-dir", tmp_path)
    assert result.exit_code == 0, result.output
    for name in ("scores.csv", "anomalies.png", "model.vigil"):
        assert (tmp_path / name).exists()
    assert str(tmp_path / "anomalies.png") in result.stdout.replace("\n", "")
