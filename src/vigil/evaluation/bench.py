"""``vigil bench``: every method on every labeled series of a folder, under the exact protocol
of ``shared/datasets/BASELINES.md`` so a vigil row sits beside a public tool's row.

Protocol per series (a CSV listed in a collection's ``manifest.json``): channels = every column
but ``timestamp`` and ``label``; fit a ``vigil.Model`` (detector, threshold, alarm rules) on rows
``[0, train_rows)``, detect on all rows, and compute on rows ``[train_rows, n)`` the TSB-AD
metrics of the score, with ``sliding_window = dominant_period`` of the first channel over the
whole series, and the metrics of the model's own flags (``flag_metrics``: what a user acts on).
Series without anomaly rows are not scored. Each (method, series) runs in its own process on one
CPU thread, with a wall-time limit; once a method times out on a series of r rows, it is not
started on series of the same collection with at least r rows (counted as timeouts).
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.connection
import re
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from vigil.errors import ConfigError, DataError
from vigil.evaluation.flags import FLAG_METRICS

#: Metrics of the aggregate tables: VUS-PR (the ranking), the model's own flags beside it, then
#: the other TSB-AD metrics in BASELINES.md's order.
TABLE_METRICS = ("VUS-PR", *FLAG_METRICS, "VUS-ROC", "AUC-PR", "AUC-ROC", "Event-based-F1",
                 "R-based-F1", "PA-F1")


@dataclass(frozen=True)
class Series:
    """One labeled series of a collection, as its manifest describes it."""

    collection: str
    path: str
    rows: int
    train_rows: int
    anomaly_rows: int
    category: str = ""


def discover(folder: str | Path) -> list[Series]:
    """The series of ``folder``: a collection (with ``manifest.json``) or a folder of them."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder of labeled series")
    manifests = [folder / "manifest.json"] if (folder / "manifest.json").exists() else sorted(
        folder.glob("*/manifest.json"))
    if not manifests:
        raise DataError(f"{folder}: no manifest.json in it or its subfolders (see "
                        "shared/datasets/README.md for the format)")
    found = []
    for manifest in manifests:
        found += _manifest_series(manifest)
    return found


def _manifest_series(manifest: Path) -> list[Series]:
    """The series a ``manifest.json`` lists, or a DataError naming what is wrong with it."""
    try:
        meta = json.loads(manifest.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"{manifest}: not valid JSON ({exc})") from None
    entries = meta.get("series") if isinstance(meta, dict) else None
    if not isinstance(entries, list):
        raise DataError(f"{manifest}: needs a 'series' list (see shared/datasets/README.md)")
    name = str(meta.get("name", manifest.parent.name))
    found = []
    for i, entry in enumerate(entries):
        try:
            found.append(Series(name, str(manifest.parent / entry["file"]), int(entry["rows"]),
                                int(entry["train_rows"]), int(entry["anomaly_rows"]),
                                str(entry.get("category", ""))))
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{manifest}: series entry {i} needs file, rows, train_rows and "
                            f"anomaly_rows ({type(exc).__name__}: {exc})") from None
    return found


def parse_methods(text: str) -> list[tuple[str, dict[str, Any]]]:
    """``"iqr,isolation_forest(window=10,n_estimators=50)"`` -> [(name, params), ...]."""
    from vigil.detectors import METHODS, parse_param_value

    methods = []
    for item in re.findall(r"[^,(]+(?:\([^)]*\))?", text):
        item = item.strip()
        match = re.fullmatch(r"([A-Za-z_]\w*)(?:\((.*)\))?", item)
        if not match or match.group(1) not in METHODS:
            raise ConfigError(f"--methods: {item!r} is not a method (choose from "
                              f"{', '.join(METHODS)}; parameters as name(key=value,...)).")
        params = {}
        for pair in filter(None, (p.strip() for p in (match.group(2) or "").split(","))):
            key, _, value = pair.partition("=")
            params[key.strip()] = parse_param_value(value.strip())
        methods.append((match.group(1), params))
    return methods


def method_label(name: str, params: dict[str, Any]) -> str:
    """How a configured method is named in the tables."""
    return name + (f"({','.join(f'{k}={v}' for k, v in params.items())})" if params else "")


