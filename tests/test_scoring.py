"""StreamScorer (vigil.scoring): a series fed row by row or in batches of any size, with a save
and restore anywhere, gives what Model.detect gives on the whole series, for every method; the
alarm rules' state machine equals Alarms.events; bad rows are one-line DataErrors."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import vigil
from test_alarms import reference_events
from vigil.alarms import Alarms, AlarmStream
from vigil.detectors import METHODS
from vigil.errors import ConfigError, DataError, DataWarning
from vigil.scoring import StreamScorer

N, TRAIN = 1500, 800
RESULTS = ["position", "time", "score", "threshold", "is_anomaly", "event"]


def series(n: int = N, seed: int = 0) -> pd.DataFrame:
    """Two seasonal channels with a level shift, a spike, a broken correlation and a freeze."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    frame = pd.DataFrame({
        "time": pd.date_range("2024-01-01", periods=n, freq="min"),
        "a": np.sin(2 * np.pi * t / 40) + 0.1 * rng.normal(size=n),
        "b": np.cos(2 * np.pi * t / 40) + 0.1 * rng.normal(size=n),
    })
    frame.loc[1000:1005, "a"] += 3.0
    frame.loc[1200, "b"] -= 4.0
    frame.loc[1100:1130, "b"] = -frame.loc[1100:1130, "b"]
    frame.loc[1300:1340, "b"] = frame.loc[1300, "b"]
    return frame


_MODELS: dict[tuple[str, str], vigil.Model] = {}


def labels(frame: pd.DataFrame) -> np.ndarray:
    """1 on the rows ``series`` made anomalous: what a supervised method learns from."""
    y = np.zeros(len(frame), dtype=int)
    for first, last in [(1000, 1005), (1100, 1130), (1200, 1200), (1300, 1340)]:
        y[first:last + 1] = 1
    return y


def fitted(method: str, **kwargs) -> vigil.Model:
    key = (method, repr(sorted(kwargs.items())))
    if key not in _MODELS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = vigil.Model(method, **kwargs)
            if model.detector.supervised:  # learns the labelled anomalies of the whole series
                _MODELS[key] = model.fit(series(), labels=labels(series()))
            else:
                _MODELS[key] = model.fit(series().iloc[:TRAIN])
    return _MODELS[key]


def stream(scorer: StreamScorer, data, sizes) -> pd.DataFrame:
    """Feed ``data`` (frame or array) in batches of ``sizes`` (cycled), then flush."""
    outs, i, k = [], 0, 0
    while i < len(data):
        step = sizes[k % len(sizes)]
        outs.append(scorer.update(data[i : i + step]))
        i, k = i + step, k + 1
    outs.append(scorer.flush())
    return pd.concat(outs)


def assert_same(streamed: pd.DataFrame, batch: pd.DataFrame, time: bool = True) -> None:
    assert streamed["position"].tolist() == list(range(len(batch)))
    assert streamed.index.tolist() == batch.index.tolist()
    assert np.array_equal(streamed["score"].to_numpy(), batch["score"].to_numpy())  # bit for bit
    assert np.array_equal(streamed["threshold"].to_numpy(), batch["threshold"].to_numpy())
    assert np.array_equal(streamed["is_anomaly"].to_numpy(), batch["is_anomaly"].to_numpy())
    assert np.array_equal(streamed["event"].to_numpy(), batch["event"].to_numpy())
    assert ("driver" in streamed) == ("driver" in batch)
    for column in [c for c in batch.columns if c == "driver" or c.startswith("score_")]:
        assert np.array_equal(streamed[column].to_numpy(), batch[column].to_numpy()), column
    if time:
        assert np.array_equal(streamed["time"].to_numpy(), batch["time"].to_numpy())
    filled = batch["filled"].to_numpy() if "filled" in batch else np.zeros(len(batch), bool)
    assert np.array_equal(streamed["filled"].to_numpy(), filled)


