"""What the command line shows: one-line errors and warnings on stderr, progress bars, and the
rich tables of anomaly events and methods. Kept apart from ``cli.py`` so the commands read as
steps.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import typer
from typer.exceptions import TyperException
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from vigil.alarms import event_table
from vigil.errors import VigilError
from vigil.report import duration_text, rules_text

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)
STATE = {"debug": False, "quiet": False}
#: Exit code of an unexpected internal error (1 means "anomalies found", 2 a user's mistake,
#: 3 a bench with failed runs).
INTERNAL_ERROR = 4


def fail(message: str) -> None:
    """Print one error line and exit with code 2 (a usage or data error)."""
    err.print(f"[red]error:[/red] {message}", soft_wrap=True, markup=True)
    raise typer.Exit(2)


def fail_partly(message: str) -> None:
    """Print one warning line and exit with code 3: the command finished and wrote its results,
    but some of its runs failed, so a script must not take them for complete."""
    err.print(f"[yellow]warning:[/yellow] {_escape(message)}", soft_wrap=True, markup=True)
    raise typer.Exit(3)


def _show_warning(message: Any, category: type, filename: str, lineno: int, file: Any = None,
                  line: Any = None) -> None:
    err.print(f"[yellow]warning:[/yellow] {message}", soft_wrap=True)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Report a user's mistake as one line on stderr, exit 2 (the traceback with ``--debug``)."""
    warnings.showwarning = _show_warning
    try:
        yield
    except VigilError as exc:
        if STATE["debug"]:
            raise
        fail(_escape(str(exc)))
    except OSError as exc:
        if STATE["debug"]:
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        fail(_escape(f"{where}{exc.strerror or exc}"))
    except (typer.Exit, typer.Abort, TyperException):  # the command line's own exits
        raise
    except Exception as exc:  # a bug, not the user's mistake: its own exit code, one line
        if STATE["debug"]:
            raise
        err.print(f"[red]internal error:[/red] {_escape(f'{type(exc).__name__}: {exc}')}; this is "
                  "a bug in vigil: rerun with --debug for the traceback and report it.",
                  soft_wrap=True)
        raise typer.Exit(INTERNAL_ERROR) from None


def _escape(text: str) -> str:
    return text.replace("[", r"\[")


@contextlib.contextmanager
def step(text: str) -> Iterator[None]:
    """A spinner with elapsed time for one step of unknown length (hidden with --quiet)."""
    if STATE["quiet"]:
        yield
        return
    with err.status(text, spinner="dots"):
        yield