def run_series(series: Series, name: str, params: dict[str, Any], threshold: str = "pot",
               alarms: str | dict[str, Any] = "default") -> dict[str, Any]:
    """Fit a Model (with ``threshold`` and ``alarms``, as ``vigil.Model`` takes them) on the
    training rows, detect on all rows, evaluate the rest (the BASELINES protocol for the score,
    plus the flags a user of that model would see)."""
    from vigil import Model
    from vigil.evaluation import dominant_period, evaluate_scores, flag_metrics

    frame = pd.read_csv(series.path)
    label = frame.pop("label").to_numpy()  # never a channel
    channels = [c for c in frame.columns if c != "timestamp"]
    model = Model(name, threshold=threshold, alarms=alarms, time_column="timestamp",
                  channels=channels, **params)
    start = time.perf_counter()
    model.fit(frame.iloc[: series.train_rows])
    fitted = time.perf_counter()
    result = model.detect(frame)
    scored = time.perf_counter()
    test = slice(series.train_rows, None)
    window = dominant_period(frame[channels[0]].to_numpy(np.float64))
    metrics = evaluate_scores(result["score"].to_numpy()[test], label[test], window)
    flags = flag_metrics(result["is_anomaly"].to_numpy()[test], label[test],
                         oracle_f1=metrics["Standard-F1"], times=result["timestamp"].iloc[test])
    return {**metrics, **flags, "fit_s": fitted - start, "score_s": scored - fitted,
            "sliding_window": int(window)}


def _child(conn: Any, series: Series, name: str, params: dict[str, Any], threshold: str,
           alarms: str | dict[str, Any]) -> None:
    try:
        _one_thread_and_warm(name, params, threshold)
        # kept with the series' results (say, a threshold that fell back to the method's
        # default) instead of two lines on stderr per run
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            values = run_series(series, name, params, threshold, alarms)
        values["warnings"] = "; ".join(dict.fromkeys(str(w.message) for w in caught))
        conn.send(("ok", values))
    except Exception as exc:  # reported as this series' error, the bench goes on
        conn.send(("error", f"{type(exc).__name__}: {exc}".splitlines()[0],
                   traceback.format_exc()))
    finally:
        conn.close()


def _one_thread_and_warm(name: str, params: dict[str, Any], threshold: str) -> None:
    """One CPU thread per run, as the BASELINES.md timings; then fit and detect a tiny series
    once, so one-time costs of a fresh process (imports, numba's compiled-code cache, the
    threshold's first fit) are not counted as the series' fit and score time."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    try:
        import numba

        numba.set_num_threads(1)
    except ImportError:
        pass
    from vigil import Model

    rows = 512  # enough training scores for the pot threshold to fit, not to fall back
    warm = pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=rows, freq="min"),
                         "x": np.sin(np.arange(rows, dtype=np.float64) / 5)})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Model(name, threshold=threshold, **params).fit(warm).detect(warm)
    except Exception:  # the real run reports the method's own error
        pass


@dataclass
class _Task:
    series: Series
    name: str
    params: dict[str, Any]
    threshold: str
    alarms: str | dict[str, Any]

    @property
    def label(self) -> str:
        return method_label(self.name, self.params)


def run_bench(series: list[Series], methods: list[tuple[str, dict[str, Any]]], *, jobs: int = 2,
              timeout: float = 180.0, threshold: str = "pot",
              alarms: str | dict[str, Any] = "default",
              progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Run every method (with ``threshold`` and ``alarms``, as ``vigil.Model`` takes them) on
    every series with anomalies, ``jobs`` processes at a time, each stopped after ``timeout`` seconds; one row per
    (method, series), failures included."""
    scored = [s for s in series if s.anomaly_rows > 0]
    tasks = [_Task(s, name, params, threshold, alarms) for name, params in methods
             for s in sorted(scored, key=lambda s: (s.collection, s.rows, s.path))]
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["numpy", "pandas", "scipy.stats", "sklearn.ensemble",
                                    "vigil.detectors", "vigil.evaluation"])
    timed_out: dict[tuple[str, str], int] = {}  # (method, collection) -> fewest rows timed out
    rows, pending, running = [], list(reversed(tasks)), {}
    while pending or running:
        while pending and len(running) < jobs:
            task = pending.pop()
            limit = timed_out.get((task.label, task.series.collection))
            if limit is not None and task.series.rows >= limit:
                rows.append(_row(task, "timeout", error="skipped: timed out on a shorter series"))
                continue
            parent, child = context.Pipe(duplex=False)
            process = context.Process(target=_child, args=(child, task.series, task.name,
                                                           task.params, task.threshold,
                                                           task.alarms),
                                      daemon=True)
            process.start()
            child.close()
            running[parent] = (process, task, time.monotonic())
        for conn in multiprocessing.connection.wait(list(running), timeout=0.25):
            process, task, _ = running.pop(conn)
            rows.append(_receive(conn, task))
            process.join()
        for conn, (process, task, started) in list(running.items()):
            if time.monotonic() - started > timeout:
                process.kill()
                process.join()
                running.pop(conn)
                key = (task.label, task.series.collection)
                timed_out[key] = min(timed_out.get(key, task.series.rows), task.series.rows)
                rows.append(_row(task, "timeout", error=f"stopped after {timeout:g} s"))
        if progress is not None:
            progress(len(rows), len(tasks))
    return pd.DataFrame(rows)


