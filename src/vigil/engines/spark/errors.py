"""vigil's own errors, raised on a Spark executor, back as themselves on the driver."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from vigil import errors

__all__ = ["executor_errors", "no_time", "no_values"]

_RAISED = re.compile(r"vigil\.errors\.(\w+): (.*?)(?:\n|$)")


@contextmanager
def executor_errors() -> Iterator[None]:
    """Run Spark actions inside this: a vigil error raised on an executor (bad data in a
    series, say) comes back as that error with its one-line message, not as a Java stack
    trace wrapping a Python one."""
    try:
        yield
    except Exception as error:  # PythonException, Py4JJavaError, SparkException, ...
        found = _RAISED.findall(str(error))
        kind = getattr(errors, found[-1][0], None) if found else None
        if isinstance(kind, type) and issubclass(kind, errors.VigilError):
            raise kind(found[-1][1]) from None
        raise


def no_time(column: str) -> str:
    """Why a series with a row without a time cannot be fitted or scored."""
    return (f"a row has no time (a null in '{column}'): give every row its time, or drop the "
            "rows without one.")


def no_values(channel: str) -> str:
    """Why a series (or frame) with a channel without any value cannot be fitted or scored."""
    return f"channel '{channel}' has no values at all (every cell is missing or infinite)"
