"""Sensor series to stream in the tests: several pumps, interleaved, with anomalies."""

import numpy as np
import pandas as pd


def sensor_series(names=("pump-1", "pump-2", "pump-3"), rows=400, seed=0):
    """Interleaved readings of several pumps, one minute apart, each with a spike and a level
    shift: columns timestamp, pump, temperature, pressure."""
    rng = np.random.default_rng(seed)
    frames = []
    for k, name in enumerate(names):
        t = np.arange(rows)
        temperature = 60 + 3 * np.sin(t / 15 + k) + rng.normal(0, 0.3, rows)
        pressure = 950 + 10 * np.cos(t / 20) + rng.normal(0, 1.0, rows)
        temperature[rows // 2 + 7 * k: rows // 2 + 7 * k + 4] += 12
        pressure[3 * rows // 4: 3 * rows // 4 + 6] -= 60
        frames.append(pd.DataFrame({
            "timestamp": pd.date_range("2024-03-19", periods=rows, freq="min"),
            "pump": name, "temperature": temperature, "pressure": pressure}))
    return (pd.concat(frames).sort_values(["timestamp", "pump"], kind="stable")
            .reset_index(drop=True))
