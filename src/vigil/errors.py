"""The exceptions vigil raises: one family, so a caller (and the CLI) can tell a user's mistake
from a bug. Each also derives from the built-in a Python user would expect to catch."""

from __future__ import annotations


class VigilError(Exception):
    """Base of every error vigil raises on purpose (bad data, bad settings, bad model file)."""


class DataError(VigilError, ValueError):
    """The input data cannot be used: names the file, row and column where it can."""


class ConfigError(VigilError, ValueError):
    """A parameter or option is invalid: names the parameter, the value and what is allowed."""


class ModelFileError(VigilError, ValueError):
    """A .vigil model file is missing, truncated, tampered with or of another format version."""


class NotFittedError(VigilError, RuntimeError):
    """A detector, threshold or model was used before ``fit``."""


class MissingExtraError(VigilError, ImportError):
    """An optional dependency is not installed; the message gives the pip command."""


class DataWarning(UserWarning):
    """The input was repaired (e.g. missing values filled); the message says how."""


class FitWarning(UserWarning):
    """A fit fell back to a documented default (e.g. too few scores for a threshold)."""