def _receive(conn: Any, task: _Task) -> dict[str, Any]:
    try:
        message = conn.recv()
    except EOFError:  # the process died (out of memory, a crash in native code)
        return _row(task, "error", error="the process died without a result")
    if message[0] == "ok":
        return _row(task, "ok", **message[1])
    return _row(task, "error", error=message[1])


def _row(task: _Task, status: str, **values: Any) -> dict[str, Any]:
    series = task.series
    return {"collection": series.collection, "series": Path(series.path).name,
            "category": series.category, "rows": series.rows, "method": task.label,
            "status": status, **values}


def summarize(results: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per collection: one row per method with each metric's mean over the series it scored,
    fit and score seconds per million rows, and counts of ok / timeouts / errors. A method that
    failed on any series is labelled ``(partial)``: its means leave those series out."""
    tables = {}
    for collection, group in results.groupby("collection", sort=True):
        table = []
        for method, runs in group.groupby("method", sort=False):
            ok = runs[runs["status"] == "ok"]
            partial = " (partial)" if len(ok) < len(runs) else ""
            row: dict[str, Any] = {"method": method + partial}
            for metric in TABLE_METRICS:
                row[metric] = ok[metric].mean() if len(ok) else np.nan
            per_million = 1e6 / ok["rows"] if len(ok) else np.nan
            row["fit s/M rows"] = (ok["fit_s"] * per_million).median() if len(ok) else np.nan
            row["score s/M rows"] = (ok["score_s"] * per_million).median() if len(ok) else np.nan
            row["n ok / series"] = f"{len(ok)} / {len(runs)}"
            row["timeouts"] = int((runs["status"] == "timeout").sum())
            row["errors"] = int((runs["status"] == "error").sum())
            table.append(row)
        tables[collection] = pd.DataFrame(table).sort_values("VUS-PR", ascending=False)
    return tables


def markdown(tables: dict[str, pd.DataFrame], command: str) -> str:
    """The aggregate tables as Markdown, with the command that made them."""
    from vigil.evaluation.range_based import POINT_ADJUST_NOTE

    lines = ["# vigil bench", "", f"Command: `{command}`", "",
             "Protocol: shared/datasets/BASELINES.md (fit on the manifest's train_rows, metrics "
             "on the rest, TSB-AD 1.5 metric definitions). The flag metrics (flagged ... delay) "
             "judge the model's own threshold; the other F1-type metrics use an oracle "
             f"threshold. {POINT_ADJUST_NOTE} Each value is the mean over the series a method "
             "scored (delay: over those where it caught an event, in rows); `(partial)` marks a "
             "method that failed on some series, so its means leave them out. Fit = "
             "`Model.fit` (detector and threshold), score = `Model.detect` on all rows.", ""]
    for collection, table in tables.items():
        shown = table.rename(columns={"PA-F1": "PA-F1 (optimistic)"})
        header = list(shown.columns)
        lines += [f"## {collection}", "", "| " + " | ".join(header) + " |",
                  "|" + "---|" * len(header)]
        for _, row in shown.iterrows():
            lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
        lines.append("")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    """A table cell: three decimals, and blank where there is no value (as BASELINES.md)."""
    if isinstance(value, float):
        return "" if np.isnan(value) else f"{value:.3f}"
    return str(value)


def write_results(results: pd.DataFrame, out_dir: str | Path, command: str) -> Path:
    """Write ``series.csv`` (one row per method and series: its metrics, timings, error or
    warnings) and ``summary.md``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    results.to_csv(out_dir / "series.csv", index=False)
    (out_dir / "summary.md").write_text(markdown(summarize(results), command))
    return out_dir / "summary.md"


__all__ = ["Series", "discover", "markdown", "method_label", "parse_methods", "run_bench",
           "run_series", "summarize", "write_results"]