@contextlib.contextmanager
def progress_bar(text: str) -> Iterator[Any]:
    """A progress bar; yields a ``callback(done, total)`` for ``Model.score``/``detect``."""
    if STATE["quiet"]:
        yield None
        return
    columns = (SpinnerColumn(), TextColumn(text), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
               TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(text, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@contextlib.contextmanager
def training_bar(text: str) -> Iterator[Any]:
    """A progress bar over training epochs with the latest loss; yields a
    ``callback(epoch, epochs, note)`` for :data:`vigil.detectors.base.FIT_PROGRESS`."""
    if STATE["quiet"]:
        yield None
        return
    columns = (SpinnerColumn(), TextColumn(text), BarColumn(),
               TextColumn("epoch {task.completed}/{task.total}"), TextColumn("{task.fields[note]}"),
               TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(text, total=None, note="")
        yield lambda done, total, note: bar.update(task, completed=done, total=total, note=note)


#: Width past which a series or driver name is cut (with an ellipsis) in the events table.
_NAME_WIDTH = 24
#: Columns of the events table that hold numbers (right-aligned) and times (split over two
#: lines, date above clock time, when one line per event does not fit the terminal).
_NUMBERS, _TIMES = ("event", "rows", "peak score"), ("start", "end")


def event_report(result: pd.DataFrame, alarms: Any, show: int) -> None:
    """Print the first ``show`` anomaly events of a ``Model.detect`` result as a table (event,
    series, start, end, duration, rows, peak score, driver) and one summary line."""
    if STATE["quiet"]:
        return
    events = event_table(result)
    if show and len(events):
        out.print(_events_rich_table(events.head(show), len(events)))
        if len(events) > show:
            out.print(f"... and {len(events) - show} more events (every row with its event "
                      "number: --out).")
    out.print(_summary_line(result, len(events), alarms), soft_wrap=True)


def _events_rich_table(shown: pd.DataFrame, total: int) -> Table:
    """The rich table of ``shown`` events, titled with how many of ``total`` it holds. Times
    and numbers are never cut; on a narrow terminal the names give way first."""
    title = f"Anomaly events (first {len(shown)} of {total})" if len(shown) < total else \
        f"Anomaly events ({total})"
    table = Table(title=title, title_justify="left")
    columns = [str(c) for c in shown.columns]
    rows = [[duration_text(v) if c == "duration" else _cell(v) for c, v in zip(columns, row)]
            for row in shown.itertuples(index=False)]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(columns)]
    if sum(min(w, _NAME_WIDTH) for w in widths) + 3 * len(widths) + 1 > out.width:
        rows = [[v.replace(" ", "\n", 1) if c in _TIMES else v for c, v in zip(columns, row)]
                for row in rows]
    for col in columns:
        name = col not in _NUMBERS + _TIMES + ("duration",)
        table.add_column(col, no_wrap=not name, overflow="ellipsis",
                         max_width=max(_NAME_WIDTH, len(col)) if name else None,
                         justify="right" if col in _NUMBERS else "left")
    for row in rows:
        table.add_row(*row)
    return table


def _summary_line(result: pd.DataFrame, k: int, alarms: Any) -> str:
    """The line under the table: K anomaly events (R rows of N, P%); threshold T on the
    <method> score; alarm rules: ..."""
    limits = result["threshold"].to_numpy(float)
    low, high = (limits.min(), limits.max()) if len(limits) else (float("nan"),) * 2
    meta = result.attrs.get("vigil", {})
    return _summary_text(len(result), int(result["is_anomaly"].sum()), low, high, k,
                         meta.get("method", "model"), alarms, meta.get("per_series", False))


def _summary_text(n: int, flagged: int, low: float, high: float, k: int, method: str,
                  alarms: Any, per_series: bool = False) -> str:
    """The summary line from its figures (also for a result that lives on Spark)."""
    if per_series:
        threshold = (f"a threshold per series ({low:.4g} to {high:.4g})" if low != high else
                     f"a threshold per series ({low:.4g})")
    elif n and low != high:
        threshold = f"adaptive threshold ({low:.4g} to {high:.4g})"
    else:
        threshold = f"threshold {low if n else float('nan'):.4g}"
    events = "No anomaly events" if k == 0 else f"{k} anomaly event{'s' if k != 1 else ''}"
    rows = f"{flagged} row{'s' if flagged != 1 else ''}"
    return (f"{events} ({rows} of {n}, {100 * flagged / max(n, 1):.2f}%); {threshold} "
            f"on the {method} score; alarm rules: {rules_text(alarms)}.")


def _cell(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return str(value)


def methods_table(methods: dict[str, Any]) -> None:
    """Print the registered methods, one line each."""
    table = Table(title="Detection methods", title_justify="left")
    for name in ("method", "what it does", "needs", "stream delay (rows)"):
        table.add_column(name)
    for name, info in methods.items():
        table.add_row(name, info.summary, info.needs, stream_delay(name))
    out.print(table)
    out.print("Stream delay: rows that must arrive after a row before `vigil stream` can "
              "score it (its lookahead); the alarm rules may hold a flag a little longer.")


def stream_delay(method: str) -> str:
    """A method's lookahead in rows, as text: 0, or how it follows from its window."""
    from vigil.detectors import make_detector

    detector = make_detector(method)
    try:
        return str(int(detector._lookahead_rows()))
    except (AttributeError, TypeError):  # depends on the fitted window
        window = detector.get_params().get("window")
        if window is None:
            return "window - 1 of its windowed members (0 when none is used)"
        return f"window - 1 (window {window}{': the period found' if window == 'auto' else ''})"
