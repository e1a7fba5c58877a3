"""Bundled, seeded sample data: five plant sensors over three weeks at minute resolution.

The demo and the docs run on ``vigil/data/sensors.csv``, which :func:`generate` makes (the script
``scripts/make_sample_data.py`` rewrites it, and a test checks the two never drift apart). The
plant: a machine that runs on workdays from about 06:00 to 22:00, a pump feeding it, and the hall
around them.

Channels (one row a minute from 2024-03-04 00:00:00, a Monday):

``temperature``  degC, hall air: daily cycle 20 +- 2-3.5 (warmest mid-afternoon), a slow weekly
                 component, a little heat from the running machine, AR(1) noise.
``pressure``     bar, header pressure held at 6.0 by a controller: a slow mean-reverting wander,
                 a small sag when the pump works hard, sensor noise.
``vibration``    mm/s RMS on the machine: about 0.25 and quiet when it is off, about 2.3 and
                 noisier when it runs (and rising a little with load); always positive.
``pump_power``   kW: about 1.2 at standby, about 5.5 plus a slowly varying demand when the machine
                 runs.
``flow``         L/min, follows the pump tightly: ``flow ~ 11.5 * pump_power + 2 + noise``.

Then ``label`` (0/1) and ``anomaly_kind`` (``""`` on normal rows). The first :data:`TRAIN_ROWS`
rows (the first week, Monday to Sunday) are clean, for fitting; after them come :data:`EVENTS`, two of
each kind, hours apart, of varied difficulty:

``spike``               1-3 rows far off (temperature down, vibration up while the machine is off).
``level_shift``         a sudden offset lasting hours (pressure up, temperature down).
``drift``               a ramp over hours ending at a clearly abnormal level, then a reset
                        (temperature sensor drift, vibration creeping up while running).
``stuck``               the exact same value repeated for hours on a normally noisy channel.
``variance_burst``      vibration noise x6-x8 for under an hour (running, and at rest).
``broken_correlation``  flow stops following pump_power for 1-2 hours while both stay in their
                        normal ranges (anti-correlated; flat through a machine start-up).

Only ``numpy.random.default_rng(seed)`` draws the randomness, so a seed gives the same frame.
"""

from __future__ import annotations

import importlib.resources
import pathlib
from typing import NamedTuple

import numpy as np
import pandas as pd

from vigil.errors import ConfigError

__all__ = [
    "CHANNELS",
    "EVENTS",
    "KINDS",
    "START",
    "TRAIN_ROWS",
    "Event",
    "events",
    "generate",
    "load",
    "path",
    "write",
]

START = pd.Timestamp("2024-03-04 00:00:00")  # a Monday
MINUTES_PER_DAY = 1440
TRAIN_ROWS = 7 * MINUTES_PER_DAY
"""Rows at the start with no anomaly (one whole week, so every operating mode, the weekend's
idle days included, is seen): fit detectors on ``frame[:TRAIN_ROWS]``."""

CHANNELS = ("temperature", "pressure", "vibration", "flow", "pump_power")
KINDS = ("spike", "level_shift", "drift", "stuck", "variance_burst", "broken_correlation")

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
_DECIMALS = {"temperature": 2, "pressure": 3, "vibration": 3, "flow": 2, "pump_power": 3}


class Event(NamedTuple):
    """One injected anomaly: rows ``start`` to ``stop - 1`` (a Python slice) of one channel."""

    kind: str
    channel: str
    start: int
    stop: int

    @property
    def start_time(self) -> pd.Timestamp:
        """Timestamp of the first anomalous row."""
        return START + pd.Timedelta(minutes=self.start)

    @property
    def end_time(self) -> pd.Timestamp:
        """Timestamp of the last anomalous row."""
        return START + pd.Timedelta(minutes=self.stop - 1)


def _at(day: int, hhmm: str) -> int:
    hours, minutes = (int(part) for part in hhmm.split(":"))
    return day * MINUTES_PER_DAY + hours * 60 + minutes


# (kind, channel, day, start time, minutes, magnitude); day 0 is Monday 2024-03-04, the first
# week (days 0-6) is clean.
_SCHEDULE: tuple[tuple[str, str, int, str, int, float], ...] = (
    ("spike", "temperature", 11, "10:17", 1, -6.0),  # degC
    ("broken_correlation", "flow", 11, "16:40", 110, 0.0),  # flow anti-correlated with the pump
    ("level_shift", "pressure", 12, "03:10", 200, 0.35),  # bar
    ("drift", "temperature", 13, "08:00", 360, 5.5),  # degC reached at the end of the ramp
    ("broken_correlation", "flow", 14, "05:20", 90, 1.0),  # flow flat through the start-up
    ("stuck", "vibration", 14, "14:30", 170, 0.0),
    ("spike", "vibration", 15, "02:45", 2, 1.9),  # mm/s, machine off: up to running level
    ("variance_burst", "vibration", 15, "10:30", 60, 8.0),  # noise x8, machine running
    ("drift", "vibration", 16, "09:00", 300, 0.9),  # x1.9 at the end of the ramp
    ("level_shift", "temperature", 17, "13:00", 240, -2.4),  # degC
    ("stuck", "temperature", 18, "08:10", 160, 0.0),
    ("variance_burst", "vibration", 19, "11:00", 45, 7.0),  # noise x7, Saturday, machine off
)


