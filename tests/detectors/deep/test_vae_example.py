"""The example of the VAE description, done right: a noisy sine of 100 points with a +2 bump
over 10 of them. The VAE sees windows (time context), the data is scaled, and the threshold is
fitted on its training scores, not hand-set at 0.1."""

import numpy as np
import pandas as pd

import vigil


def noisy_sine(n, seed):
    t = np.arange(n)
    return np.sin(2 * np.pi * t / 20) + 0.1 * np.random.default_rng(seed).normal(size=n)


def flags(**params):
    model = vigil.Model("vae", **params).fit(pd.DataFrame({"value": noisy_sine(1000, seed=1)}))
    series = noisy_sine(100, seed=2)
    series[60:70] += 2.0
    result = model.detect(pd.DataFrame({"value": series}))
    return set(np.flatnonzero(result["is_anomaly"])), model.detector.window_


def test_the_vae_flags_the_bump_with_its_default_threshold_and_little_else():
    flagged, _ = flags(row_error="min")
    assert set(range(60, 70)) <= flagged  # the whole bump
    assert len(flagged - set(range(60, 70))) <= 3  # and no more than a few other points


def test_by_default_its_flags_spread_at_most_a_window_around_the_bump():
    flagged, window = flags()
    assert set(range(60, 70)) <= flagged
    assert min(flagged) > 60 - window and max(flagged) < 70 + window
