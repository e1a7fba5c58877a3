"""The ``vigil`` typer app and what its commands share: the common options, reading and
fitting, and printing a model's events (``_report``)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer

from vigil import __version__
from vigil.alarms import Alarms, make_alarms
from vigil.detectors import parse_param_value
from vigil.errors import ConfigError
from vigil.cli.output import STATE, event_report, fail, out, progress_bar, step, training_bar

app = typer.Typer(
    name="vigil",
    help="Find anomalies in sensor and metric time series (CSV, Parquet, JSON lines).",
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="markdown",
    pretty_exceptions_enable=False,
)

# -- shared options ----------------------------------------------------------------------------
DataArg = Annotated[Path, typer.Argument(help="Data file: CSV (delimiter sniffed), Parquet or JSON lines.", show_default=False)]
SourceArg = Annotated[str, typer.Argument(help="Data: a CSV (delimiter sniffed), Parquet or JSON lines file; with --engine spark also a folder, a glob or a URI (hdfs://, s3a://, ...).", show_default=False)]
EngineOpt = Annotated[str, typer.Option("--engine", metavar="local|spark", help="local: this process (default); spark: Apache Spark (vigil[spark], Java 17), the same scores; results to a Parquet folder (--out).")]
MasterOpt = Annotated[Optional[str], typer.Option("--master", help="With --engine spark: the Spark master URL (spark://HOST:7077, yarn, k8s://...; default local[*] on 127.0.0.1).")]
PartitionOpt = Annotated[Optional[str], typer.Option("--partition-by", metavar="day", help="With --engine spark: write --out partitioned by the day of the time column.")]
ExactOpt = Annotated[bool, typer.Option("--exact", help="With --engine spark: fit zscore, robust_zscore and iqr with exact quantiles (default: Spark's quantile sketch, each within rows/10,000 ranks of the exact one).")]
KeepGoingOpt = Annotated[bool, typer.Option("--keep-going", help="With --engine spark: a series that cannot be fitted or scored (a row without a time, a channel with no value, no model for it) is left out and the job goes on; the failed series are listed, written beside --out (scores.parquet: scores_failures.csv), and the exit code is 3.")]
PerSeriesOpt = Annotated[bool, typer.Option("--per-series", help="Fit one model per series (--series-column), each on its own rows, saved together in one file; every row is scored by its series' model.")]
UnseenOpt = Annotated[str, typer.Option("--unseen", metavar="error|fallback", help="With --per-series: a series not seen in training is an error, or (fallback) scored by one more model fitted on all series together.")]
JobsOpt = Annotated[int, typer.Option("--jobs", "-j", min=1, help="With --per-series: fit this many series at once, in worker processes.")]
TimeOpt = Annotated[Optional[str], typer.Option("--time-column", help="Timestamp column (default: found by name or type; none: row order).")]
ChannelsOpt = Annotated[Optional[str], typer.Option("--channels", help="Comma-separated channel columns (default: every numeric column).")]
LabelOpt = Annotated[Optional[str], typer.Option("--label-column", help="0/1 label column: kept in the output and plot, never used as a channel (default: a 0/1 column named label, anomaly, is_anomaly, outlier, ...).")]
SeriesOpt = Annotated[Optional[str], typer.Option("--series-column", help="Column naming the series (machine, host) when a file holds several; each is scored on its own.")]
OutOpt = Annotated[Optional[Path], typer.Option("--out", "-O", help="Write every row's score and event number (0: none) to this file (.csv, .parquet or .jsonl).")]
PlotOpt = Annotated[Optional[Path], typer.Option("--plot", help="Write a PNG: each channel with anomalies in red, the score and threshold beneath, events shaded.")]
ReportOpt = Annotated[Optional[Path], typer.Option("--report", help="Write a self-contained HTML report: plots, threshold, a table of anomaly events, metrics.")]
ShowOpt = Annotated[int, typer.Option("--show", help="Anomaly events to print in the table; 0: only the summary line (all rows go to --out).")]
FailOpt = Annotated[bool, typer.Option("--fail-on-anomaly", help="Exit with code 1 when any anomaly event is found (for scripts and CI).")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Print no table or progress; errors and warnings still go to stderr.")]
MethodOpt = Annotated[str, typer.Option("--method", "-m", help="Detection method; `vigil methods` lists them.")]
ThresholdOpt = Annotated[str, typer.Option("--threshold", help="pot (extreme-value fit on training scores, default), pot:RISK, quantile[:q], sigma[:k], fixed:VALUE, dspot (adaptive, follows drift).")]
ParamOpt = Annotated[Optional[list[str]], typer.Option("--param", "-p", help="A method parameter as name=value; repeat for several (e.g. -p window=30 -p n_estimators=200).")]
TrainRowsOpt = Annotated[Optional[int], typer.Option("--train-rows", min=1, help="Fit on the first N rows (in time order) of each series only, then score all rows. Default: fit on all rows.")]
# alarm rules: how rows above the threshold become events; the defaults shown are Alarms' own
_DEFAULT_RULES = {name: f.default for name, f in Alarms.__dataclass_fields__.items()}
AlarmsOpt = Annotated[str, typer.Option("--alarms", metavar="default|off", help="default: the alarm rules below turn rows above the threshold into events; off: each run of rows above it is an event.")]
MergeGapOpt = Annotated[Optional[int], typer.Option("--merge-gap", help=f"Rows an event may dip below its exit level and still go on as one event (default {_DEFAULT_RULES['merge_gap']}).")]
MinRowsOpt = Annotated[Optional[int], typer.Option("--min-rows", help=f"Rows above the threshold an event needs, unless its peak is far above it (default {_DEFAULT_RULES['min_rows']}).")]
CooldownOpt = Annotated[Optional[int], typer.Option("--cooldown", help=f"Rows after an event during which no new event opens (default {_DEFAULT_RULES['cooldown']}).")]
ExitLevelOpt = Annotated[Optional[float], typer.Option("--exit-level", help=f"An open event lasts while the score stays above this level: 0 = the median training score, 1 = the threshold (default {_DEFAULT_RULES['exit_level']:g}).")]




def _version(value: bool) -> None:
    if value:
        out.print(f"vigil {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the full traceback of an error.")] = False,
) -> None:
    """Find anomalies in sensor and metric time series.

    Quick start: **vigil demo**, or **vigil detect data.csv --plot anomalies.png**.
    """
    STATE["debug"] = debug



def _params(pairs: list[str] | None) -> dict[str, Any]:
    """Parse ``name=value`` pairs; values become int, float, None or text."""
    params: dict[str, Any] = {}
    for pair in pairs or []:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            fail(f"--param {pair!r}: expected name=value, e.g. -p window=30")
        params[name.strip()] = parse_param_value(text.strip())
    return params


def _alarms(spec: str, merge_gap: int | None, min_rows: int | None, cooldown: int | None,
            exit_level: float | None) -> dict[str, Any]:
    """The alarm rules for ``Model(alarms=...)``: the ``spec`` set (default, off) with the rules
    given on the command line replacing its own; invalid values raise ``ConfigError``."""
    if spec not in ("default", "off"):
        raise ConfigError(f"--alarms must be default or off. Got {spec!r}.")
    rules = make_alarms(spec).to_dict()
    given = {"merge_gap": merge_gap, "min_rows": min_rows, "cooldown": cooldown,
             "exit_level": exit_level}
    rules.update({name: value for name, value in given.items() if value is not None})
    make_alarms(rules)  # checked now: one usage error before any data is read
    return rules


def _check_show(show: int) -> None:
    """Refuse a negative ``--show`` (0 prints only the summary line)."""
    if show < 0:
        fail(f"--show {show}: give how many events to print, 0 or more")


def _roles(time_column: str | None, channels: str | None, label_column: str | None,
           series_column: str | None) -> dict[str, Any]:
    names = [c.strip() for c in channels.split(",") if c.strip()] if channels else None
    return {"time_column": time_column, "channels": names, "label_column": label_column,
            "series_column": series_column}


def _read(path: Path, roles: dict[str, Any]) -> Any:
    from vigil.io import read

    with step(f"Reading {path}"):
        return read(path, **roles)


def _training_part(data: Any, rows: int | None) -> Any:
    """The first ``rows`` rows in time order of each series (all rows when None)."""
    if rows is None or rows >= len(data):
        return data
    from vigil.io import from_frame
    from vigil.policy import series_codes

    chosen = data.order[:rows]
    codes = series_codes(data.frame, data.series_column)
    if codes is not None:  # data.order runs series by series: take each one's first rows
        ordered = codes[data.order]
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        rank = np.arange(len(ordered)) - np.repeat(starts, np.diff(np.r_[starts, len(ordered)]))
        chosen = data.order[rank < rows]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # already said when the whole file was read
        return from_frame(data.frame.iloc[chosen], channels=data.channels,
                          time_column=data.time_column, label_column=data.label_column,
                          series_column=data.series_column, source=data.source)


def _fit(method: str, threshold: str, params: dict[str, Any], data: Any,
         alarms: str | dict[str, Any] = "default", per_series: dict[str, Any] | None = None
         ) -> Any:
    """A ``Model`` with these settings, fitted on ``data``; with ``per_series`` (``unseen``,
    ``jobs``) a ``ModelBundle`` of one per series."""
    if per_series is not None:
        from vigil.bundle import ModelBundle

        if not data.series_column:
            raise ConfigError("--per-series needs --series-column: the column naming each "
                              "series.")
        bundle = ModelBundle(method, series_column=data.series_column, threshold=threshold,
                             alarms=alarms, **per_series, **params)
        with progress_bar(f"Fitting {method} on each series") as callback:
            return bundle.fit(data, progress=callback)
    from vigil.model import Model

    model = Model(method, threshold=threshold, alarms=alarms, **params)
    if not model.detector.reports_progress:
        with step(f"Fitting {method} on {len(data)} rows"):
            return model.fit(data)
    from vigil.detectors.base import FIT_PROGRESS

    with training_bar(f"Training {method} on {len(data)} rows") as callback:
        token = FIT_PROGRESS.set(callback)
        try:
            return model.fit(data)
        finally:
            FIT_PROGRESS.reset(token)


def _report(model: Any, data: Any, out_path: Path | None, plot_path: Path | None, show: int,
            fail_on_anomaly: bool, report_path: Path | None = None) -> Any:
    """Score every row, print the events, write the scores file and plot; set the exit code.
    Returns the scored rows (``model.detect``)."""
    with progress_bar(f"Scoring {len(data)} rows") as callback:
        result = model.detect(data, progress=callback)
    event_report(result, model.alarms, show)
    if out_path is not None:
        from vigil.io import write_scores

        with step(f"Writing {out_path}"):
            write_scores(result, out_path)
        _said(f"Scores of all {len(result)} rows written to {out_path}")
    _pictures(result, model, plot_path, report_path, data.source)
    if fail_on_anomaly and bool(result["is_anomaly"].any()):
        raise typer.Exit(1)
    return result


def _pictures(result: Any, model: Any, plot_path: Path | None, report_path: Path | None,
              source: str, what: str | None = None) -> None:
    """Write the PNG plot and the HTML report of a ``detect`` result where asked; ``what``
    says which rows they show when not all."""
    if plot_path is not None:
        from vigil.report import plot

        with step(f"Plotting to {plot_path}"):
            plot(result, plot_path)
        _said(f"Plot{f' of {what}' if what else ''} written to {plot_path}")
    if report_path is not None:
        from vigil.report_html import write_report

        with step(f"Writing report {report_path}"):
            write_report(result, report_path, model=model, source=source)
        _said(f"Report{f' on {what}' if what else ''} written to {report_path}")


def _said(text: str) -> None:
    if not STATE["quiet"]:
        out.print(text)
