"""What the command line shows: one-line errors and warnings on stderr, progress bars, and the
rich tables of anomalies and methods. Kept apart from ``cli.py`` so the commands read as steps.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from vigil.errors import VigilError

err = Console(stderr=True, highlight=False)
out = Console(highlight=False)
STATE = {"debug": False, "quiet": False}


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


def anomaly_table(result: pd.DataFrame, show: int) -> None:
    """Print the anomalous rows (time, values, score, driving channel) and a summary line."""
    meta = result.attrs.get("vigil", {})
    flagged = result[result["is_anomaly"]]
    n, k = len(result), len(flagged)
    threshold = float(result["threshold"].iloc[0]) if n else float("nan")
    if STATE["quiet"]:
        return
    if k:
        table = Table(title=f"Anomalous rows (first {min(show, k)} of {k})", title_justify="left")
        cols = _table_columns(result, meta)
        for col in cols:
            # time, score and driver never wrap; values shrink first on a narrow terminal
            whole = col in ("driver", "row", "score", meta.get("time_column"), meta.get("series_column"))
            left = whole and col != "score"
            table.add_column(str(col), justify="left" if left else "right", no_wrap=whole,
                             overflow="ellipsis")
        for index, row in flagged.head(show).iterrows():
            table.add_row(*[_cell(index if c == "row" else row[c]) for c in cols])
        out.print(table)
        if k > show:
            out.print(f"... and {k - show} more anomalous rows (write them all with --out).")
    out.print(f"{k} anomalous rows of {n} ({100 * k / max(n, 1):.2f}%); threshold "
              f"{threshold:.4g} on the {meta.get('method', 'model')} score.")


def _table_columns(result: pd.DataFrame, meta: dict[str, Any]) -> list[str]:
    cols = [c for c in (meta.get("series_column"), meta.get("time_column")) if c]
    if not cols:
        cols = ["row"]
    cols += list(meta.get("channels", []))[:6] + ["score"]
    if "driver" in result:
        cols.append("driver")
    return cols


def _cell(value: Any) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return str(value)


def methods_table(methods: dict[str, Any]) -> None:
    """Print the registered methods, one line each."""
    table = Table(title="Detection methods", title_justify="left")
    for name in ("method", "what it does", "needs"):
        table.add_column(name)
    for name, info in methods.items():
        table.add_row(name, info.summary, info.needs)
    out.print(table)
