"""flag_metrics: the model's own flags against labels, checked on hand-counted examples and
against a row-by-row reference."""

import math

import numpy as np
import pandas as pd
import pytest

from vigil.errors import DataError
from vigil.evaluation import FLAG_METRICS, flag_metrics, runs


def test_runs_gives_slice_bounds_of_each_run_of_true():
    starts, stops = runs([True, True, False, True, False, False, True])
    assert starts.tolist() == [0, 3, 6] and stops.tolist() == [2, 4, 7]
    assert [a.tolist() for a in runs([False, False])] == [[], []]
    assert [a.tolist() for a in runs(np.ones(4, bool))] == [[0], [4]]


def test_a_late_catch_a_miss_and_two_false_alarms():
    # event [2, 5) is caught at row 3 (delay 1); event [8, 10) is missed; the flagged runs
    # [6, 8) and [11, 12) (cut by the end of the evaluated rows) touch no label
    label = [0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 0, 0]
    flags = [0, 0, 0, 1, 1, 0, 1, 1, 0, 0, 0, 1]
    times = pd.date_range("2024-01-01", periods=12, freq="h")  # 11 hours
    m = flag_metrics(flags, label, oracle_f1=0.8, times=times)
    assert list(m) == list(FLAG_METRICS)
    assert m["flagged"] == pytest.approx(5 / 12)
    assert m["precision"] == pytest.approx(2 / 5) and m["recall"] == pytest.approx(2 / 5)
    assert m["F1"] == pytest.approx(0.4) and m["oracle F1"] == 0.8
    assert m["F1 / oracle"] == pytest.approx(0.5)
    assert m["events caught"] == 0.5
    assert m["false alarms / 1k rows"] == pytest.approx(2000 / 12)
    assert m["false alarms / day"] == pytest.approx(2 / (11 / 24))
    # event precision: 1 of 3 flagged runs touches a label; recall 1 of 2 events
    assert m["event-F1"] == pytest.approx(2 * (1 / 3) * (1 / 2) / (1 / 3 + 1 / 2))
    assert m["delay"] == 1.0


def test_a_flag_just_before_an_event_is_a_false_alarm_and_delay_is_a_mean():
    label = [0, 0, 1, 1, 0, 0, 1, 1, 1, 1]
    flags = [0, 1, 0, 1, 0, 0, 1, 0, 0, 0]  # row 1 only borders the event at rows 2-3
    m = flag_metrics(flags, label)
    assert m["false alarms / 1k rows"] == 100.0
    assert m["events caught"] == 1.0 and m["delay"] == 0.5  # delays 1 and 0
    assert math.isnan(m["oracle F1"]) and math.isnan(m["F1 / oracle"])
    assert math.isnan(m["false alarms / day"])  # no times


def test_runs_cut_by_the_evaluation_boundary_count_from_the_boundary():
    # the event and a flagged run both start at the first evaluated row
    m = flag_metrics([1, 1, 0, 0, 0, 1], [1, 1, 1, 0, 0, 1])
    assert m["events caught"] == 1.0 and m["delay"] == 0.0
    assert m["false alarms / 1k rows"] == 0.0 and m["event-F1"] == 1.0
    m = flag_metrics([0, 1, 0, 0, 0, 1], [1, 1, 0, 0, 0, 1])
    assert m["delay"] == 0.5  # 1 row late for the event cut at row 0, on time for the last


def test_no_flags():
    m = flag_metrics(np.zeros(6, bool), [0, 1, 1, 0, 0, 0])
    assert m["flagged"] == 0.0 and m["precision"] == 0.0 and m["recall"] == 0.0
    assert m["F1"] == 0.0 and m["events caught"] == 0.0 and m["event-F1"] == 0.0
    assert m["false alarms / 1k rows"] == 0.0 and math.isnan(m["delay"])