# -- equal to batch, for every method ---------------------------------------------------------

@pytest.mark.parametrize("method", list(METHODS))
def test_one_row_at_a_time_equals_batch(method):
    model, data = fitted(method), series()
    batch = model.detect(data)
    assert batch["event"].max() >= 1  # the series has events to get right
    # matrix_profile rescores its 2-window halo on every call: every other row alone keeps
    # the suite fast and still feeds single rows
    sizes = [1, 9] if method == "matrix_profile" else [1]
    assert_same(stream(StreamScorer(model), data, sizes), batch)


@pytest.mark.parametrize("method", list(METHODS))
def test_random_batches_of_frames_and_arrays_equal_batch(method):
    model, data = fitted(method), series()
    batch = model.detect(data)
    rng = np.random.default_rng(len(method))
    sizes = rng.integers(1, 120, size=40).tolist() + [0, 3, 1, 1, 700]
    assert_same(stream(StreamScorer(model), data, sizes), batch)
    values = data[model.channels_].to_numpy()
    assert_same(stream(StreamScorer(model), values, sizes[::-1]), batch.assign(time=pd.NaT),
                time=False)


@pytest.mark.parametrize("method, alarms", [
    ("robust_zscore", {"exit_level": 0.5, "merge_gap": 5, "min_rows": 4, "cooldown": 30}),
    ("subsequence_pca", {"exit_level": 0.3, "merge_gap": 20, "min_rows": 2, "certain": 5.0}),
    ("forecast", "off"),
    ("auto", {"merge_gap": 0, "min_rows": 1, "cooldown": 100}),
])
def test_other_alarm_rules_equal_batch(method, alarms):
    model, data = fitted(method, alarms=alarms), series()
    assert_same(stream(StreamScorer(model), data, [1, 2, 17, 5]), model.detect(data))


def test_a_short_series_ends_as_batch_ends_it():
    model, data = fitted("subsequence_pca"), series().iloc[:5]  # shorter than one window
    assert_same(stream(StreamScorer(model), data, [1]), model.detect(data))


# -- the halo --------------------------------------------------------------------------------------

def count_scored_rows(detector, monkeypatch) -> list[int]:
    """Rows in each scoring call the scorer makes (not the calls a method makes within)."""
    sizes: list[int] = []
    depth = [0]
    for name in ("score", "score_with_channels"):
        original = getattr(detector, name)

        def spy(X, _original=original):
            if not depth[0]:
                sizes.append(len(X))
            depth[0] += 1
            try:
                return _original(X)
            finally:
                depth[0] -= 1

        monkeypatch.setattr(detector, name, spy)
    return sizes


@pytest.mark.parametrize("method", ["zscore", "robust_zscore", "mahalanobis", "isolation_forest"])
def test_point_wise_methods_never_rescore_a_row(method, monkeypatch):
    model = fitted(method)
    assert model.detector._context_rows() == model.detector._lookahead_rows() == 0
    scorer = StreamScorer(model)
    sizes = count_scored_rows(model.detector, monkeypatch)
    data = series().iloc[:300]
    stream(scorer, data, [1, 4, 10])
    assert sum(sizes) == len(data) and set(sizes) <= {1, 4, 10}


def test_windowed_methods_score_only_the_halo_and_the_new_rows(monkeypatch):
    model = fitted("subsequence_pca")
    before, after = model.detector._context_rows(), model.detector._lookahead_rows()
    assert before > 0 and after > 0
    scorer = StreamScorer(model)
    sizes = count_scored_rows(model.detector, monkeypatch)
    for i in range(400):
        scorer.update(series().iloc[i : i + 1][["a", "b"]])
    assert max(sizes) == before + after + 1
    assert scorer.pending >= after  # rows awaiting their lookahead are not returned yet


def test_rows_come_back_as_soon_as_they_are_final():
    scorer = StreamScorer(fitted("zscore", alarms="off"))
    for i, row in enumerate(series().iloc[:50][["a", "b"]].to_numpy()):
        out = scorer.update(row[None, :])
        assert out["position"].tolist() == [i] and scorer.pending == 0


