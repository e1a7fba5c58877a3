"""Alarm rules: threshold crossings become events (hysteresis, merge gap, minimum duration,
cool-down), the same as a causal row-by-row state machine, per series in a Model."""

import numpy as np
import pandas as pd
import pytest

import vigil
from vigil.alarms import OFF, Alarms, event_table, events_of_pieces, make_alarms
from vigil.errors import ConfigError


def spans(alarms, scores, threshold=1.0):
    events = alarms.events(np.asarray(scores, dtype=float), threshold)
    return list(zip(events.starts.tolist(), events.stops.tolist()))


def reference_events(scores, threshold, alarms):
    """The rules as a stream applies them: one row at a time, in time order."""
    threshold = np.broadcast_to(np.asarray(threshold, dtype=float), scores.shape)
    found, current, gap, free_from = [], None, 0, 0
    for t, (s, thr) in enumerate(zip(scores, threshold)):
        center = min(alarms.center_, thr)
        exit_level = center + alarms.exit_level * (thr - center)
        certain = center + alarms.certain * (thr - center)
        if current is None:
            if s > thr and t >= free_from:
                current, gap = {"start": t, "last": t, "above": 1, "certain": s >= certain}, 0
            continue
        if s > thr or s >= exit_level:
            current["last"], gap = t, 0
            current["above"] += int(s > thr)
            current["certain"] |= bool(s >= certain)
            continue
        gap += 1
        if gap > alarms.merge_gap:
            if current["above"] >= alarms.min_rows or current["certain"]:
                found.append((current["start"], current["last"] + 1))
                free_from = current["last"] + 1 + alarms.cooldown
            current = None
    if current is not None and (current["above"] >= alarms.min_rows or current["certain"]):
        found.append((current["start"], current["last"] + 1))
    return found


def test_hysteresis_keeps_an_event_open_until_the_score_falls_below_the_exit_level():
    alarms = Alarms(exit_level=0.5, merge_gap=0, min_rows=1).fit(np.zeros(10))
    assert spans(alarms, [0, 2, 0.8, 0.6, 0.4, 0, 2]) == [(1, 4), (6, 7)]


def test_short_gaps_merge_into_one_event():
    alarms = Alarms(exit_level=1.0, merge_gap=2, min_rows=1).fit(np.zeros(10))
    assert spans(alarms, [2, 0, 0, 2, 0, 0, 0, 2]) == [(0, 4), (7, 8)]


def test_a_lone_crossing_is_dropped_unless_it_is_far_above_the_threshold():
    alarms = Alarms(exit_level=1.0, merge_gap=0, min_rows=2, certain=3.0).fit(np.zeros(10))
    assert spans(alarms, [0, 1.5, 0, 0, 3.5, 0, 1.5, 1.5]) == [(4, 5), (6, 8)]


def test_no_event_opens_during_the_cool_down():
    alarms = Alarms(exit_level=1.0, merge_gap=0, min_rows=1, cooldown=3).fit(np.zeros(10))
    assert spans(alarms, [2, 0, 2, 0, 0, 2, 2]) == [(0, 1), (5, 7)]


def test_off_flags_exactly_the_rows_above_the_threshold():
    scores = np.random.default_rng(1).normal(size=5000)
    events = make_alarms("off").fit(scores).events(scores, 1.5)
    np.testing.assert_array_equal(events.mask(scores.size), scores > 1.5)


@pytest.mark.parametrize("seed", range(40))
def test_events_equal_the_row_by_row_rules(seed):
    rng = np.random.default_rng(seed)
    scores = np.abs(rng.standard_t(3, size=3000)).cumsum() % 7 * rng.random(3000)
    alarms = Alarms(exit_level=float(rng.choice([0.0, 0.3, 0.7, 1.0])),
                    merge_gap=int(rng.integers(0, 8)), min_rows=int(rng.integers(1, 5)),
                    certain=float(rng.choice([1.0, 1.5, 3.0])),
                    cooldown=int(rng.integers(0, 20))).fit(scores[:500])
    threshold = 4.0 if seed % 2 else 3.5 + np.sin(np.arange(3000) / 300)  # fixed or per row
    assert spans(alarms, scores, threshold) == reference_events(scores, threshold, alarms)


