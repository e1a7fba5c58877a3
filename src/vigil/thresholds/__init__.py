"""Thresholds turn anomaly scores into decisions. A detector scores (higher = more anomalous);
a threshold is fitted on *training* scores, stores one number ``value_`` and then calls every
score ``> value_`` an anomaly. Four methods: a fixed cut-off, an empirical quantile, mean + k
standard deviations, and peaks-over-threshold (POT) from extreme value theory; and one adaptive
method, drifting POT (``dspot``), whose threshold follows a slow drift of the scores row by row
(``values(scores)``; ``value_`` is its value at the end of training). When there are
too few training scores, a threshold falls back to the detector's natural cut-off (or to the
largest training score), says so in one ``FitWarning`` and records ``fallback_used_ = True``.
Fitted thresholds round-trip through ``to_dict`` / ``from_dict`` (plain JSON)."""

from __future__ import annotations

from typing import Any

from vigil.errors import ConfigError
from vigil.thresholds.adaptive import DSPOT
from vigil.thresholds.base import Fixed, Quantile, Sigma, Threshold, _checked, _is_real
from vigil.thresholds.pot import POT

THRESHOLDS: dict[str, type[Threshold]] = {
    cls.name: cls for cls in (POT, Quantile, Sigma, Fixed, DSPOT)}
"""Every threshold by name; each class's ``description`` is its one-line help."""


def make_threshold(spec: Threshold | str | float | dict[str, Any]) -> Threshold:
    """A threshold from a spec: an instance, ``"pot"``, ``"quantile:0.995"``, ``"sigma:4"``,
    ``"pot:1e-3"`` (the risk), ``"dspot:1e-3"`` (the risk), ``"fixed:2.5"``, a number (fixed
    cut-off) or a ``to_dict`` dict.

    >>> make_threshold("quantile:0.9").fit(range(1, 11)).decide([9.5, 9.0]).tolist()
    [True, False]
    """
    if isinstance(spec, Threshold):
        return spec
    if isinstance(spec, dict):
        return Threshold.from_dict(spec)
    if _is_real(spec):
        return _checked(Fixed(value=float(spec)))
    if not isinstance(spec, str):
        raise ConfigError(f"A threshold must be a name like 'pot' or 'quantile:0.99', a number, a "
                          f"dict or a Threshold. Got {spec!r}.")
    if _parse_float(spec) is not None:  # "2.5" on a command line
        return _checked(Fixed(value=float(spec)))
    name, _, arg = (part.strip() for part in spec.partition(":"))
    cls = THRESHOLDS.get(name.lower())
    if cls is None:
        raise ConfigError(f"Unknown threshold {name!r} in {spec!r}; valid names: "
                          f"{', '.join(THRESHOLDS)} (optionally with one number, "
                          f"e.g. 'quantile:0.995').")
    if not arg:
        if cls is Fixed:
            raise ConfigError(f"The fixed threshold needs a value, e.g. 'fixed:2.5'. Got {spec!r}.")
        return _checked(cls())
    value = _parse_float(arg)
    if value is None:
        raise ConfigError(f"Cannot read {arg!r} in {spec!r} as a number for the {cls._primary!r} "
                          f"parameter of {cls.name}.")
    return _checked(cls(**{cls._primary: value}))


def _parse_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


__all__ = ["DSPOT", "POT", "THRESHOLDS", "Fixed", "Quantile", "Sigma", "Threshold",
           "make_threshold"]
