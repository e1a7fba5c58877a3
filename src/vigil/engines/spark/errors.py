"""vigil's own errors, raised on a Spark executor, back as themselves on the driver."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

from vigil import errors

__all__ = ["executor_errors"]

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
