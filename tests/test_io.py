"""Tests of vigil.io: reading every format, every bad input's message, every repair's warning."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from vigil import io
from vigil.errors import DataError, DataWarning

EXAMPLE = Path("/work/shared/datasets/examples/sensor_data.csv")
SKAB = Path("/work/shared/datasets/skab/valve1__0.csv")

GOOD_CSV = """timestamp,temperature,pressure
2024-03-19 12:00:00,25.3,1012.5
2024-03-19 12:01:00,26.1,1011.8
2024-03-19 12:02:00,100.0,950.0
"""


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def read_quietly(path: Path, **roles) -> io.Dataset:
    """Read without failing the test on a DataWarning it does not look at."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return io.read(path, **roles)


@pytest.fixture(autouse=True)
def _warnings_are_errors():
    # A test that does not expect a repair must not get one: unexpected DataWarnings fail it.
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        yield


# ---------------------------------------------------------------- reading good files


def test_read_the_example_file():
    data = io.read(EXAMPLE)
    assert len(data) == 4
    assert data.time_column == "timestamp"
    assert data.channels == ["temperature", "pressure"]
    assert data.label_column is None and data.labels() is None
    assert data.source == str(EXAMPLE)
    values = data.values()
    assert values.dtype == np.float64 and values.shape == (4, 2)
    assert values[2].tolist() == [100.0, 950.0]
    assert pd.api.types.is_datetime64_any_dtype(data.frame["timestamp"])
    np.testing.assert_array_equal(data.order, np.arange(4))
    assert not data.missing_mask().any()


def test_read_a_skab_file_with_labels():
    data = io.read(SKAB, label_column="label")
    assert len(data.channels) == 8
    assert "label" not in data.channels and "timestamp" not in data.channels
    labels = data.labels()
    assert labels.dtype == np.int8 and set(np.unique(labels)) <= {0, 1}
    assert len(labels) == len(data) == len(data.values())


def test_frame_keeps_input_order_and_a_range_index(tmp_path):
    data = io.read(write(tmp_path, "d.csv", GOOD_CSV))
    assert isinstance(data.frame.index, pd.RangeIndex)
    assert list(data.frame.columns) == ["timestamp", "temperature", "pressure"]


def test_values_are_cached_and_read_only(tmp_path):
    data = io.read(write(tmp_path, "d.csv", GOOD_CSV))
    assert data.values() is data.values()
    with pytest.raises(ValueError):
        data.values()[0, 0] = 1.0


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_sniffs_the_delimiter(tmp_path, delimiter):
    path = write(tmp_path, "d.csv", GOOD_CSV.replace(",", delimiter))
    assert io.read(path).channels == ["temperature", "pressure"]


def test_reads_tsv_and_txt(tmp_path):
    assert len(io.read(write(tmp_path, "d.tsv", GOOD_CSV.replace(",", "\t")))) == 3
    assert len(io.read(write(tmp_path, "d.txt", GOOD_CSV))) == 3


def test_unknown_suffix_is_read_as_csv(tmp_path):
    assert io.read(write(tmp_path, "d.data", GOOD_CSV)).channels == ["temperature", "pressure"]


def test_reads_utf8_with_bom(tmp_path):
    data = io.read(write(tmp_path, "d.csv", b"\xef\xbb\xbf" + GOOD_CSV.encode()))
    assert data.time_column == "timestamp"


def test_reads_parquet(tmp_path):
    frame = pd.read_csv(EXAMPLE, parse_dates=["timestamp"])
    frame.to_parquet(tmp_path / "d.parquet")
    data = io.read(tmp_path / "d.parquet")
    assert data.channels == ["temperature", "pressure"]
    np.testing.assert_array_equal(data.values(), frame[["temperature", "pressure"]].to_numpy())


def test_parquet_saved_as_csv_is_read_as_parquet(tmp_path):
    pd.read_csv(EXAMPLE).to_parquet(tmp_path / "d.csv")
    assert len(io.read(tmp_path / "d.csv")) == 4


def test_reads_json_lines(tmp_path):
    rows = [{"ts": "2024-01-01T00:00:0%d" % i, "x": float(i), "y": i * 2} for i in range(3)]
    path = write(tmp_path, "d.jsonl", "\n".join(json.dumps(row) for row in rows) + "\n")
    data = io.read(path)
    assert data.time_column == "ts" and data.channels == ["x", "y"]
    assert data.values()[:, 1].tolist() == [0.0, 2.0, 4.0]


def test_reads_a_json_array(tmp_path):
    rows = [{"time": "2024-01-01T00:00:0%d" % i, "x": i} for i in range(3)]
    data = io.read(write(tmp_path, "d.json", json.dumps(rows)))
    assert data.channels == ["x"] and len(data) == 3


