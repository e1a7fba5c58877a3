"""The self-contained HTML report: its contents, that it needs no network, and that it renders
in headless Chromium with no console errors and every plot decoded."""

import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import vigil.report_html as report_html
from vigil.alarms import event_table
from vigil.cli import app
from vigil.errors import DataError
from vigil.evaluation.range_based import POINT_ADJUST_NOTE
from vigil.model import Model
from vigil.report_html import write_report

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
EXAMPLE = str(DATASETS / "examples" / "sensor_data.csv")
SKAB = str(DATASETS / "skab" / "valve1__2.csv")
ODD = "<b>temp</b> & \"co\""  # a column name that must be escaped


@pytest.fixture(scope="module")
def detected():
    rng = np.random.default_rng(0)
    n = 600
    frame = pd.DataFrame({
        "time": pd.date_range("2024-01-01", periods=n, freq="min"),
        ODD: rng.normal(20, 1, n),
        "pressure": rng.normal(1000, 5, n),
        "label": np.zeros(n, int),
    })
    frame.loc[450:455, ODD] += 15
    frame.loc[520, "pressure"] += 60
    frame.loc[450:455, "label"] = 1
    model = Model("robust_zscore", threshold="fixed:6", label_column="label").fit(frame.iloc[:400])
    return model, model.detect(frame)


def _html(tmp_path, detected, **kwargs):
    model, result = detected
    path = write_report(result, tmp_path / "report.html", model=model, source="data/<x>.csv",
                        **kwargs)
    return path, path.read_text(encoding="utf-8")


def test_report_shows_summary_threshold_plot_and_events(tmp_path, detected):
    _, result = detected
    path, text = _html(tmp_path, detected)
    assert path.name == "report.html"
    assert text.count('src="data:image/png;base64,') == 1
    assert "fixed(value=6" in text and "a score above <b>6</b>" in text
    events = event_table(result)
    assert len(events) == 2 and list(events["rows"]) == [6, 1]
    assert list(events["driver"]) == [ODD, "pressure"]
    assert "Anomaly events" in text and "2024-01-01 07:30:00" in text  # row 450's time
    assert "<td>2024-01-01 07:35:00</td>" in text and '<td class="num">5m</td>' in text  # its end
    assert _shown_event_count(text) == 2 and "<dt>alarm rules</dt><dd>exit level 1," in text
    assert "No anomaly events" not in text and "Metrics" not in text
    # every user string is escaped
    assert ODD not in text and "&lt;b&gt;temp&lt;/b&gt; &amp; &quot;co&quot;" in text
    assert "data/&lt;x&gt;.csv" in text and "<x>" not in text


def test_report_is_self_contained(tmp_path, detected):
    _, text = _html(tmp_path, detected, metrics={"VUS-PR": 0.5})
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text, re.I)
    assert not re.search(r"<script[^>]*\bsrc\b", text, re.I)
    assert not re.search(r"<link\b|@import|url\(", text, re.I)
    assert "Content-Security-Policy" in text and "default-src 'none'" in text


def test_metrics_with_pa_f1_marked_optimistic(tmp_path, detected):
    metrics = {"VUS-PR": 0.51234, "PA-F1": 0.9, "sliding window": 125}
    _, text = _html(tmp_path, detected, metrics=metrics, notes=["metrics on rows 400..599"])
    assert "Metrics" in text and "0.5123" in text and "PA-F1 (optimistic)" in text
    assert ">125<" in text and "metrics on rows 400..599" in text
    assert POINT_ADJUST_NOTE.split(":")[0] in text


def _shown_event_count(text):
    """The number on the report's "anomaly events" card."""
    card = re.search(r"<span>anomaly events</span><b>([\d,]+)</b>", text)
    return int(card.group(1).replace(",", ""))