def test_all_flagged():
    m = flag_metrics(np.ones(5, bool), [0, 1, 1, 0, 1], oracle_f1=0.75)
    assert m["flagged"] == 1.0 and m["precision"] == pytest.approx(0.6)
    assert m["recall"] == 1.0 and m["F1"] == pytest.approx(0.75)
    assert m["F1 / oracle"] == pytest.approx(1.0)
    assert m["events caught"] == 1.0 and m["event-F1"] == 1.0 and m["delay"] == 0.0
    assert m["false alarms / 1k rows"] == 0.0


def test_no_labelled_event_leaves_event_metrics_undefined():
    m = flag_metrics([0, 1, 1, 0, 1], [0, 0, 0, 0, 0])
    for key in ("recall", "F1", "events caught", "event-F1", "delay"):
        assert math.isnan(m[key]), key
    assert m["precision"] == 0.0 and m["false alarms / 1k rows"] == 400.0


def test_times_per_day_and_their_checks():
    flags, label = [1, 0, 0, 0], [0, 0, 1, 0]
    utc_plus_2 = pd.Series(pd.date_range("2024-01-01", periods=4, freq="D", tz="Etc/GMT-2"))
    per_day = flag_metrics(flags, label, times=utc_plus_2)["false alarms / day"]
    assert per_day == pytest.approx(1 / 3)  # one false alarm over three days
    same = pd.Series(pd.to_datetime(["2024-01-01"] * 4))
    assert math.isnan(flag_metrics(flags, label, times=same)["false alarms / day"])
    with pytest.raises(DataError, match="one timestamp per row"):
        flag_metrics(flags, label, times=utc_plus_2[:3])


def test_inputs_that_are_not_flags_and_labels_fail_in_one_line():
    with pytest.raises(DataError, match="of one length"):
        flag_metrics([1, 0, 0], [0, 1])
    with pytest.raises(DataError, match="flags must hold only 0 and 1"):
        flag_metrics([0.2, 3.5, 0.1], [0, 1, 0])  # scores, not flags
    with pytest.raises(DataError, match="label must hold only 0 and 1"):
        flag_metrics([0, 1, 0], [0, 2, 0])


def _reference(flags, label):
    """Row by row, the definitions as written: the counts flag_metrics must reproduce."""
    events, flagged_runs, i = [], [], 0
    for series, out in ((label, events), (flags, flagged_runs)):
        i = 0
        while i < len(series):
            if series[i]:
                j = i
                while j < len(series) and series[j]:
                    j += 1
                out.append((i, j))
                i = j
            else:
                i += 1
    delays = [next(r for r in range(a, b) if flags[r]) - a for a, b in events
              if any(flags[a:b])]
    touching = sum(any(label[a:b]) for a, b in flagged_runs)
    return {"events caught": len(delays) / len(events) if events else math.nan,
            "false alarms / 1k rows": 1000 * (len(flagged_runs) - touching) / len(flags),
            "delay": float(np.mean(delays)) if delays else math.nan,
            "precision": sum(f and t for f, t in zip(flags, label)) / sum(flags)
            if sum(flags) else 0.0}


def test_matches_a_row_by_row_reference_on_random_series():
    rng = np.random.default_rng(7)
    for _ in range(300):
        n = int(rng.integers(1, 40))
        label = (rng.random(n) < rng.random()).astype(int)
        flags = rng.random(n) < rng.random()
        got, want = flag_metrics(flags, label), _reference(flags.tolist(), label.tolist())
        for key, value in want.items():
            assert got[key] == pytest.approx(value, nan_ok=True), (key, flags, label)


def test_a_series_of_millions_of_rows():
    rng = np.random.default_rng(0)
    label = np.repeat(rng.random(20_000) < 0.05, 100)  # 2M rows, events of 100 rows or more
    flags = rng.random(label.size) < 0.05  # misses a 100-row event with probability 0.6%
    m = flag_metrics(flags, label)
    assert 0.98 < m["events caught"] <= 1.0 and m["delay"] < 30
    # a flagged run starts at a row with probability p (1 - p), and about 95% of rows are normal
    assert m["false alarms / 1k rows"] == pytest.approx(1000 * 0.05 * 0.95 ** 2, rel=0.05)
