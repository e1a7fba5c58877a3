"""Shared fixtures."""

import shutil

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
    """Path of a Chromium binary for headless rendering tests. The test setup installs it
    (`.ci/run`: Debian's ``chromium`` package); a missing one fails the test, never skips it."""
    found = _find_chromium()
    if not found:
        pytest.fail("no Chromium found (looked for " + ", ".join(CHROMIUM_NAMES) + "): install "
                    "it first, e.g. apt-get update && apt-get install -y chromium")
    return found
