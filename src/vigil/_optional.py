"""Optional dependencies: imported only when a feature that needs them is used, with a clear
error naming the pip command when one is missing (the core never imports them)."""

from __future__ import annotations

import importlib
from types import ModuleType

from vigil.errors import MissingExtraError


def require(module: str, extra: str, feature: str | None = None) -> ModuleType:
    """Import ``module``, or raise MissingExtraError with ``pip install 'vigil[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = feature or module
        raise MissingExtraError(
            f"{what} needs the optional package {module.split('.')[0]!r}, which is not "
            f"installed: pip install 'vigil[{extra}]'"
        ) from exc
