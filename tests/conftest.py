"""Shared fixtures."""

import shutil
import subprocess

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def _find_chromium():
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture(scope="session")
def chromium():
    """Path of a Chromium binary for headless rendering tests, installing Debian's ``chromium``
    package when none is found (CI runs as root on Debian). A failed install fails the test
    with apt's output: it is never skipped."""
    found = _find_chromium()
    if found:
        return found
    command = "apt-get update && apt-get install -y --no-install-recommends chromium"
    try:
        done = subprocess.run(["sh", "-c", command], capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"could not install chromium ({command}): {exc}")
    found = _find_chromium()
    if done.returncode != 0 or not found:
        pytest.fail(f"could not install chromium ({command}), exit {done.returncode}:\n"
                    f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return found
