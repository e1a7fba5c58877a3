"""The ``vigil evaluate`` and ``vigil bench`` commands: how good a method is on labeled data,
with honest numbers: first the quality of the model's own flags (what a user acts on), then the
TSB-AD metrics, PA-F1 marked optimistic and oracle F1s marked as such."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer
from rich.table import Table

from vigil.detectors import DEFAULT_METHOD
from vigil.cli.app import (AlarmsOpt, ChannelsOpt, CooldownOpt, EngineOpt, ExitLevelOpt,
                           MasterOpt, MergeGapOpt, MethodOpt, MinRowsOpt, ParamOpt, PlotOpt,
                           QuietOpt, ReportOpt, SourceArg, ThresholdOpt, TimeOpt, _alarms, _fit,
                           _params, _read, _roles, _said, _training_part, app)
from vigil.cli.output import STATE, fail, fail_partly, out, progress_bar, step, user_errors
from vigil.errors import ConfigError
from vigil.report import rules_text


@app.command()
def evaluate(
    data: SourceArg,
    label_column: Annotated[str, typer.Option("--label-column", help="The 0/1 label column.")] = "label",
    method: MethodOpt = DEFAULT_METHOD,
    threshold: ThresholdOpt = "pot",
    param: ParamOpt = None,
    train_rows: Annotated[Optional[int], typer.Option("--train-rows", min=1, help="Fit on the first N rows (time order); evaluate the rest.")] = None,
    train_until: Annotated[Optional[str], typer.Option("--train-until", help="Fit on rows up to this time (inclusive); evaluate the rest. Times with UTC offsets are compared in UTC (give the offset, e.g. 2024-03-01T00:00+01:00).")] = None,
    train_fraction: Annotated[Optional[float], typer.Option("--train-fraction", min=0.0, max=1.0, help="Fit on this leading fraction of the rows; evaluate the rest.")] = None,
    time_column: TimeOpt = None,
    channels: ChannelsOpt = None,
    plot_path: PlotOpt = None,
    report_path: ReportOpt = None,
    alarms: AlarmsOpt = "default",
    merge_gap: MergeGapOpt = None,
    min_rows: MinRowsOpt = None,
    cooldown: CooldownOpt = None,
    exit_level: ExitLevelOpt = None,
    engine: EngineOpt = "local",
    master: MasterOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """How good a model is on labeled DATA: fit on its training part, judge the rest.

    Printed first, the metrics of the model's own flags (share flagged, precision, recall, F1 and its
    share of the oracle F1, events caught, false alarms per 1k rows and per day, event-F1,
    detection delay in rows), then the threshold-free ones: VUS-PR (what TSB-AD ranks by),
    VUS-ROC, AUC-PR, AUC-ROC, oracle F1s.

    The training part is --train-rows, --train-until or --train-fraction, or else the
    train_rows of the file's entry in a manifest.json beside it (shared/datasets format). The
    flags are the model's events, by the alarm rules (--alarms and the rule options).

    With --engine spark the model is fitted and scores every row on Spark; the metrics are then
    computed on the driver, from each row's time, score, flag and label (at most 20 million
    rows), and equal the local engine's.
    """
    STATE["quiet"] = quiet
    with user_errors():
        rules = _alarms(alarms, merge_gap, min_rows, cooldown, exit_level)
        from vigil.cli.spark import check_engine

        check_engine(engine, master, None, None)
        if engine == "spark":
            if plot_path is not None or report_path is not None:
                raise ConfigError("--plot and --report are for the local engine in evaluate; "
                                  "with --engine spark, use vigil detect --plot.")
            from vigil.cli.spark import spark_evaluate

            settings = dict(method=method, threshold=threshold, alarms=rules, **_params(param))
            report, model, rows, n = spark_evaluate(
                data, master=master, roles=_roles(time_column, channels, label_column, None),
                fit_settings=settings,
                train_rows=lambda count, times: _train_rows(Path(data), count, times, train_rows,
                                                            train_until, train_fraction))
            _metrics_table(report, model, rows, n)
            return
        data = Path(data)
        dataset = _read(data, _roles(time_column, channels, label_column, None))
        if dataset.labels() is None:
            fail(f"{data}: no label column {label_column!r}")
        rows = _train_rows(data, len(dataset), lambda: (
            dataset.frame[dataset.time_column] if dataset.time_column else None),
            train_rows, train_until, train_fraction)
        model = _fit(method, threshold, _params(param), _training_part(dataset, rows), rules)
        with progress_bar(f"Scoring {len(dataset)} rows") as callback:
            result = model.detect(dataset, progress=callback)
        report = _metrics(dataset, result, rows)
        _metrics_table(report, model, rows, len(dataset))
        if plot_path is not None:
            from vigil.report import plot

            with step(f"Plotting to {plot_path}"):
                plot(result, plot_path, title=f"{method}: VUS-PR {report['VUS-PR']:.3f} on rows "
                     f"{rows}..{len(dataset) - 1} (labeled anomalies shaded)")
            _said(f"Plot written to {plot_path}")
        if report_path is not None:
            from vigil.report_html import write_report

            with step(f"Writing report {report_path}"):
                write_report(result, report_path, model=model, metrics=report, source=data,
                             notes=[f"Fitted on rows 0..{rows - 1} (time order); metrics on rows "
                                    f"{rows}..{len(dataset) - 1}."])
            _said(f"Report written to {report_path}")


def _train_rows(path: Path, n: int, times: Any, rows: int | None, until: str | None,
                fraction: float | None) -> int:
    """The number of leading rows (time order) to fit on, from exactly one source, of ``n``
    rows; ``times()`` gives their times (a pandas Series, or None without a time column)."""
    given = [x is not None for x in (rows, until, fraction)]
    if sum(given) > 1:
        fail("give only one of --train-rows, --train-until and --train-fraction")
    if rows is not None:
        chosen = rows
    elif fraction is not None:
        chosen = int(round(fraction * n))
    elif until is not None:
        import pandas as pd

        times = times()
        if times is None:
            fail(f"{path}: --train-until needs a time column (none found; give --time-column)")
        try:
            limit = pd.Timestamp(until)
        except ValueError:
            fail(f"--train-until {until!r} is not a time")
        zone = times.dt.tz
        if zone is not None:  # times with offsets are read in UTC, and so is a naive limit
            limit = limit.tz_localize(zone) if limit.tzinfo is None else limit.tz_convert(zone)
        elif limit.tzinfo is not None:
            limit = limit.tz_convert("UTC").tz_localize(None)
        chosen = int((times <= limit).sum())  # rows are fitted in time order: the first ones
    else:
        chosen = _manifest_train_rows(path)
    if not 2 <= chosen < n:
        fail(f"{path}: the training part must leave rows to evaluate and have at least 2: got "
             f"{chosen} training rows of {n}")
    return chosen


def _manifest_train_rows(path: Path) -> int:
    from vigil.evaluation.bench import _manifest_series

    manifest = Path(path).parent / "manifest.json"
    if manifest.exists():
        for series in _manifest_series(manifest):
            if Path(series.path).name == Path(path).name:
                return series.train_rows
    fail(f"{path}: say which rows are for training: --train-rows N, --train-until TIME or "
         "--train-fraction F (or list the file in a manifest.json beside it)")
    raise AssertionError  # fail() exits


def _metrics(dataset: Any, result: Any, rows: int) -> dict[str, float]:
    """The model's own flags judged first (what a user acts on), then TSB-AD's threshold-free
    metrics, all on the evaluation rows in time order."""
    order = dataset.order
    # a pandas Series, not .to_numpy(): that keeps timezone-aware times convertible to UTC
    times = dataset.frame[dataset.time_column].iloc[order[rows:]] if dataset.time_column else None
    return metrics_of(result["score"].to_numpy()[order], dataset.labels()[order],
                      result["is_anomaly"].to_numpy()[order], dataset.values()[order][:, 0],
                      rows, times)


def metrics_of(score: np.ndarray, label: np.ndarray, flagged: np.ndarray,
               first_channel: np.ndarray, rows: int, times: Any = None) -> dict[str, float]:
    """:func:`_metrics` from each row's score, label, flag and first channel value, in time
    order; the rows from ``rows`` on are judged (``times``: theirs, or None)."""
    from vigil.evaluation import dominant_period, evaluate_scores, flag_metrics

    with step("Computing metrics"):
        window = dominant_period(first_channel)
        scores = evaluate_scores(score[rows:], label[rows:], window)
        report = flag_metrics(flagged[rows:], label[rows:], oracle_f1=scores["Standard-F1"],
                              times=times)
    report.update(scores)
    report["sliding window"] = window
    return report


def _metrics_table(report: dict[str, float], model: Any, rows: int, n: int) -> None:
    """The metrics as a table under a line saying what was fitted and evaluated (with
    ``--quiet``, one JSON object)."""
    from vigil.evaluation.flags import FLAG_METRICS
    from vigil.evaluation.metrics import ORACLE_NOTE
    from vigil.evaluation.range_based import POINT_ADJUST_NOTE

    if STATE["quiet"]:
        # NaN (say, no delay when no event was caught) is not JSON: written as null; one
        # unwrapped line with no markup, so a key with spaces is never broken by the console
        report = {k: None if np.isnan(v) else float(v) for k, v in report.items()}
        out.print(json.dumps(report), soft_wrap=True, markup=False, emoji=False)
        return
    out.print(f"{model.method}: fitted on rows 0..{rows - 1}, evaluated on {rows}..{n - 1}; "
              f"alarm rules: {rules_text(model.alarms)}", soft_wrap=True)
    table = Table()
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in report.items():
        shown = f"{name} (optimistic)" if name == "PA-F1" else name
        table.add_row(shown, f"{value:.4f}" if isinstance(value, float) else str(value),
                      end_section=name == FLAG_METRICS[-1])
    out.print(table)
    out.print(f"[dim]{POINT_ADJUST_NOTE}\n{ORACLE_NOTE}[/dim]")


@app.command()
def bench(
    folder: Annotated[Path, typer.Argument(help="A folder of labeled series with manifest.json (shared/datasets format), or a folder of such collections.", show_default=False)],
    methods: Annotated[str, typer.Option("--methods", help="Comma-separated methods, parameters in brackets: iqr,isolation_forest(window=10).")] = "zscore,robust_zscore,iqr,mahalanobis,isolation_forest",
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Processes in parallel.")] = max(1, (os.cpu_count() or 2)),
    timeout: Annotated[float, typer.Option("--timeout", min=1.0, help="Seconds one method may take on one series before it is stopped.")] = 180.0,
    threshold: ThresholdOpt = "pot",
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for series.csv and summary.md.")] = Path("vigil-bench"),
    alarms: AlarmsOpt = "default",
    merge_gap: MergeGapOpt = None,
    min_rows: MinRowsOpt = None,
    cooldown: CooldownOpt = None,
    exit_level: ExitLevelOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Run methods on every labeled series of FOLDER (BASELINES.md protocol).

    Writes per-series results and per-collection tables: VUS-PR, the model's own flags (share flagged,
    precision, recall, F1 and its share of the oracle F1, events caught, false alarms per 1k
    rows and per day, event-F1, delay), VUS-ROC, AUC-PR, AUC-ROC, event and range F1, seconds
    per million rows.

    Every run is attempted and the results are written even when some fail or time out (a
    mean over the successes only is marked "(partial)"). Exit codes: 0 every run succeeded;
    2 a usage or data error; 3 some runs failed or timed out (results written)."""
    STATE["quiet"] = quiet
    with user_errors():
        from vigil.evaluation.bench import discover, parse_methods, run_bench, write_results
        from vigil.thresholds import make_threshold

        series = discover(folder)
        chosen = parse_methods(methods)
        # a mistyped threshold or rule is one usage error, not a failed run each
        make_threshold(threshold)
        rules = _alarms(alarms, merge_gap, min_rows, cooldown, exit_level)
        with progress_bar(f"{len(chosen)} methods x {len(series)} series") as callback:
            results = run_bench(series, chosen, jobs=jobs, timeout=timeout, threshold=threshold,
                                alarms=rules, progress=callback)
        command = "vigil bench " + " ".join(sys.argv[2:]) if sys.argv[1:2] == ["bench"] else \
            f"vigil bench {folder} --methods {methods}"
        summary = write_results(results, out_dir, command)
        failed = results[results["status"] != "ok"]
        if not STATE["quiet"]:
            out.print(summary.read_text(), soft_wrap=True, markup=False)  # rows stay Markdown
            for _, row in failed.iterrows():
                out.print(f"[yellow]{row['status']}[/yellow] {row['method']} on "
                          f"{row['collection']}/{row['series']}: {row.get('error', '')}")
        _said(f"Per-series results: {out_dir / 'series.csv'}; tables: {summary}")
        if len(failed):
            fail_partly(f"{len(failed)} of {len(results)} runs failed or timed out (listed in "
                        f"{out_dir / 'series.csv'})")