def test_a_json_file_may_hold_json_lines(tmp_path):
    path = write(tmp_path, "d.json", '{"x": 1}\n{"x": 2}\n')
    assert io.read(path).values()[:, 0].tolist() == [1.0, 2.0]


def test_without_a_time_column_rows_stay_in_file_order(tmp_path):
    data = io.read(write(tmp_path, "d.csv", "a,b\n3,1\n1,2\n2,3\n"))
    assert data.time_column is None
    np.testing.assert_array_equal(data.order, [0, 1, 2])


def test_time_column_found_by_dtype(tmp_path):
    frame = pd.DataFrame({"when": pd.date_range("2024", periods=3, freq="s"), "x": [1.0, 2, 3]})
    assert io.from_frame(frame).time_column == "when"


def test_time_column_by_name_is_case_insensitive(tmp_path):
    data = io.read(write(tmp_path, "d.csv", "Date,x\n2024-01-01,1\n2024-01-02,2\n"))
    assert data.time_column == "Date" and data.channels == ["x"]


def test_keeps_microseconds_and_time_zones(tmp_path):
    text = "timestamp,x\n2024-01-01T00:00:00.000001+00:00,1\n2024-01-01T00:00:00.000002+00:00,2\n"
    times = io.read(write(tmp_path, "d.csv", text)).frame["timestamp"]
    assert times.dt.tz is not None
    assert (times.iloc[1] - times.iloc[0]) == pd.Timedelta(microseconds=1)


def test_mixed_date_formats_are_parsed(tmp_path):
    text = "timestamp,x\n2024-01-01 00:00:00,1\n01/02/2024 00:00,2\n"
    with pytest.warns(DataWarning, match="can be read day/month or month/day"):
        times = io.read(write(tmp_path, "d.csv", text)).frame["timestamp"]
    assert times.iloc[1] == pd.Timestamp("2024-01-02")  # ambiguous: month first, said so


@pytest.mark.parametrize("scale, unit", [(1, "s"), (1000, "ms")])
def test_epoch_numbers_become_timestamps(tmp_path, scale, unit):
    text = f"timestamp,x\n{1710849600 * scale},1\n{1710849660 * scale},2\n"
    data = io.read(write(tmp_path, "d.csv", text))
    assert data.frame["timestamp"].iloc[0] == pd.Timestamp("2024-03-19 12:00:00")
    assert data.channels == ["x"]


def test_text_columns_are_not_channels(tmp_path):
    text = "timestamp,x,status\n2024-01-01,1,ok\n2024-01-02,2,fail\n"
    assert io.read(write(tmp_path, "d.csv", text)).channels == ["x"]


def test_explicit_channels_in_the_given_order(tmp_path):
    data = io.read(write(tmp_path, "d.csv", GOOD_CSV), channels=["pressure", "temperature"])
    assert data.channels == ["pressure", "temperature"]
    assert data.values()[0].tolist() == [1012.5, 25.3]


def test_labels_as_booleans_and_words(tmp_path):
    frame = pd.DataFrame({"x": [1.0, 2.0], "flag": [True, False]})
    assert io.from_frame(frame, label_column="flag").labels().tolist() == [1, 0]
    path = write(tmp_path, "d.csv", "x,anomaly\n1,true\n2,False\n")
    assert io.read(path, label_column="anomaly").labels().tolist() == [1, 0]


def test_from_frame_does_not_change_the_callers_frame():
    frame = pd.DataFrame({"time": ["2024-01-01", "2024-01-02"], "x": [1.0, np.nan]},
                         index=["a", "b"])
    with pytest.warns(DataWarning):
        data = io.from_frame(frame)
    assert frame["time"].tolist() == ["2024-01-01", "2024-01-02"]
    assert list(frame.index) == ["a", "b"]
    assert data.source == "<DataFrame>" and data.values()[:, 0].tolist() == [1.0, 1.0]


# ---------------------------------------------------------------- bad files


def test_missing_file():
    with pytest.raises(DataError, match="nope.csv: no such file"):
        io.read("/nonexistent/nope.csv")


def test_directory(tmp_path):
    with pytest.raises(DataError, match="is a directory, not a data file"):
        io.read(tmp_path)


@pytest.mark.parametrize("content", [b"", b"  \n\n\t\n", b"\xef\xbb\xbf\n"])
def test_empty_file(tmp_path, content):
    with pytest.raises(DataError, match="d.csv: the file is empty"):
        io.read(write(tmp_path, "d.csv", content))


