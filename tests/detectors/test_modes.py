"""The operating-modes detector: a row is judged against the mode (off, running, a start-up seen
in training) that explains it best."""

import numpy as np
import pytest

from vigil.detectors.modes import OperatingModes
from vigil.errors import ConfigError

PUMP, FLOW, VIBRATION = 0, 1, 2


def machine(rows=6000, seed=0, period=500):
    """A duty-cycled machine: off and running in turns of ``period`` rows, 5-row ramps between
    (12 starts and stops in 6,000 rows). Flow follows pump power in both modes; vibration is
    quiet when off and louder when running."""
    rng = np.random.default_rng(seed)
    running = (np.arange(rows) // period % 2).astype(float)
    running = np.convolve(np.pad(running, 2, mode="edge"), np.ones(5) / 5, mode="valid")
    pump = 1.2 + 4.3 * running + rng.normal(0, 0.1, rows)
    flow = 11.5 * pump + 2.0 + rng.normal(0, 0.5, rows)
    vibration = 0.25 + 2.05 * running + (0.05 + 0.15 * running) * rng.normal(size=rows)
    return np.column_stack([pump, flow, vibration]), running


@pytest.fixture(scope="module")
def fitted():
    X, _ = machine()
    return OperatingModes().fit(X)


def test_a_spike_inside_the_global_range_is_flagged_within_its_mode(fitted):
    # vibration 1.0 is common over all rows (between 0.25 off and 2.3 running), not when off
    off_and_shaking = np.array([[1.2, 15.8, 1.0]])
    assert fitted.score(off_and_shaking)[0] > fitted.natural_threshold
    assert fitted.score_channels(off_and_shaking)[0].argmax() == VIBRATION


def test_ordinary_starts_and_stops_are_not_flagged(fitted):
    X, running = machine(seed=1)  # a fresh run of the same machine
    scores = fitted.score(X)
    ramp = (running > 0) & (running < 1)
    assert ramp.sum() == 44  # 11 starts and stops of 4 rows between the modes
    assert scores[ramp].max() < fitted.natural_threshold
    assert scores[ramp].max() < scores[~ramp].max()  # no higher than steady running or rest


def test_a_broken_correlation_within_a_mode_is_flagged(fitted):
    # running, pump 2 sigma high and flow 2 sigma low: each value normal, together not
    broken = np.array([[5.7, 11.5 * 5.3 + 2.0, 2.3]])
    assert fitted.score(broken)[0] > 2 * fitted.natural_threshold
    assert set(np.argsort(fitted.score_channels(broken)[0])[-2:]) == {PUMP, FLOW}


def test_a_burst_of_noise_at_rest_is_flagged(fitted):
    X, running = machine(seed=1)
    normal_max = fitted.score(X).max()
    rest = np.flatnonzero(running == 0)[100:130]
    X[rest, VIBRATION] = 0.25 + 0.4 * np.random.default_rng(5).normal(size=len(rest))  # x8
    assert fitted.score(X)[rest].max() > normal_max


def test_normal_rows_of_each_mode_score_low(fitted):
    running, off = np.array([[5.5, 65.25, 2.3]]), np.array([[1.2, 15.8, 0.25]])
    assert fitted.score(running)[0] < 1 and fitted.score(off)[0] < 1


def test_bic_finds_two_modes_on_two_mode_data_and_one_on_one():
    rng = np.random.default_rng(0)
    running = np.repeat([0.0, 1.0] * 5, 300)  # switches with no rows between the modes
    pump = 1.2 + 4.3 * running + rng.normal(0, 0.1, len(running))
    two = np.column_stack([pump, 11.5 * pump + rng.normal(0, 0.5, len(pump))])
    assert len(OperatingModes().fit(two).weights_) == 2
    pump = rng.normal(5, 1, 3000)
    one = np.column_stack([pump, 11.5 * pump + rng.normal(0, 0.5, 3000), rng.normal(size=3000)])
    assert len(OperatingModes().fit(one).weights_) == 1


def test_max_modes_caps_the_modes():
    X, _ = machine()
    det = OperatingModes(max_modes=1).fit(X)
    assert len(det.weights_) == 1 and len(det.bic_) == 1


def test_outliers_in_the_training_rows_do_not_become_a_mode():
    X, _ = machine()
    rng = np.random.default_rng(3)
    scattered = rng.choice(len(X), 60, replace=False)  # 1% of rows anywhere in the box
    X[scattered] = rng.uniform([0, 0, 0], [8, 100, 4], size=(60, 3))
    det = OperatingModes().fit(X)
    off_and_shaking = np.array([[1.2, 15.8, 1.0]])
    assert det.score(off_and_shaking)[0] > det.natural_threshold


def test_a_channel_constant_in_training_is_not_scored():
    X, _ = machine()
    X = np.column_stack([X, np.full(len(X), 6.0)])  # a setpoint that never moved
    det = OperatingModes().fit(X)
    changed = X[:100].copy()
    changed[:, 3] = 7.0
    np.testing.assert_array_equal(det.score(changed), det.score(X[:100]))
    assert (det.score_channels(changed)[:, 3] == 0).all()
    assert det.natural_threshold == OperatingModes().fit(X[:, :3]).natural_threshold


def test_all_channels_constant_scores_zero():
    det = OperatingModes().fit(np.full((50, 2), 3.0))
    assert (det.score(np.array([[3.0, 3.0], [4.0, 1.0]])) == 0).all()


def test_parameters_are_checked_with_one_clear_message():
    with pytest.raises(ConfigError, match=r"The 'max_modes' parameter of modes must be an int "
                                          r"in \[1, inf\)\. Got 0\."):
        OperatingModes(max_modes=0).fit(machine()[0])


def test_a_rare_level_of_a_quantised_channel_is_not_hundreds_of_sigma_away():
    # flow reported in whole litres, jittered by thousandths: 32 mostly, 33 at times, 31 in 8
    # rows of 1,000. Without dequantisation a mode pins to one level (its flow spread the
    # jitter) and those 8 training rows scored over 1,000.
    rng = np.random.default_rng(0)
    level = np.full(1000, 32.0)
    level[rng.choice(1000, 60, replace=False)] = 33.0
    level[rng.choice(1000, 8, replace=False)] = 31.0
    X = np.column_stack([rng.normal(size=1000), level + 0.002 * rng.integers(0, 3, 1000)])
    assert OperatingModes().fit(X).score(X).max() < 10