# -- state to and from bytes -----------------------------------------------------------------------

@pytest.mark.parametrize("method, seed", [("auto", 0), ("subsequence_pca", 1), ("zscore", 2),
                                          ("stuck", 3), ("iqr", 4), ("forecast", 5)])
def test_a_restored_state_continues_as_the_uninterrupted_stream(method, seed):
    model = fitted(method, alarms={"exit_level": 0.5, "merge_gap": 30, "min_rows": 3})
    data = series(seed=seed)
    data.loc[[3, 4, 500, 1001], "a"] = np.nan  # gaps to fill, a leading one among them
    rng = np.random.default_rng(seed)
    whole = stream(StreamScorer(model), data, [1, 7, 13])
    for cut in [*rng.integers(20, N, size=4).tolist(), 20, 1003, 1010]:
        first = StreamScorer(model)
        head = [first.update(data.iloc[: cut - 20])]  # then one row at a time up to the cut
        head += [first.update(data.iloc[i : i + 1]) for i in range(cut - 20, cut)]
        blob = first.state()
        assert isinstance(blob, bytes) and json.loads(blob)["format"] == "vigil.stream"
        second = StreamScorer.from_state(model, blob)
        assert second.state() == blob
        tail = stream(second, data.iloc[cut:], [1, 7, 13])
        pd.testing.assert_frame_equal(pd.concat(head + [tail]), whole)


def test_a_state_resumes_on_the_model_saved_and_loaded(tmp_path):
    model, data = fitted("auto"), series()
    model.save(tmp_path / "m.vigil")
    first = StreamScorer(model)
    head = first.update(data.iloc[:1000])
    second = StreamScorer.from_state(vigil.load(tmp_path / "m.vigil"), first.state())
    assert_same(pd.concat([head, stream(second, data.iloc[1000:], [50])]), model.detect(data))


def test_a_state_for_another_model_or_not_a_state_is_refused():
    scorer = StreamScorer(fitted("zscore"))
    scorer.update(series().iloc[:10])
    blob = scorer.state()
    with pytest.raises(ConfigError, match="written for another model"):
        StreamScorer.from_state(fitted("robust_zscore"), blob)
    with pytest.raises(ConfigError, match="not JSON"):
        StreamScorer.from_state(fitted("zscore"), b"\x80\x04pickle")
    broken = json.loads(blob)
    broken["positions"]["out"] = 7
    with pytest.raises(ConfigError, match="stream state"):
        StreamScorer.from_state(fitted("zscore"), json.dumps(broken).encode())


# -- the alarm rules as a causal state machine ----------------------------------------------------