def test_events_are_the_models_events_per_series(tmp_path):
    frame = pd.DataFrame({
        "machine": ["a"] * 4 + ["b"] * 4,
        "t": pd.to_datetime([3, 0, 1, 2, 0, 1, 2, 3], unit="h"),
        "x": [0.0] * 8,
        "score": [9.0, 1, 8, 7, 5, 1, 1, 6],
        "threshold": 4.0,
        # b: hours 0 to 3 are one event, its gap rows (hours 1, 2) included, as merge_gap does
        "event": [1, 0, 1, 1, 2, 2, 2, 2],
    })
    frame["is_anomaly"] = frame["event"] > 0
    frame["driver"] = "x"
    frame.attrs["vigil"] = {"time_column": "t", "channels": ["x"], "label_column": None,
                            "series_column": "machine", "method": "zscore"}
    text = write_report(frame, tmp_path / "r.html").read_text()
    assert "<th>series</th>" in text and "Nothing to plot" not in text
    rows = re.findall(r"<tr><td class=\"num\">(\d)</td><td>(\w)</td><td>([^<]*)</td>"
                      r"<td>([^<]*)</td><td class=\"num\">([^<]*)</td>", text)
    assert rows == [("1", "a", "1970-01-01 01:00:00", "1970-01-01 03:00:00", "2h"),
                    ("2", "b", "1970-01-01 00:00:00", "1970-01-01 03:00:00", "3h")]
    assert _shown_event_count(text) == 2


def test_a_frame_without_events_is_refused(tmp_path, detected):
    _, result = detected
    with pytest.raises(DataError, match="no 'event' column"):
        write_report(result.drop(columns="event"), tmp_path / "r.html")


def test_many_events_are_capped_with_a_note(tmp_path, detected, monkeypatch):
    monkeypatch.setattr(report_html, "MAX_EVENTS", 1)
    _, text = _html(tmp_path, detected)
    assert "Showing the 1 events with the highest peak score of 2" in text
    assert text.count('<td class="num">1</td>') >= 1 and '<td class="num">2</td>' not in text


def test_no_anomalies(tmp_path, detected):
    model, result = detected
    quiet = result.assign(is_anomaly=False, event=0)
    text = write_report(quiet, tmp_path / "r.html", model=model).read_text()
    assert "No anomaly events" in text and _shown_event_count(text) == 0


def _chromium(binary, tmp_path, *args):
    return subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}",
         "--enable-logging=stderr", "--v=0", *args],
        capture_output=True, text=True, timeout=120)


def test_report_renders_in_headless_chromium(tmp_path, detected, chromium):
    path, _ = _html(tmp_path, detected, metrics={"VUS-PR": 0.5, "PA-F1": 0.9})
    url = path.resolve().as_uri()
    done = _chromium(chromium, tmp_path, "--dump-dom", url)
    assert done.returncode == 0, done.stderr[-3000:]
    console = [line for line in done.stderr.splitlines()
               if ":CONSOLE" in line or "Uncaught" in line]
    assert console == [], "\n".join(console)
    marked = re.search(r'data-images-ok="(\d+)/(\d+)"', done.stdout)
    assert marked, done.stdout[:2000]
    assert int(marked.group(2)) >= 1 and marked.group(1) == marked.group(2)  # all decoded
    assert "Anomaly events" in done.stdout and "PA-F1 (optimistic)" in done.stdout
    # the rendered page shows as many events, on its card and in its table, as the model found
    expected = len(event_table(detected[1]))
    events_body = done.stdout.split('<table class="events">')[1].split("</table>")[0]
    assert _shown_event_count(done.stdout) == expected == events_body.count("<tr>") - 1

    shot = tmp_path / "report.png"
    done = _chromium(chromium, tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", url)
    assert done.returncode == 0 and shot.stat().st_size > 10_000, done.stderr[-3000:]
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size == (1280, 2000)
        colours = image.convert("RGB").resize((64, 100)).getcolors(64 * 100)
        assert colours is None or len(colours) > 20  # a page with plots, not a blank one


runner = CliRunner()


def test_detect_writes_a_report(tmp_path):
    report = tmp_path / "x.html"
    result = runner.invoke(app, ["detect", EXAMPLE, "--report", str(report), "--quiet"])
    assert result.exit_code == 0, result.output
    text = report.read_text()
    assert '<table class="events">' in text and "sensor_data.csv" in text
    assert "data:image/png;base64," in text and "Metrics" not in text


def test_evaluate_writes_a_report_with_metrics(tmp_path):
    report = tmp_path / "y.html"
    result = runner.invoke(app, ["evaluate", SKAB, "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert f"Report written to {report}" in result.stdout.replace("\n", "")
    text = report.read_text()
    assert '<table class="metrics">' in text and "VUS-PR" in text and "PA-F1 (optimistic)" in text
    assert '<table class="events">' in text and "metrics on rows 400..1074" in text
    assert "labelled anomaly rows" in text
