"""The ``vigil`` command line: ``app`` (typer) with its commands, one module per group
(``commands``: detect, train, score, methods, demo; ``evaluate``: evaluate, bench; ``stream``:
stream, produce, broker), and ``main``, the console script.

Exit codes: 0 success; 1 anomalies found with ``--fail-on-anomaly``; 2 a usage or data error,
reported as one line on stderr (``--debug`` shows the traceback instead); 3 ``vigil bench``
wrote its results but some runs failed; 4 an unexpected internal error (a bug), in one line.
"""

from __future__ import annotations

import sys

import typer
from typer.exceptions import TyperException

from vigil.cli import commands, evaluate, stream  # noqa: F401  (they register their commands)
from vigil.cli.app import app
from vigil.cli.output import _escape, err

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the ``vigil`` console script. A usage error (a missing argument, a value
    of the wrong type) is one line on stderr with exit 2, as every other user mistake."""
    try:
        code = app(standalone_mode=False)
    except TyperException as exc:  # click's usage errors, raised instead of boxed
        ctx = getattr(exc, "ctx", None)
        where = f"vigil {ctx.info_name} --help" if ctx is not None and ctx.parent else "vigil --help"
        err.print(f"[red]error:[/red] {_escape(exc.format_message())} (see '{where}')",
                  soft_wrap=True)
        sys.exit(getattr(exc, "exit_code", 2))
    except (KeyboardInterrupt, typer.Abort):  # pragma: no cover - interactive only
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)