@pytest.mark.parametrize("seed", range(60))
def test_the_alarm_state_machine_equals_the_vectorised_rules(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 3000))
    scores = np.abs(rng.standard_t(3, size=n)).cumsum() % 7 * rng.random(n)
    if seed % 5 == 0:
        scores = np.round(scores)  # scores exactly at the threshold or the exit level
    alarms = Alarms(exit_level=float(rng.choice([0.0, 0.3, 0.7, 1.0])),
                    merge_gap=int(rng.integers(0, 8)), min_rows=int(rng.integers(1, 5)),
                    certain=float(rng.choice([1.0, 1.5, 3.0])),
                    cooldown=int(rng.integers(0, 20))).fit(scores[: max(1, n // 6)])
    threshold = np.broadcast_to(4.0 if seed % 2 else 3.5 + np.sin(np.arange(n) / 300), (n,))
    want = alarms.events(scores, threshold)
    assert list(zip(want.starts.tolist(), want.stops.tolist())) == reference_events(
        scores, threshold, alarms)
    machine, got, i = AlarmStream(alarms), [], 0
    while i < n:
        k = 1 if seed % 3 == 0 else int(rng.integers(1, 60))
        got.append(machine.update(scores[i : i + k], threshold[i : i + k]))
        assert machine.decided == sum(map(len, got)) and machine.seen == min(i + k, n)
        if seed % 4 == 1:  # through its JSON state now and then
            machine = AlarmStream.from_dict(alarms, json.loads(json.dumps(machine.to_dict())))
        i += k
    got.append(machine.flush())
    np.testing.assert_array_equal(np.concatenate(got), want.numbers(n))


def test_an_unconfirmed_event_can_wait_longer_than_the_rules_lookahead():
    alarms = Alarms(merge_gap=3, min_rows=3).fit(np.zeros(10))
    scores = np.zeros(20)
    scores[[0, 4, 8]] = 1.5  # each crossing within merge_gap of the last: confirmed at row 8
    machine = AlarmStream(alarms)
    assert machine.update(scores[:8], 1.0).size == 0  # row 0 undecided 8 rows on (lookahead 3)
    assert alarms.lookahead_rows == 3
    assert machine.update(scores[8:9], 1.0).tolist() == [1] * 9


# -- the threshold as a pluggable causal state ----------------------------------------------------

def test_a_per_row_threshold_with_its_own_state_plugs_in(monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = vigil.Model("robust_zscore", threshold="dspot").fit(series().iloc[:TRAIN])
    data = series()
    whole = stream(StreamScorer(model), data, [1, 9, 50])
    scores = model.score(data)
    thresholds = model.threshold.values(scores)
    assert np.array_equal(whole["score"], scores)
    assert np.array_equal(whole["threshold"], thresholds) and np.ptp(thresholds) > 0
    numbers = model.alarms.events(scores, thresholds).numbers(len(scores))
    assert np.array_equal(whole["event"], numbers)
    first = StreamScorer(model)
    head = first.update(data.iloc[:700])
    tail = stream(StreamScorer.from_state(model, first.state()), data.iloc[700:], [3])
    pd.testing.assert_frame_equal(pd.concat([head, tail]), whole)


# -- input policy ----------------------------------------------------------------------------------

def test_gaps_fill_from_the_previous_value_and_a_leading_gap_from_the_first():
    model, data = fitted("subsequence_pca"), series()
    data.loc[0:4, "b"] = np.nan  # a leading gap: held until b's first value arrives
    data.loc[[50, 51, 900], "a"] = np.nan
    data.loc[700, "b"] = None
    with pytest.warns(DataWarning):
        batch = model.detect(data)
    scorer = StreamScorer(model)
    assert scorer.update(data.iloc[:3]).empty and scorer.pending == 3
    streamed = pd.concat([stream(scorer, data.iloc[3:], [1, 2])])
    assert_same(pd.concat([streamed]), batch)
    assert streamed["filled"].sum() == 9


def test_a_channel_that_never_has_a_value_is_refused_at_the_end():
    scorer = StreamScorer(fitted("zscore"))
    scorer.update(np.array([[1.0, np.nan], [2.0, np.nan]]))
    with pytest.raises(DataError, match="channel 'b' has no values at all"):
        scorer.flush()


@pytest.mark.parametrize("rows, message", [
    (lambda d: d.iloc[[5, 4]], r"stream position 11 \(row 2 of this update\), column 'time': .* "
                               r"earlier than the row before it"),
    (lambda d: d.drop(columns="b"), "channel 'b', which the model was trained on, is missing"),
    (lambda d: d.assign(a=d["a"].where(d.index != 3, np.inf)),
     r"stream position 13 \(row 4 of this update\), channel 'a': inf is not finite"),
    (lambda d: d.assign(a=d["a"].astype(object).where(d.index != 2, "hot")),
     r"stream position 12 \(row 3 of this update\), column 'a': 'hot' is not a number"),
    (lambda d: d[["a"]].to_numpy(), r"2-D array of rows x 2 channel\(s\) \(a, b\); got shape"),
    (lambda d: d[["a", "b"]].to_numpy()[0], "got shape"),
    (lambda d: d.assign(time=d["time"].where(d.index != 1, None)),
     "stream position 11 .* is not a timestamp"),
])
def test_bad_rows_are_one_line_errors_naming_the_row_and_change_nothing(rows, message):
    model, data = fitted("robust_zscore"), series()
    scorer = StreamScorer(model)
    head = scorer.update(data.iloc[:10])
    blob = scorer.state()
    with pytest.raises(DataError, match=message) as error:
        scorer.update(rows(data.iloc[10:20].reset_index(drop=True)))
    assert "\n" not in str(error.value)
    assert scorer.state() == blob  # nothing changed: the stream goes on
    assert_same(pd.concat([head, stream(scorer, data.iloc[10:], [5])]), model.detect(data))


def test_rows_earlier_than_the_last_update_are_refused():
    scorer = StreamScorer(fitted("zscore"))
    data = series()
    scorer.update(data.iloc[10:12])
    with pytest.raises(DataError, match=r"stream position 2 \(row 1 of this update\)"):
        scorer.update(data.iloc[5:6])
    scorer.update(data.iloc[11:12])  # the same time again is kept, as batch keeps it


def test_a_flushed_stream_takes_no_more_rows():
    scorer = StreamScorer(fitted("zscore"))
    assert len(scorer.update(series().iloc[:5])) + len(scorer.flush()) == 5
    assert scorer.flush().empty
    with pytest.raises(DataError, match="this stream has ended"):
        scorer.update(series().iloc[5:6])


def test_output_columns_are_the_same_in_every_call():
    scorer = StreamScorer(fitted("subsequence_pca"))
    empty, full = scorer.update(series().iloc[:3]), scorer.flush()
    assert empty.empty and list(empty.columns) == list(full.columns)
    assert list(full.columns)[:6] == RESULTS and "driver" in full and full["filled"].dtype == bool
    assert dict(empty.dtypes) == dict(full.dtypes)


def test_update_arrays_gives_the_same_columns_without_the_frame():
    model, data = fitted("auto"), series()
    frames, arrays = StreamScorer(model), StreamScorer(model)
    for i in range(0, 300, 30):
        frame, columns = frames.update(data.iloc[i : i + 30]), arrays.update_arrays(
            data.iloc[i : i + 30])
        assert list(frame.columns) == list(columns)
        for name, values in columns.items():
            assert np.array_equal(frame[name].to_numpy(), np.asarray(values)), name
    assert frames.flush()["position"].tolist() == arrays.flush_arrays()["position"].tolist()


def test_stream_scorer_is_in_the_public_api():
    assert vigil.StreamScorer is StreamScorer


def test_times_with_a_zone_come_back_as_batch_gives_them():
    data = series()
    data["time"] = data["time"].dt.tz_localize("Europe/Berlin")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = vigil.Model("robust_zscore").fit(data.iloc[:TRAIN])
    batch = model.detect(data)
    first = StreamScorer(model)
    head = first.update(data.iloc[:900])
    streamed = pd.concat([head, stream(StreamScorer.from_state(model, first.state()),
                                       data.iloc[900:], [11])])
    assert streamed["time"].dtype == batch["time"].dtype
    assert (streamed["time"] == batch["time"]).all()
    with pytest.raises(DataError, match="without a time zone, after times with one"):
        first.update(data.iloc[900:901].assign(time=data["time"].dt.tz_localize(None)))


def test_a_scorer_takes_one_series():
    frame = series().assign(machine="a")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = vigil.Model("zscore", series_column="machine").fit(frame.iloc[:TRAIN])
    scorer = StreamScorer(model)
    scorer.update(frame.iloc[:10])
    with pytest.raises(DataError, match=r"stream position 12 .* series 'b' in the stream of "
                                        r"series 'a'"):
        scorer.update(frame.iloc[10:13].assign(machine=["a", "a", "b"]))
