"""vigil evaluate and vigil bench, run as a user runs them."""

from typer.testing import CliRunner

from vigil.cli import app

SKAB = "../shared/datasets/skab/valve1__2.csv"
runner = CliRunner()


def test_evaluate_takes_the_training_part_from_the_manifest(tmp_path):
    result = runner.invoke(app, ["evaluate", SKAB, "--plot", str(tmp_path / "eval.png")])
    assert result.exit_code == 0, result.output
    assert "fitted on rows 0..399" in result.stdout
    assert "VUS-PR" in result.stdout and "PA-F1 (optimistic)" in result.stdout
    assert (tmp_path / "eval.png").exists()


def test_evaluate_needs_labels_and_a_training_part(tmp_path):
    example = "../shared/datasets/examples/sensor_data.csv"
    assert "no label column 'label'" in runner.invoke(app, ["evaluate", example]).stderr
    two = runner.invoke(app, ["evaluate", SKAB, "--train-rows", "10", "--train-fraction", "0.5"])
    assert two.exit_code == 2 and "only one of" in two.stderr


def test_bench_on_a_collection(tmp_path):
    result = runner.invoke(app, ["bench", "../shared/datasets/skab", "--methods", "robust_zscore",
                                 "--jobs", "2", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "## skab" in (tmp_path / "summary.md").read_text()
