"""The commands that fit and flag: detect, train, score, methods, demo."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from vigil.cli.app import (AlarmsOpt, ChannelsOpt, CooldownOpt, EngineOpt, ExactOpt,
                           ExitLevelOpt, FailOpt, JobsOpt, KeepGoingOpt, LabelOpt, MasterOpt,
                           MergeGapOpt, MethodOpt, MinRowsOpt, OutOpt, ParamOpt, PartitionOpt,
                           PerSeriesOpt, PlotOpt, QuietOpt, ReportOpt, SeriesOpt, ShowOpt,
                           SourceArg, ThresholdOpt, TimeOpt, TrainRowsOpt, UnseenOpt,
                           _alarms, _check_show, _fit, _params, _read, _report, _roles, _said,
                           _training_part, app)
from vigil.cli.output import STATE, methods_table, user_errors
from vigil.cli.spark import check_engine
from vigil.detectors import DEFAULT_METHOD
from vigil.errors import ConfigError
from vigil.report import rules_text


@app.command()
def detect(
    data: SourceArg,
    method: MethodOpt = DEFAULT_METHOD,
    threshold: ThresholdOpt = "pot",
    param: ParamOpt = None,
    train_rows: TrainRowsOpt = None,
    time_column: TimeOpt = None,
    channels: ChannelsOpt = None,
    label_column: LabelOpt = None,
    series_column: SeriesOpt = None,
    per_series: PerSeriesOpt = False,
    unseen: UnseenOpt = "error",
    jobs: JobsOpt = 1,
    out_path: OutOpt = None,
    plot_path: PlotOpt = None,
    report_path: ReportOpt = None,
    show: ShowOpt = 20,
    fail_on_anomaly: FailOpt = False,
    alarms: AlarmsOpt = "default",
    merge_gap: MergeGapOpt = None,
    min_rows: MinRowsOpt = None,
    cooldown: CooldownOpt = None,
    exit_level: ExitLevelOpt = None,
    engine: EngineOpt = "local",
    master: MasterOpt = None,
    partition_by: PartitionOpt = None,
    keep_going: KeepGoingOpt = False,
    exact: ExactOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Fit a model on DATA and flag its anomaly events, in one go.

    Prints a table of the events (runs of rows above the threshold, joined and filtered by the
    alarm rules); --out writes every row's score and event number, --plot a PNG.
    """
    STATE["quiet"] = quiet
    _check_show(show)
    with user_errors():
        rules = _alarms(alarms, merge_gap, min_rows, cooldown, exit_level)
        check_engine(engine, master, partition_by, out_path, _spark_only(keep_going, exact))
        roles = _roles(time_column, channels, label_column, series_column)
        if engine == "spark":
            from vigil.cli.spark import spark_job

            return spark_job(data, master=master, roles=roles, fit_settings=dict(
                method=method, threshold=threshold, alarms=rules, train_rows=train_rows,
                **_spark_per_series(per_series, unseen, jobs), **_exact(exact),
                **_params(param)),
                out_path=out_path, partition_by=partition_by,
                plot_path=plot_path, report_path=report_path, show=show,
                fail_on_anomaly=fail_on_anomaly, keep_going=keep_going)
        dataset = _read(Path(data), roles)
        model = _fit(method, threshold, _params(param), _training_part(dataset, train_rows),
                     rules, _per_series(per_series, unseen, jobs))
        _report(model, dataset, out_path, plot_path, show, fail_on_anomaly, report_path)