def test_header_only(tmp_path):
    with pytest.raises(DataError, match="d.csv: header only, no data rows"):
        io.read(write(tmp_path, "d.csv", "timestamp,x\n"))


def test_binary_file(tmp_path):
    with pytest.raises(DataError, match="not a text CSV file"):
        io.read(write(tmp_path, "d.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"))


def test_not_utf8(tmp_path):
    with pytest.raises(DataError, match="not a text CSV file.*UTF-8"):
        io.read(write(tmp_path, "d.csv", "t,x\ncaf\xe9,1\n".encode("latin-1")))


def test_unreadable_parquet(tmp_path):
    with pytest.raises(DataError, match="d.parquet: not a readable Parquet file"):
        io.read(write(tmp_path, "d.parquet", "this is not parquet"))


def test_ragged_csv(tmp_path):
    with pytest.raises(DataError, match=r"d.csv, line 3: 4 fields, but the header \(line 1\) "
                                        r"has 2"):
        io.read(write(tmp_path, "d.csv", "a,b\n1,2\n1,2,3,4\n"))


def test_bad_json_line_is_named(tmp_path):
    with pytest.raises(DataError, match="d.jsonl, line 2: not a JSON object"):
        io.read(write(tmp_path, "d.jsonl", '{"x": 1}\n{"x": \n{"x": 3}\n'))


def test_bad_json_array(tmp_path):
    with pytest.raises(DataError, match="not valid JSON"):
        io.read(write(tmp_path, "d.json", '[{"x": 1},'))
    with pytest.raises(DataError, match="array of objects"):
        io.read(write(tmp_path, "d.json", "[1, 2]"))


def test_bad_number_names_file_line_column_and_value(tmp_path):
    rows = [f"2024-01-01 00:00:0{i},{i},1000" for i in range(8)]
    rows[5] = "2024-01-01 00:00:05,5,abc"  # the 6th data row: line 7 of the file
    path = write(tmp_path, "data.csv", "timestamp,temperature,pressure\n" + "\n".join(rows))
    message = r"data.csv, line 7, column 'pressure': 'abc' is not a number"
    with pytest.raises(DataError, match=message):
        io.read(path)


def test_line_numbers_count_blank_lines(tmp_path):
    path = write(tmp_path, "data.csv", "x,y\n1,2\n\n   \n3,oops\n4,5\n6,7\n")
    with pytest.raises(DataError, match=r"line 5, column 'y': 'oops' is not a number"):
        io.read(path)


def test_bad_number_in_json_names_the_row(tmp_path):
    path = write(tmp_path, "d.jsonl", '{"x": 1}\n{"x": 2}\n{"x": "high"}\n{"x": 4}\n')
    with pytest.raises(DataError, match=r"d.jsonl, row 3, column 'x': 'high' is not a number"):
        io.read(path)


def test_bad_number_in_a_frame_names_the_row():
    frame = pd.DataFrame({"x": ["1", "2", "?", "4"]})
    with pytest.raises(DataError, match=r"<DataFrame>, row 3, column 'x': '\?' is not a number"):
        io.from_frame(frame)


def test_bad_timestamp(tmp_path):
    path = write(tmp_path, "data.csv",
                 "timestamp,x\n2024-01-01,1\n2024-01-02,2\n2024-01-03,3\nnot-a-date,4\n")
    message = r"data.csv, line 5, column 'timestamp': 'not-a-date' is not a timestamp"
    with pytest.raises(DataError, match=message):
        io.read(path)


def test_missing_timestamp(tmp_path):
    path = write(tmp_path, "d.csv", "time,x\n2024-01-01,1\n,2\n")
    with pytest.raises(DataError, match=r"line 3, column 'time': an empty cell is not a timestamp"):
        io.read(path)


def test_bad_label(tmp_path):
    path = write(tmp_path, "d.csv", "x,label\n1,0\n2,1\n3,2\n")
    with pytest.raises(DataError, match=r"d.csv, line 4, column 'label': '2' is not a label"):
        io.read(path, label_column="label")


def test_unknown_role_columns_list_the_columns(tmp_path):
    path = write(tmp_path, "d.csv", GOOD_CSV)
    with pytest.raises(DataError, match=r"no time column 'when'; columns are 'timestamp', "):
        io.read(path, time_column="when")
    with pytest.raises(DataError, match=r"no label column 'y'"):
        io.read(path, label_column="y")
    with pytest.raises(DataError, match=r"no series column 'machine'"):
        io.read(path, series_column="machine")


