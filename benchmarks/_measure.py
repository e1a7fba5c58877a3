"""Helpers shared by the benchmarks: the machine they ran on, peak resident memory from
``/proc/self/status``, and paired timing against a reference.

Linux only for the memory figures (``/proc``); everything else is portable.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or the architecture where that is missing."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cache_sizes() -> str:
    """L2 / L3 sizes of CPU 0 as the kernel reports them, e.g. ``L2 512K, L3 32768K``."""
    out = []
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        if kind in ("Unified", "Data") and level != "1":
            out.append(f"L{level} {size}")
    return ", ".join(out)


def machine() -> dict[str, Any]:
    """Where and with what a benchmark ran, for the results file."""
    import numpy as np

    total_kb = vm_kb("MemTotal", Path("/proc/meminfo"))
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "caches": cache_sizes(),
        "memory_gb": round(total_kb / 2**20, 1) if total_kb else None,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "platform": platform.platform(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def vm_kb(field: str, path: Path = _STATUS) -> int:
    """A ``kB`` field of ``/proc/self/status`` (``VmRSS``, ``VmHWM``), 0 if it is missing."""
    try:
        for line in path.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def can_reset_peak_rss() -> bool:
    """Whether writing ``5`` to ``/proc/self/clear_refs`` is allowed (it resets ``VmHWM``)."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def reset_peak_rss() -> None:
    """Reset the peak resident set size (``VmHWM``) to the current one (``VmRSS``)."""
    _CLEAR_REFS.write_text("5")


def seconds(run: Callable[[], Any]) -> float:
    """Wall-clock seconds of one call; the result is dropped at once."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start
