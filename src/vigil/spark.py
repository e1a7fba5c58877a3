"""``vigil.spark``: the Spark engine's public API (``session``, ``fit``, ``score``,
``executor_errors``), re-exported from :mod:`vigil.engines.spark`; needs ``vigil[spark]``."""

from vigil.engines.spark import executor_errors, fit, score, session

__all__ = ["executor_errors", "fit", "score", "session"]