def test_unknown_channel(tmp_path):
    path = write(tmp_path, "d.csv", GOOD_CSV)
    with pytest.raises(DataError, match=r"no channel column 'humidity'; columns are 'timestamp', "
                                        r"'temperature', 'pressure'"):
        io.read(path, channels=["temperature", "humidity"])


def test_requested_text_channel(tmp_path):
    path = write(tmp_path, "d.csv", "x,status\n1,ok\n2,fail\n")
    with pytest.raises(DataError, match=r"line 2, column 'status': 'ok' is not a number"):
        io.read(path, channels=["status"])


def test_role_column_is_not_a_channel(tmp_path):
    with pytest.raises(DataError, match="'timestamp' is the time, label or series column"):
        io.read(write(tmp_path, "d.csv", GOOD_CSV), channels=["timestamp"])


def test_no_channels(tmp_path):
    path = write(tmp_path, "d.csv", "timestamp,status\n2024-01-01,ok\n")
    with pytest.raises(DataError, match=r"no numeric channel columns found among 'timestamp', "
                                        r"'status'; pass --channels"):
        io.read(path)


def test_channel_entirely_missing(tmp_path):
    path = write(tmp_path, "d.csv", "x,y\n1,inf\n2,\n")
    with pytest.raises(DataError, match="channel 'y' has no values at all"):
        io.read(path)


# ---------------------------------------------------------------- repairs


def test_missing_and_infinite_values_are_filled_from_the_past(tmp_path):
    text = "timestamp,x,y\n2024-01-01,,1\n2024-01-02,2,inf\n2024-01-03,NaN,-inf\n2024-01-04,4,5\n"
    path = write(tmp_path, "data.csv", text)
    with pytest.warns(DataWarning, match=r"data.csv: 4 missing or infinite values: 2 in 'x' "
                                         r"\(first at line 2\), 2 in 'y' \(first at line 3\)"):
        data = io.read(path)
    assert data.values().tolist() == [[2, 1], [2, 1], [2, 1], [4, 5]]
    assert data.missing_mask().tolist() == [[True, False], [False, True], [True, True],
                                            [False, False]]
    assert len(data) == 4


def test_one_column_missing_message(tmp_path):
    path = write(tmp_path, "data.csv", "t,pressure\n1710849600,1\n1710849601,\n1710849602,3\n")
    with pytest.warns(DataWarning, match=r"1 missing or infinite values in 'pressure' "
                                         r"\(first at line 3\) filled with the previous value"):
        io.read(path)


def test_filling_follows_time_order_not_file_order(tmp_path):
    text = "timestamp,x\n2024-01-03,\n2024-01-01,1\n2024-01-02,2\n"
    with pytest.warns(DataWarning) as caught:
        data = io.read(write(tmp_path, "d.csv", text))
    assert len(caught) == 2  # one per kind: missing values, time order
    assert data.values()[:, 0].tolist() == [2, 1, 2]


def test_filling_stays_within_a_series():
    frame = pd.DataFrame({"machine": ["a", "b", "a", "b"], "x": [1.0, 10.0, np.nan, np.nan],
                          "y": [np.nan, 5.0, np.nan, 6.0]})
    with pytest.warns(DataWarning, match="4 missing"):
        data = io.from_frame(frame, series_column="machine")
    # 'y' of series a has no value at all: refused, never borrowed from another series
    with pytest.raises(DataError, match="series 'a' has no value at all in channel 'y'"):
        data.values()
    frame.loc[0, "y"] = 2.0
    with pytest.warns(DataWarning, match="3 missing"):
        data = io.from_frame(frame, series_column="machine")
    assert data.values().tolist() == [[1, 2], [10, 5], [1, 2], [10, 6]]


def test_unsorted_rows_keep_input_order(tmp_path):
    text = "timestamp,x\n2024-01-01,1\n2024-01-03,3\n2024-01-02,2\n2024-01-04,4\n"
    with pytest.warns(DataWarning, match=r"rows are not in time order \(first at line 4\); "
                                         r"scored in time order, output kept in input order"):
        data = io.read(write(tmp_path, "d.csv", text))
    assert data.frame["x"].tolist() == [1, 3, 2, 4]
    np.testing.assert_array_equal(data.order, [0, 2, 1, 3])
    assert data.values()[:, 0].tolist() == [1, 3, 2, 4]


def test_duplicate_timestamps_are_kept(tmp_path):
    text = "timestamp,x\n2024-01-01,1\n2024-01-02,2\n2024-01-02,3\n2024-01-02,4\n"
    with pytest.warns(DataWarning, match=r"2 rows repeat an earlier timestamp \(first at line 4\)"):
        data = io.read(write(tmp_path, "d.csv", text))
    assert len(data) == 4
    np.testing.assert_array_equal(data.order, [0, 1, 2, 3])


