"""vigil: find anomalies in sensor and metric time series.

One model, trained once, scores the same way on a laptop, on Spark and on a Kafka stream::

    import vigil
    data = vigil.read("sensors.csv")
    model = vigil.Model("robust_zscore").fit(data)
    result = model.detect(data)          # score, threshold, is_anomaly per row
    model.save("model.vigil"); vigil.load("model.vigil")
    vigil.plot(result, "anomalies.png")

Heavy parts (plots, optional engines) are imported only when first used.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

__all__ = [
    "Dataset", "Model", "ModelBundle", "StreamScorer", "load", "methods", "plot", "read",
    "__version__",
]

_LAZY = {
    "Dataset": ("vigil.io", "Dataset"),
    "read": ("vigil.io", "read"),
    "Model": ("vigil.model", "Model"),
    "ModelBundle": ("vigil.bundle", "ModelBundle"),
    "load": ("vigil.model", "load"),
    "plot": ("vigil.report", "plot"),
    "StreamScorer": ("vigil.scoring", "StreamScorer"),
}


def methods() -> dict[str, str]:
    """The registered detection methods, name -> one-line description."""
    from vigil.detectors import METHODS

    return {name: info.summary for name, info in METHODS.items()}


def __getattr__(name: str) -> Any:  # PEP 562: import on first use
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(import_module(module), attr)
    raise AttributeError(f"module 'vigil' has no attribute {name!r}")