@app.command()
def train(
    data: SourceArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the model (.vigil).")],
    method: MethodOpt = DEFAULT_METHOD,
    threshold: ThresholdOpt = "pot",
    param: ParamOpt = None,
    train_rows: TrainRowsOpt = None,
    time_column: TimeOpt = None,
    channels: ChannelsOpt = None,
    label_column: LabelOpt = None,
    series_column: SeriesOpt = None,
    per_series: PerSeriesOpt = False,
    unseen: UnseenOpt = "error",
    jobs: JobsOpt = 1,
    alarms: AlarmsOpt = "default",
    merge_gap: MergeGapOpt = None,
    min_rows: MinRowsOpt = None,
    cooldown: CooldownOpt = None,
    exit_level: ExitLevelOpt = None,
    engine: EngineOpt = "local",
    master: MasterOpt = None,
    keep_going: KeepGoingOpt = False,
    exact: ExactOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Fit a model on DATA (normal operation, ideally) and save it to a .vigil file.

    The file holds the detector, the threshold and the alarm rules: `vigil score` uses them all.
    """
    STATE["quiet"] = quiet
    with user_errors():
        rules = _alarms(alarms, merge_gap, min_rows, cooldown, exit_level)
        check_engine(engine, master, None, None, _spark_only(keep_going, exact))
        roles = _roles(time_column, channels, label_column, series_column)
        if engine == "spark":
            from vigil.cli.spark import spark_job

            return spark_job(data, master=master, roles=roles, fit_settings=dict(
                method=method, threshold=threshold, alarms=rules, train_rows=train_rows,
                **_spark_per_series(per_series, unseen, jobs), **_exact(exact),
                **_params(param)),
                save_to=output, keep_going=keep_going)
        dataset = _read(Path(data), roles)
        model = _fit(method, threshold, _params(param), _training_part(dataset, train_rows),
                     rules, _per_series(per_series, unseen, jobs))
        model.save(output)
        if per_series:
            return _said(f"{len(model.models_)} models ({method}, one per series of "
                         f"{model.series_column}; {len(model.channels_)} channels: "
                         f"{', '.join(model.channels_)}"
                         f"{'; with a fallback for new series' if model.fallback_ else ''}) "
                         f"written to {output}")
        _said(f"Model ({method}, {len(model.channels_)} channels: {', '.join(model.channels_)}; "
              f"threshold {model.threshold_:.4g} by {model.threshold.name}; alarm rules: "
              f"{rules_text(model.alarms)}) written to {output}")


@app.command()
def score(
    data: SourceArg,
    model_path: Annotated[Path, typer.Option("--model", help="A model file written by `vigil train`.")],
    time_column: TimeOpt = None,
    label_column: LabelOpt = None,
    out_path: OutOpt = None,
    plot_path: PlotOpt = None,
    show: ShowOpt = 20,
    fail_on_anomaly: FailOpt = False,
    engine: EngineOpt = "local",
    master: MasterOpt = None,
    partition_by: PartitionOpt = None,
    keep_going: KeepGoingOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Score DATA with a saved model and flag its anomaly events (outputs as detect).

    The model's own threshold and alarm rules decide.
    """
    STATE["quiet"] = quiet
    _check_show(show)
    with user_errors():
        check_engine(engine, master, partition_by, out_path, _spark_only(keep_going))
        if engine == "spark":
            from vigil.cli.spark import spark_job

            return spark_job(data, master=master, model_path=model_path, out_path=out_path,
                             partition_by=partition_by, plot_path=plot_path, show=show,
                             fail_on_anomaly=fail_on_anomaly, keep_going=keep_going)
        from vigil.model import load

        model = load(model_path)
        roles = {"time_column": time_column or model.time_column_, "channels": model.channels_,
                 "label_column": label_column, "series_column": model.series_column_}
        _report(model, _read(Path(data), roles), out_path, plot_path, show, fail_on_anomaly)


def _per_series(per_series: bool, unseen: str, jobs: int) -> dict | None:
    """The bundle settings of --per-series, or None; --unseen and --jobs need it."""
    if not per_series:
        if unseen != "error" or jobs != 1:
            raise ConfigError(f"{'--unseen' if unseen != 'error' else '--jobs'} needs "
                              "--per-series.")
        return None
    return {"unseen": unseen, "jobs": jobs}


def _spark_only(keep_going: bool, exact: bool = False) -> str | None:
    return "--keep-going" if keep_going else "--exact" if exact else None


def _exact(exact: bool) -> dict:
    return {"exact": True} if exact else {}


def _spark_per_series(per_series: bool, unseen: str, jobs: int) -> dict:
    settings = _per_series(per_series, unseen, jobs)
    if settings is None:
        return {}
    if jobs != 1:
        raise ConfigError("--jobs is for the local engine: Spark fits the series on its "
                          "executors in parallel.")
    return {"per_series": True, "unseen": unseen}


@app.command()
def methods() -> None:
    """List the detection methods, one line each, with what they need."""
    from vigil.detectors import METHODS

    methods_table(METHODS)


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Folder for the demo's outputs.")] = Path("vigil-demo"),
    spark: Annotated[bool, typer.Option("--spark", help="Then score the same rows with the same model on Apache Spark (local, needs vigil[spark] and Java 17); its flags are compared with the batch ones.")] = False,
    stream: Annotated[bool, typer.Option("--stream", help="Then run the live loop too: an embedded Kafka broker, the rows replayed into a topic, a vigil stream worker scoring them (needs vigil[stream]); its flags are compared with the batch ones.")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Run the whole path on bundled sensor data: train on its clean first week, detect, plot
    (with --spark, also on Spark; with --stream, also live through Kafka)."""
    STATE["quiet"] = quiet
    with user_errors():
        from vigil import sample_data

        os.makedirs(out_dir, exist_ok=True)
        source = sample_data.path()
        dataset = _read(source, _roles(None, None, "label", None))
        model = _fit(DEFAULT_METHOD, "pot", {}, _training_part(dataset, sample_data.TRAIN_ROWS))
        model.save(out_dir / "model.vigil")
        result = _report(model, dataset, out_dir / "scores.csv", out_dir / "anomalies.png", 15,
                         False)
        _said(f"Demo data: {source}; its first {sample_data.TRAIN_ROWS} rows (a clean week) trained "
              f"a model of the default method ({DEFAULT_METHOD}), saved to {out_dir / 'model.vigil'}.")
        if spark:
            from vigil.cli.spark import spark_demo

            spark_demo(model, dataset, result)
        if stream:
            from vigil.cli.stream import stream_demo

            stream_demo(model, dataset, result)
