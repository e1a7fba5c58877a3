"""The stuck-sensor detector: a channel repeating one value far longer than it did in training is
flagged; channels that hold values by design are learned, not flagged."""

import numpy as np
import pytest

from vigil import sample_data
from vigil.detectors.stuck import StuckSensor, run_lengths
from vigil.errors import ConfigError


def noisy(n, d=1, seed=0):
    """Sensor noise read to two decimals: a repeat now and then, never a long one."""
    return np.random.default_rng(seed).normal(20.0, 1.0, size=(n, d)).round(2)


def sample_and_hold(n, hold, seed=0):
    """A reading the historian updates every ``hold`` rows and repeats in between."""
    fresh = np.random.default_rng(seed).normal(6.0, 0.5, size=n // hold + 1)
    return np.repeat(fresh, hold)[:n, None]


def test_a_noisy_channel_stuck_for_300_rows_is_flagged_and_named():
    X = noisy(3000, d=3)
    det = StuckSensor().fit(X[:1500])
    X[2000:2300, 2] = X[2000, 2]  # channel 2 freezes
    scores = det.score(X)
    assert scores[2299] > det.natural_threshold
    assert scores[:2000].max() <= det.natural_threshold
    assert (det.score_channels(X)[2020:2300].argmax(axis=1) == 2).all()


@pytest.mark.parametrize("hold", [5, 25])
def test_a_channel_held_by_design_is_learned_not_flagged(hold):
    det = StuckSensor().fit(sample_and_hold(2000, hold, seed=0))
    assert det.reference_[0] == max(hold, det.min_run)  # the learnt hold, floored at min_run
    later = sample_and_hold(2000, hold, seed=1)  # the same channel, days later
    assert det.score(later).max() <= 1.0
    later[1000:1100] = later[1000]  # now it holds 100 rows
    assert det.score(later)[1099] > det.natural_threshold


def test_a_channel_quantised_to_few_levels_is_learned_not_flagged():
    t = np.arange(5000)[:, None]
    levels = np.round(2 * np.sin(2 * np.pi * t / 700))  # five levels, long runs at the peaks
    det = StuckSensor().fit(levels)
    assert det.reference_[0] > det.min_run
    assert det.score(np.round(2 * np.sin(2 * np.pi * (t + 123) / 700))).max() <= 1.0


def test_a_channel_constant_through_training_is_never_flagged():
    X = noisy(1000, d=2)
    X[:, 1] = 7.0  # a setpoint, say
    det = StuckSensor().fit(X)
    later = noisy(5000, d=2, seed=1)
    later[:, 1] = 7.0
    later[2500:, 1] = 7.5  # a new setpoint, held for good
    assert (det.score_channels(later)[:, 1] == 0).all()
    assert det.score(later).max() <= det.natural_threshold


def test_scores_saturate_at_the_cap():
    x = np.full((1000, 1), 20.0)  # frozen mid-range after row 500
    x[:500, 0] = noisy(500).ravel()
    det = StuckSensor(saturation=3.0).fit(x[:500])
    scores = det.score(x)
    assert scores[-1] == scores[600] == pytest.approx(3.0)
    assert det._context_rows() == 29  # a run of 30 = 3 x the reference needs 29 rows before it


def test_run_lengths_count_exact_repeats():
    x = np.array([1.0, 1.0, 1.0 + 1e-12, 1.0 + 1e-12, 1.0 + 1e-12, 0.0, -0.0])
    assert run_lengths(x).tolist() == [1, 2, 1, 2, 3, 1, 2]


def test_chunked_scores_equal_whole_scores():
    X = noisy(6000, d=3)
    X[:, 1] = sample_and_hold(6000, 12).ravel()
    det = StuckSensor().fit(X[:2000])
    runs = [(1000, 1300, 0), (2040, 2060, 0), (3070, 3079, 2), (4090, 4300, 2)]
    for start, stop, channel in runs:
        X[start:stop, channel] = X[start, channel]  # runs across the 1024-row chunk edges
    whole, whole_channels = det.score(X), det.score_channels(X)
    det.chunk_bytes = 1  # the smallest chunks: 1024 rows each
    assert np.array_equal(det.score(X), whole)
    assert np.array_equal(det.score_channels(X), whole_channels)


def test_parameters_are_checked_with_one_clear_message():
    msg = r"The 'min_run' parameter of stuck must be an int in \[2, inf\). Got 1"
    with pytest.raises(ConfigError, match=msg):
        StuckSensor(min_run=1).fit(noisy(100))


def test_both_stuck_events_in_the_sample_data_are_caught():
    frame = sample_data.load()
    X = frame[list(sample_data.CHANNELS)].to_numpy(float)
    det = StuckSensor().fit(X[: sample_data.TRAIN_ROWS])
    flagged = det.score(X) > det.natural_threshold
    drivers = det.score_channels(X).argmax(axis=1)
    elsewhere = flagged.copy()
    for event in sample_data.EVENTS:
        if event.kind != "stuck":
            continue
        caught = flagged[event.start : event.stop]
        named = drivers[event.start : event.stop][caught]
        print(f"stuck {event.channel} rows {event.start}-{event.stop}: {caught.sum()} of "
              f"{len(caught)} rows above {det.natural_threshold}")
        assert caught.any()
        assert (named == sample_data.CHANNELS.index(event.channel)).all()
        elsewhere[event.start : event.stop] = False
    false_runs = np.count_nonzero(np.diff(elsewhere.astype(int), prepend=0) == 1)
    print(f"false-alarm runs elsewhere: {false_runs} ({elsewhere.sum()} rows)")
    assert false_runs <= 2


def test_a_stuck_spell_inside_the_training_rows_is_still_flagged():
    # vigil detect fits on the file it flags: the spell must not become the normal hold
    X = np.random.default_rng(3).normal(20.0, 1.0, size=(5000, 1)).round(2)
    X[3000:3200, 0] = X[3000, 0]
    det = StuckSensor().fit(X)
    assert det.reference_[0] < 20
    assert (det.score(X)[3000:3200] > det.natural_threshold).sum() > 150


def test_a_hold_at_the_training_floor_or_ceiling_is_not_stuck():
    X = np.clip(noisy(3000), 19.0, None)  # floored at 19.0, as an idle reading or a clipped one
    det = StuckSensor().fit(X[:1000])
    X[2000:2500, 0] = 19.0  # idling at the floor
    X[1200:1700, 0] = 20.5  # frozen mid-range
    scores = det.score(X)
    assert scores[2000:2500].max() == 0.0 and scores[1300:1700].min() > det.natural_threshold


def test_a_discrete_channel_is_not_watched():
    rng = np.random.default_rng(4)
    command = (rng.random(3000) < 0.02).astype(float)  # a 0/1 command that seldom fires
    X = np.c_[command, rng.normal(size=3000)]
    det = StuckSensor().fit(X[:1000])
    X[1000:, 0] = 0.0  # a long quiet spell: normal for a command
    assert det.score_channels(X)[:, 0].max() == 0.0