@pytest.mark.parametrize("seed", range(20))
def test_events_of_a_series_given_piece_by_piece_equal_those_of_the_whole(seed):
    rng = np.random.default_rng(100 + seed)
    scores = np.abs(rng.standard_t(3, size=3000)).cumsum() % 7 * rng.random(3000)
    alarms = Alarms(exit_level=float(rng.choice([0.0, 0.7, 1.0])),
                    merge_gap=int(rng.integers(0, 60)), min_rows=int(rng.integers(1, 5)),
                    cooldown=int(rng.integers(0, 20))).fit(scores[:500])
    threshold = 3.5 + np.sin(np.arange(3000) / 300)
    cuts = np.sort(rng.choice(np.arange(1, 3000), size=int(rng.integers(1, 40)), replace=False))
    pieces = [(s, t) for s, t in zip(np.split(scores, cuts), np.split(threshold, cuts))]
    whole = alarms.events(scores, threshold)
    piecewise = events_of_pieces(alarms, pieces)
    assert piecewise.starts.tolist() == whole.starts.tolist()
    assert piecewise.stops.tolist() == whole.stops.tolist()


def test_invalid_rules_are_refused_with_one_line():
    with pytest.raises(ConfigError, match="'merge_gap' alarm rule must be an int >= 0"):
        Alarms(merge_gap=-1)
    with pytest.raises(ConfigError, match="'exit_level' alarm rule must be a float in"):
        Alarms(exit_level=1.5)
    with pytest.raises(ConfigError, match="unknown alarm rule 'gap'"):
        make_alarms({"gap": 3})


def test_rules_round_trip_through_a_dict():
    alarms = Alarms(merge_gap=7, cooldown=4).fit(np.arange(11.0))
    again = Alarms.from_dict(alarms.to_dict())
    assert again == alarms and again.center_ == 5.0


def plant(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"time": pd.date_range("2024-01-01", periods=n, freq="min"),
                          "temperature": rng.normal(20, 0.5, n)})
    frame.loc[3000:3029, "temperature"] += np.where(np.arange(30) % 4 == 0, 0.0, 6.0)
    return frame


def test_one_incident_is_one_event_in_detect_and_in_the_event_table():
    frame = plant()
    model = vigil.Model("robust_zscore").fit(frame.iloc[:2000])
    result = model.detect(frame)
    assert set(result.loc[result["is_anomaly"], "event"]) == {1}
    assert result.loc[3001:3029, "is_anomaly"].all()  # the dips inside are part of the event
    table = event_table(result)
    assert len(table) == 1 and table.loc[0, "driver"] == "temperature"
    assert table.loc[0, "start"] == frame.loc[3001, "time"]
    assert table.loc[0, "rows"] == result["is_anomaly"].sum() >= 29
    assert table.loc[0, "duration"] == table.loc[0, "end"] - table.loc[0, "start"]


def test_events_are_numbered_per_series_and_never_cross_a_series_boundary():
    a, b = plant(seed=1), plant(seed=2)
    a.loc[3990:, "temperature"] += 8.0  # an anomaly running to a's last row ...
    b.loc[:5, "temperature"] += 8.0  # ... and one from b's first: two events, not one
    both = pd.concat([a.assign(machine="a"), b.assign(machine="b")], ignore_index=True)
    model = vigil.Model("robust_zscore", series_column="machine").fit(
        both[(both.index % 4000 > 10) & (both.index % 4000 < 2000)])
    table = event_table(model.detect(both))
    assert table["event"].tolist() == list(range(1, len(table) + 1))
    assert set(table["machine"]) == {"a", "b"}
    assert (table.groupby("machine")["start"].min() < table.groupby("machine")["end"].max()).all()


def test_saved_rules_decide_the_same_after_loading(tmp_path):
    frame = plant()
    model = vigil.Model("robust_zscore", alarms={"merge_gap": 0, "min_rows": 1}).fit(frame)
    model.save(tmp_path / "m.vigil")
    again = vigil.load(tmp_path / "m.vigil")
    assert again.alarms == model.alarms
    pd.testing.assert_frame_equal(again.detect(frame), model.detect(frame))


def test_off_turns_the_rules_off_in_a_model():
    frame = plant()
    model = vigil.Model("robust_zscore", alarms="off").fit(frame.iloc[:2000])
    result = model.detect(frame)
    np.testing.assert_array_equal(result["is_anomaly"], result["score"] > result["threshold"])
    assert model.alarms.to_dict() == {**OFF, "center_": model.alarms.center_}
