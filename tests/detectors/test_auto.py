"""auto: the default ensemble, chosen by rules that depend only on the shape of the data."""

import numpy as np

from vigil.detectors.auto import MEMBERS, Auto


def plant(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    level = np.sin(2 * np.pi * t / 200)
    return np.c_[level + rng.normal(0, 0.1, n), 2 * level + rng.normal(0, 0.1, n)].round(3)


def test_several_channels_use_shape_range_and_joint_members_and_watch_for_stuck_sensors():
    det = Auto().fit(plant()[:2000])
    used = [m for m, u in zip(MEMBERS, det.use_) if u]
    assert used == ["subsequence_pca", "robust_zscore", "mahalanobis", "stuck"]


def test_a_frozen_reading_in_range_scores_above_every_training_score():
    X = plant()
    det = Auto().fit(X[:2000])
    train_max = det.score(X[:2000]).max()
    X[3000:3300, 1] = X[3000, 1]  # channel 1 freezes at an ordinary value
    scores = det.score(X)
    assert scores[3050:3300].min() > train_max
    assert det.score_channels(X)[3100:3300].argmax(axis=1).tolist() == [1] * 200


def test_short_training_data_uses_the_robust_zscore_alone():
    det = Auto().fit(plant()[:50])
    assert [m for m, u in zip(MEMBERS, det.use_) if u] == ["robust_zscore"]
    assert det.natural_threshold == 3.5


def test_a_member_whose_training_scores_are_mostly_equal_keeps_a_real_scale():
    # Command channels (0/1, mostly 0) beside a sensor, as spacecraft telemetry has: most rows
    # sit at every channel's median, so the robust z-score of most training rows is exactly 0
    # and its MAD is 0. Its scale is then the mean absolute deviation, not a 1e-9 floor that
    # would blow its training scores up to ~1e12 and drown every other member.
    rng = np.random.default_rng(0)
    n = 3000
    commands = (rng.random((n, 4)) < 0.1).astype(float)
    sensor = np.sin(np.arange(n) / 30) + rng.normal(0, 0.05, n)
    X = np.c_[sensor, commands]
    X[:, 0] = np.where(commands.any(axis=1), X[:, 0], np.median(X[:, 0]))
    det = Auto().fit(X)
    i = MEMBERS.index("robust_zscore")
    assert det.scale_[i] > 0.01
    assert det.training_scores(X).max() < 1e3