def test_series_sort_by_series_then_time():
    frame = pd.DataFrame({"time": pd.to_datetime(["2024-01-02", "2024-01-01", "2024-01-01",
                                                  "2024-01-03"]),
                          "unit": ["b", "a", "b", "a"], "x": [1.0, 2.0, 3.0, 4.0]})
    with pytest.warns(DataWarning, match=r"not in time order \(first at row 3\)"):
        data = io.from_frame(frame, series_column="unit")
    np.testing.assert_array_equal(data.order, [2, 0, 1, 3])  # series b (first seen), then a
    assert data.channels == ["x"]


def test_interleaved_series_in_time_order_give_no_warning():
    frame = pd.DataFrame({"time": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-02",
                                                  "2024-01-02"]),
                          "unit": ["a", "b", "a", "b"], "x": [1.0, 2.0, 3.0, 4.0]})
    data = io.from_frame(frame, series_column="unit")
    np.testing.assert_array_equal(data.order, [0, 2, 1, 3])


def test_empty_column_is_reported_not_used(tmp_path):
    with pytest.warns(DataWarning, match=r"1 empty column\(s\) not used as channels: 'note'"):
        data = io.read(write(tmp_path, "d.csv", "x,note\n1,\n2,\n"))
    assert data.channels == ["x"]


def test_constant_channel_is_fine(tmp_path):
    data = io.read(write(tmp_path, "d.csv", "x,y\n1,5\n2,5\n3,5\n"))
    assert data.values()[:, 1].tolist() == [5, 5, 5]


# ---------------------------------------------------------------- writing scores


@pytest.mark.parametrize("name", ["out.csv", "out.parquet", "out.jsonl", "out.json"])
def test_write_scores_round_trip(tmp_path, name):
    scores = pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=3, freq="1500ms"),
                           "score": [0.1, 2.5, 0.3], "is_anomaly": [0, 1, 0]})
    path = tmp_path / "new" / "folder" / name
    io.write_scores(scores, path)
    back = io.read(path, label_column="is_anomaly")
    assert back.channels == ["score"]
    assert back.values()[:, 0].tolist() == [0.1, 2.5, 0.3]
    assert back.labels().tolist() == [0, 1, 0]
    assert (back.frame["timestamp"].astype("datetime64[us]")
            == scores["timestamp"].astype("datetime64[us]")).all()
    assert [p.name for p in path.parent.iterdir()] == [name]  # no partial file left behind


def test_write_scores_keeps_a_meaningful_index(tmp_path):
    scores = pd.DataFrame({"score": [1.0, 2.0]}, index=pd.Index([10, 20], name="row"))
    io.write_scores(scores, tmp_path / "s.csv")
    assert pd.read_csv(tmp_path / "s.csv").columns.tolist() == ["row", "score"]


def test_write_scores_refuses_other_suffixes(tmp_path):
    with pytest.raises(DataError, match=r"cannot write '.xlsx' files; use one of .csv, .parquet, "
                                        r".jsonl, .json"):
        io.write_scores(pd.DataFrame({"score": [1.0]}), tmp_path / "s.xlsx")


def test_a_0_1_column_named_like_a_label_is_the_label_never_a_channel(tmp_path):
    path = tmp_path / "plant.csv"
    path.write_text("timestamp,temperature,Is_Anomaly\n2024-01-01 00:00,20.1,0\n"
                    "2024-01-01 00:01,20.3,1\n2024-01-01 00:02,20.2,0\n")
    data = io.read(path)
    assert data.channels == ["temperature"] and data.label_column == "Is_Anomaly"
    assert data.labels().tolist() == [0, 1, 0]


def test_a_column_named_label_that_is_not_0_1_stays_a_channel(tmp_path):
    path = tmp_path / "plant.csv"
    path.write_text("temperature,label\n20.1,3\n20.3,7\n20.2,5\n")
    data = io.read(path)
    assert data.channels == ["temperature", "label"] and data.label_column is None


def test_a_mostly_text_column_is_left_out_with_a_warning_that_names_it(tmp_path):
    path = tmp_path / "units.csv"
    path.write_text("timestamp,pressure,temperature\n2024-01-01 00:00,6.0,20.1 C\n"
                    "2024-01-01 00:01,6.1,20.3 C\n2024-01-01 00:02,6.0,20.2\n")
    with pytest.warns(DataWarning, match=r"mostly text, not used as channels: 'temperature' "
                                         r"\(1 numbers, 2 text cells such as '20.1 C'\)"):
        data = io.read(path)
    assert data.channels == ["pressure"]