def _scheduled(days: int) -> list[tuple[Event, float]]:
    """The scheduled events that end within ``days``, each with its magnitude."""
    found = []
    for kind, channel, day, hhmm, minutes, magnitude in _SCHEDULE:
        start = _at(day, hhmm)
        if start + minutes <= days * MINUTES_PER_DAY:
            found.append((Event(kind, channel, start, start + minutes), magnitude))
    return found


EVENTS: tuple[Event, ...] = tuple(event for event, _ in _scheduled(21))
"""The anomalies injected by ``generate()`` with its default 21 days, in time order."""


def _ar1(rng: np.random.Generator, n: int, phi: float, std: float) -> np.ndarray:
    """AR(1) noise with stationary standard deviation ``std``."""
    eps = rng.standard_normal(n) * std * np.sqrt(1.0 - phi * phi)
    out = np.empty(n)
    level = rng.standard_normal() * std
    for i in range(n):
        level = phi * level + eps[i]
        out[i] = level
    return out


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average, edges padded by repetition (length preserved)."""
    pad = np.pad(x, (width // 2, width - 1 - width // 2), mode="edge")
    return np.convolve(pad, np.ones(width) / width, mode="valid")


def _duty_cycle(rng: np.random.Generator, days: int) -> np.ndarray:
    """Machine state per minute, 0..1: on workdays from ~06:00 to ~22:00 (+-10 min), 5-min ramps."""
    on = np.zeros(days * MINUTES_PER_DAY)
    for day in range(days):
        weekday = (START + pd.Timedelta(days=day)).day_of_week
        begin = _at(day, "06:00") + int(rng.integers(-10, 11))
        end = _at(day, "22:00") + int(rng.integers(-10, 11))
        if weekday < 5:
            on[begin:end] = 1.0
    return np.clip(_smooth(on, 5), 0.0, 1.0)


def _clean(rng: np.random.Generator, days: int) -> dict[str, np.ndarray]:
    n = days * MINUTES_PER_DAY
    minute = np.arange(n, dtype=float)
    hour_of_day = (minute % MINUTES_PER_DAY) / 60.0
    on = _duty_cycle(rng, days)

    # Demand on the pump (kW): slowly varying, ~45 min correlation time.
    demand = _smooth(_ar1(rng, n, phi=np.exp(-1 / 45), std=0.8), 15)
    pump_power = 1.2 + 0.08 * demand + on * (4.3 + demand) + rng.normal(0.0, 0.05, n)
    flow = 11.5 * pump_power + 2.0 + rng.normal(0.0, 0.6, n)

    vib_noise = _ar1(rng, n, phi=0.6, std=1.0)
    vibration = (1 - on) * (0.25 + 0.04 * vib_noise) + on * (2.3 + 0.12 * demand + 0.25 * vib_noise)

    # Daily cycle peaking at 15:00; its swing varies from day to day (sunny, overcast).
    swing = np.interp(
        minute,
        np.arange(days + 2) * MINUTES_PER_DAY - MINUTES_PER_DAY / 2,
        rng.uniform(2.2, 3.6, days + 2),
    )
    daily = swing * np.sin(2 * np.pi * (hour_of_day - 9.0) / 24.0)
    weekly = 0.7 * np.sin(2 * np.pi * minute / (7 * MINUTES_PER_DAY) + 1.0)
    machine_heat = 0.8 * _smooth(on, 90)
    temperature = (
        20.0 + daily + weekly + machine_heat
        + _ar1(rng, n, phi=0.98, std=0.3) + rng.normal(0.0, 0.05, n)
    )

    # Header pressure (bar) held at 6.0 by a controller: a slow, mean-reverting wander the
    # controller does not remove, a small sag when the pump works hard, sensor noise.
    wander = _ar1(rng, n, phi=np.exp(-1 / 240), std=0.05)
    pressure = 6.0 + wander - 0.03 * on * demand + rng.normal(0.0, 0.02, n)

    return {
        "temperature": temperature,
        "pressure": pressure,
        "vibration": vibration,
        "flow": flow,
        "pump_power": pump_power,
        "_on": on,
    }


def _inject(
    rng: np.random.Generator, data: dict[str, np.ndarray], event: Event, magnitude: float
) -> None:
    x = data[event.channel]
    window = slice(event.start, event.stop)
    length = event.stop - event.start
    if event.kind == "spike":
        x[window] += magnitude
    elif event.kind == "level_shift":
        x[window] += magnitude
    elif event.kind == "drift":
        ramp = np.linspace(0.0, 1.0, length + 1)[1:]
        if event.channel == "vibration":  # wear: the level grows by a factor
            x[window] *= 1.0 + magnitude * ramp
        else:  # sensor drift: an additive offset growing to `magnitude`
            x[window] += magnitude * ramp
    elif event.kind == "stuck":
        x[window] = x[event.start]
    elif event.kind == "variance_burst":
        local = _smooth(x, 31)[window]
        x[window] = local + magnitude * (x[window] - local)
    elif event.kind == "broken_correlation":
        pump = data["pump_power"][window]
        if magnitude:  # flow stays where it was, with its usual noise, whatever the pump does
            fake = np.full(length, pump[:5].mean())
        else:  # flow mirrors the pump's movements about their mean
            fake = 2 * pump.mean() - pump
        x[window] = 11.5 * fake + 2.0 + rng.normal(0.0, 0.6, length)
    else:  # pragma: no cover - the schedule only names known kinds
        raise AssertionError(event.kind)


def generate(*, days: int = 21, seed: int = 7) -> pd.DataFrame:
    """The sample frame: ``timestamp``, the five channels, ``label`` and ``anomaly_kind``.

    ``days`` (at least 1) sets the length, one row a minute; events that would not end inside it
    are left out. ``seed`` seeds ``numpy.random.default_rng``; the bundled file is
    ``generate()`` with the defaults.
    """
    if isinstance(days, bool) or not isinstance(days, (int, np.integer)) or days < 1:
        raise ConfigError(f"days must be an integer >= 1, got {days!r}")
    rng = np.random.default_rng(seed)
    days = int(days)
    n = days * MINUTES_PER_DAY
    data = _clean(rng, days)
    label = np.zeros(n, dtype=np.int64)
    kind = np.full(n, "", dtype=object)
    for event, magnitude in _scheduled(days):
        _inject(rng, data, event, magnitude)
        label[event.start : event.stop] = 1
        kind[event.start : event.stop] = event.kind
    data["vibration"] = np.maximum(data["vibration"], 0.02)

    frame = pd.DataFrame(
        {"timestamp": pd.date_range(START, periods=n, freq="min", unit="s")}
    )
    for channel in CHANNELS:
        frame[channel] = np.round(data[channel], _DECIMALS[channel])
    frame["label"] = label
    frame["anomaly_kind"] = pd.array(kind, dtype="str")
    return frame


def events(frame: pd.DataFrame) -> list[tuple[str, int, int]]:
    """The anomalies in ``frame`` as ``(kind, start_row, stop_row)`` runs, ``stop`` exclusive.

    Derived from the ``label`` and ``anomaly_kind`` columns (row positions, not index labels).
    """
    kinds = frame["anomaly_kind"].fillna("").astype(str).to_numpy()
    labels = frame["label"].to_numpy() != 0
    keys = np.where(labels, kinds, "")
    runs: list[tuple[str, int, int]] = []
    start = 0
    for i in range(1, len(keys) + 1):
        if i == len(keys) or keys[i] != keys[start]:
            if keys[start] != "":
                runs.append((str(keys[start]), start, i))
            start = i
    return runs


def path() -> pathlib.Path:
    """Where the bundled ``sensors.csv`` is (inside the installed package)."""
    resource = importlib.resources.files("vigil") / "data" / "sensors.csv"
    return pathlib.Path(str(resource))


def write(target: str | pathlib.Path) -> pathlib.Path:
    """Write ``generate()`` (the defaults) as CSV to ``target``; returns the path written."""
    target = pathlib.Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    generate().to_csv(target, index=False, date_format=TIMESTAMP_FORMAT, lineterminator="\n")
    return target


def load(source: str | pathlib.Path | None = None) -> pd.DataFrame:
    """Read the bundled file (or a file ``write`` made) back as ``generate()`` returns it."""
    frame = pd.read_csv(
        path() if source is None else source,
        keep_default_na=False,
        na_values={c: [""] for c in CHANNELS},
    )
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], format=TIMESTAMP_FORMAT).astype(
        "datetime64[s]"
    )
    frame["anomaly_kind"] = frame["anomaly_kind"].astype("str")
    return frame
