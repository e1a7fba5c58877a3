"""A detector's declared fitted state: the named arrays a model file may hold for it, and the
checks that a set of arrays (read from a file, never trusted) fits that declaration.

Each detector declares its state in ``fitted_state``, name -> :class:`StateSpec`; ``get_state``
saves exactly those names and ``set_state`` accepts exactly those (an unknown name, a missing
one, a wrong dtype, shape or value is a one-line :class:`~vigil.errors.ModelFileError`), so a
file can never set an attribute the detector did not declare, a method least of all.

Shapes are written per dimension:

``3``            exactly 3
``"d"``          the number of channels (the state's own ``n_channels_``)
``"*"``          any length (the model file's size budget bounds it)
``"name"``       equal to the parameter ``name``, to the 0-d state array ``name`` or to the
                 detector's property ``name`` (a bound computed from the parameters)
``"<=name"``     at most that (``name`` a parameter, a 0-d state array or a number)
``"name[i]"``    equal to dimension ``i`` of the state array ``name``
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from vigil.errors import ModelFileError

if TYPE_CHECKING:  # pragma: no cover
    from vigil.detectors.base import Detector

_INDEXED = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*)\[(\d)\]$")


@dataclass(frozen=True)
class StateSpec:
    """One declared array of a detector's fitted state.

    Attributes:
        kind: the numpy dtype kinds allowed: ``"f"`` float, ``"iu"`` integer, ``"b"`` bool.
        shape: one rule per dimension (see the module docstring); ``()`` is a scalar.
        positive: every value is > 0 (the maths divides by it).
        allow_inf: +inf is a legitimate value (NaN and -inf never are).
        low, high: bounds on every (finite) value.
        param: the value equals this parameter unless the parameter is ``"auto"`` or None.
        optional: older files may lack it; the detector fills it in.
    """

    kind: str = "f"
    shape: tuple[int | str, ...] = ()
    positive: bool = False
    allow_inf: bool = False
    low: float | None = None
    high: float | None = None
    param: str | None = None
    optional: bool = False

    def describe(self) -> str:
        """The rule in words, for messages."""
        kinds = {"f": "float", "iu": "integer", "b": "bool"}.get(self.kind, self.kind)
        dims = ", ".join(str(d) for d in self.shape)
        return f"{kinds} array of shape ({dims})"


#: Every detector has it: the channel count it was fitted on.
N_CHANNELS = StateSpec("iu", (), low=1, high=2**31)
#: A per-channel level and a per-channel scale that is divided by.
PER_CHANNEL = StateSpec("f", ("d",))
PER_CHANNEL_SCALE = StateSpec("f", ("d",), positive=True)


def check_state(det: Detector, state: Any, spec: Mapping[str, StateSpec]) -> dict[str, np.ndarray]:
    """``state`` checked against ``spec``: exactly the declared names (optional ones may be
    absent), each of a declared dtype kind, shape and values. Returns the arrays."""
    if not isinstance(state, Mapping):
        raise ModelFileError(f"{det.name} state must be named arrays; got {type(state).__name__}")
    unknown = sorted(str(k) for k in state if k not in spec)
    if unknown:
        raise ModelFileError(f"{det.name} has no fitted state named {unknown[0][:80]!r} (it "
                             f"declares: {', '.join(spec)}); the file is not a {det.name} model")
    missing = [k for k, s in spec.items() if k not in state and not s.optional]
    if missing:
        raise ModelFileError(f"{det.name} state lacks {missing[0]!r}: the file is damaged or "
                             f"not a {det.name} model")
    arrays = {}
    for key, value in state.items():
        if not isinstance(value, (np.ndarray, np.generic, int, float, bool)):
            raise ModelFileError(f"{det.name} state {key!r} is a {type(value).__name__}, "
                                 "not an array")
        arrays[key] = np.asarray(value)
    # scalars first: other arrays' shapes may refer to them
    for key in sorted(arrays, key=lambda k: (arrays[k].ndim != 0, k)):
        _check_array(det, key, arrays[key], spec[key], arrays)
    return arrays


def check_header(det: Detector, key: str, spec: StateSpec, dtype: np.dtype,
                 shape: tuple[int, ...], n_channels: int) -> None:
    """What can be checked from an array's header alone, before its data is read: the dtype
    kind, the number of dimensions and every dimension known from the parameters and the
    channel count (so an array of an absurd size is refused unread)."""
    _check_kind(det, key, dtype, spec)
    _check_dims(det, key, shape, spec, {"n_channels_": np.asarray(n_channels)}, partial=True)


def _check_kind(det: Detector, key: str, dtype: np.dtype, spec: StateSpec) -> None:
    if dtype.kind not in spec.kind or dtype.fields is not None or dtype.subdtype is not None:
        raise ModelFileError(f"{det.name} state {key!r} has dtype {dtype}; expected a "
                             f"{spec.describe()}")


def _check_array(det: Detector, key: str, value: np.ndarray, spec: StateSpec,
                 arrays: dict[str, np.ndarray]) -> None:
    _check_kind(det, key, value.dtype, spec)
    _check_dims(det, key, value.shape, spec, arrays, partial=False)
    bad = _bad_values(value, spec)
    if bad:
        raise ModelFileError(f"{det.name} state {key!r} holds {bad}; the file is damaged")
    if spec.param is not None:
        expected = getattr(det, spec.param)
        if expected not in (None, "auto") and value.item() != expected:
            raise ModelFileError(f"{det.name} state {key!r} is {value.item()} but the parameter "
                                 f"{spec.param} is {expected!r}; the file is damaged")


def _bad_values(value: np.ndarray, spec: StateSpec) -> str:
    """What is wrong with the values, in words ("" when nothing is)."""
    if value.size == 0:
        return ""
    if value.dtype.kind == "f":
        if np.isnan(value).any():
            return "NaN"
        infinite = np.isinf(value)
        if infinite.any() and (not spec.allow_inf or (value[infinite] < 0).any()):
            return "an infinite value"
        finite = value[~infinite] if infinite.any() else value
    else:
        finite = value
    if finite.size:
        lowest, highest = finite.min(), finite.max()
        if spec.positive and lowest <= 0:
            return f"{lowest}, which must be > 0 (it is divided by)"
        if spec.low is not None and lowest < spec.low:
            return f"{lowest}, below its least legitimate value {spec.low:g}"
        if spec.high is not None and highest > spec.high:
            return f"{highest}, above its largest legitimate value {spec.high:g}"
    return ""


def _check_dims(det: Detector, key: str, shape: tuple[int, ...], spec: StateSpec,
                arrays: Mapping[str, np.ndarray], partial: bool) -> None:
    if len(shape) != len(spec.shape):
        raise ModelFileError(f"{det.name} state {key!r} has {len(shape)} dimension(s) "
                             f"{tuple(shape)}; expected a {spec.describe()}")
    for axis, (size, rule) in enumerate(zip(shape, spec.shape)):
        at_most = isinstance(rule, str) and rule.startswith("<=")
        rule = rule[2:] if at_most else rule
        target = _resolve(det, rule, arrays)
        if target is None:
            if partial or rule == "*":
                continue
            raise ModelFileError(f"{det.name} state {key!r}: cannot check dimension {axis} "
                                 f"against {rule!r}")
        if (size > target) if at_most else (size != target):
            what = "at most " if at_most else ""
            raise ModelFileError(
                f"{det.name} state {key!r} has shape {tuple(shape)}: dimension {axis} must be "
                f"{what}{target} ({'d = channels' if rule == 'd' else rule}); the file does "
                "not fit its own manifest or is damaged")


def _resolve(det: Detector, rule: int | str, arrays: Mapping[str, np.ndarray]) -> int | None:
    """The length a dimension rule asks for, or None where it is free or not known yet."""
    if isinstance(rule, int):
        return rule
    if rule == "*":
        return None
    if rule == "d":
        rule = "n_channels_"
    if rule.isdigit():
        return int(rule)
    indexed = _INDEXED.match(rule)
    if indexed:
        name, axis = indexed.group(1), int(indexed.group(2))
        shape = arrays[name].shape if name in arrays else None
        return shape[axis] if shape is not None and axis < len(shape) else None
    if rule in arrays and arrays[rule].ndim == 0 and arrays[rule].dtype.kind in "iu":
        return int(arrays[rule])
    # a parameter, or a bound the detector computes from its parameters (a property)
    value = getattr(det, rule, None) if rule in det.params or isinstance(
        getattr(type(det), rule, None), property) else None
    return int(value) if isinstance(value, (int, np.integer)) and not isinstance(
        value, bool) else None
