"""Damaged CSV files, one kind per test: each is refused in one line naming the file, the line or
column and what is wrong, or read with a DataWarning naming the column and the choice made.
Nothing is dropped or shifted silently."""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pandas as pd
import pytest

import vigil
import vigil.io
from vigil.errors import DataError, DataWarning

HEADER = "timestamp,temperature,pressure\n"
ROWS = ["2024-03-19 12:00:00,25.3,1012.5", "2024-03-19 12:01:00,26.1,1011.8",
        "2024-03-19 12:02:00,25.9,1011.2", "2024-03-19 12:03:00,26.0,1010.9"]


def write(tmp_path: Path, text: str | bytes, name: str = "plant.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def refused(path: Path, message: str, **roles) -> str:
    """The DataError of reading ``path``; ``message`` must follow the file name exactly."""
    with pytest.raises(DataError) as caught:
        vigil.read(path, **roles)
    text = str(caught.value)
    assert "\n" not in text
    assert re.match(re.escape(f"{path}{message}"), text), text
    return text


def read_with_notes(path: Path, **roles) -> tuple[vigil.Dataset, list[str]]:
    """The dataset and every warning message; any warning that is not a DataWarning fails."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = vigil.read(path, **roles)
    assert all(issubclass(w.category, DataWarning) for w in caught), [str(w.message)
                                                                      for w in caught]
    return data, [str(w.message) for w in caught]


@pytest.fixture(autouse=True)
def _warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        yield


# ---------------------------------------------------------------- fields and columns


def test_a_row_with_one_field_more_than_the_header_is_refused(tmp_path):
    rows = ROWS.copy()
    rows[1] += ",7"
    path = write(tmp_path, HEADER + "\n".join(rows) + "\n")
    refused(path, ", line 3: 4 fields, but the header (line 1) has 3, delimiter ','")


def test_every_row_one_field_longer_does_not_shift_the_columns(tmp_path):
    # pandas alone would make the timestamps the index and read every column one to the left
    path = write(tmp_path, HEADER + "\n".join(row + ",1" for row in ROWS) + "\n")
    refused(path, ", line 2: 4 fields, but the header (line 1) has 3")


def test_a_line_cut_short_is_refused_not_filled(tmp_path):
    path = write(tmp_path, HEADER + "\n".join(ROWS) + "\n2024-03-19 12:04:00,26.2")
    refused(path, ", line 6: 2 fields, but the header (line 1) has 3, delimiter ',' (a "
                  "delimiter missing, or a line cut short?)")


def test_field_counts_in_a_semicolon_file(tmp_path):
    text = (HEADER + "\n".join(ROWS) + "\n").replace(",", ";").replace("1011.8", "1011.8;0")
    refused(write(tmp_path, text), ", line 3: 4 fields, but the header (line 1) has 3, "
                                   "delimiter ';'")


def test_a_duplicate_column_name_is_refused(tmp_path):
    path = write(tmp_path, "timestamp,temperature,temperature\n" + "\n".join(ROWS) + "\n")
    refused(path, ", line 1: column 'temperature' appears twice in the header (fields 2 and 3)")


def test_a_quote_never_closed_is_refused(tmp_path):
    path = write(tmp_path, HEADER + ROWS[0] + '\n2024-03-19 12:01:00,"26.1,1011.8\n'
                 + "\n".join(ROWS[2:]) + "\n")
    refused(path, ", line 3: a quote opened here is never closed")


def test_a_file_without_a_header_is_refused(tmp_path):
    refused(write(tmp_path, "\n".join(ROWS) + "\n"),
            ", line 1: the first line looks like data ('2024-03-19 12:00:00', '25.3', '1012.5')"
            ", not a header of column names")


def test_space_separated_columns_are_refused(tmp_path):
    refused(write(tmp_path, "temperature pressure\n25.3 1012.5\n26.1 1011.8\n"),
            ", line 1: one column only, no ',', ';', TAB or '|' between the names")


# ---------------------------------------------------------------- comments, JSON, encodings


def test_comment_lines_above_the_header_are_skipped_with_a_warning(tmp_path):
    path = write(tmp_path, "# exported by plant 7\n# units: C, hPa\n" + HEADER
                 + "\n".join(ROWS) + "\n")
    data, notes = read_with_notes(path)
    assert data.channels == ["temperature", "pressure"] and len(data) == 4
    assert notes == [f"{path}: skipped 2 comment line(s) starting with '#' above the header; "
                     f"the header is line 3"]


def test_line_numbers_count_the_comment_lines(tmp_path):
    rows = ROWS.copy()
    rows[2] = "2024-03-19 12:02:00,hot,1011.2"
    path = write(tmp_path, "# exported by plant 7\n" + HEADER + "\n".join(rows) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        refused(path, ", line 5, column 'temperature': 'hot' is not a number")


def test_a_commented_out_header_is_refused_naming_the_first_data_line(tmp_path):
    path = write(tmp_path, "# " + HEADER + "\n".join(ROWS) + "\n")
    refused(path, ", line 2: the first line looks like data ('2024-03-19 12:00:00', '25.3', "
                  "'1012.5'), not a header of column names (a '#' comment line is above it: if "
                  "that holds the column names, remove its '#')")


def test_json_lines_saved_as_csv_are_read_as_json(tmp_path):
    rows = [{"timestamp": f"2024-03-19T12:0{i}:00", "temperature": 25 + i} for i in range(3)]
    path = write(tmp_path, "\n".join(json.dumps(row) for row in rows) + "\n")
    data, notes = read_with_notes(path)
    assert data.channels == ["temperature"] and data.values()[:, 0].tolist() == [25, 26, 27]
    assert notes == [f"{path}: the file holds JSON lines, not CSV; read as JSON"]


def test_a_json_array_saved_as_csv_is_read_as_json(tmp_path):
    rows = [{"time": "2024-03-19T12:00:00", "x": 1}, {"time": "2024-03-19T12:01:00", "x": 2}]
    data, notes = read_with_notes(write(tmp_path, json.dumps(rows, indent=2)))
    assert len(data) == 2 and notes[0].endswith("the file holds a JSON array, not CSV; read as "
                                                "JSON")


def test_a_broken_json_line_in_a_csv_file_is_named(tmp_path):
    path = write(tmp_path, '{"x": 1}\n{"x": 2\n{"x": 3}\n')
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        refused(path, ", line 2: not a JSON object per line")


def test_a_late_latin1_byte_names_its_line(tmp_path):
    rows = [f"2024-03-19 {i // 60:02d}:{i % 60:02d}:00,25.{i % 10},1012" for i in range(3000)]
    text = (HEADER + "\n".join(rows) + "\n").encode() + "2024-03-20 00:00:00,25.1 \xb0C,1012\n" \
        .encode("latin-1")
    refused(write(tmp_path, text), ", line 3002: not a text CSV file in UTF-8 (byte 0xb0 at "
                                   "position 26 of the line); save it as UTF-8")


def test_an_early_latin1_byte_names_its_line_too(tmp_path):
    path = write(tmp_path, "timestamp,temp \xb0C\n2024-03-19,1\n".encode("latin-1"))
    refused(path, ", line 1: not a text CSV file in UTF-8 (byte 0xb0 at position 16 of the "
                  "line)")


# ---------------------------------------------------------------- numbers in cells


def test_decimal_commas_in_a_semicolon_file_are_read_as_numbers(tmp_path):
    path = write(tmp_path, "timestamp;temperature;pressure\n2024-03-19 12:00:00;20,1;1.012,5\n"
                           "2024-03-19 12:01:00;-20,3;1.011,8\n")
    data, notes = read_with_notes(path)
    assert data.values().tolist() == [[20.1, 1012.5], [-20.3, 1011.8]]
    assert notes == [f"{path}: decimal commas read as decimal points in column(s) "
                     f"'temperature', 'pressure' (e.g. '20,1' as 20.1)"]


def test_thousands_separators_say_how_to_fix_them(tmp_path):
    path = write(tmp_path, 'timestamp,power\n2024-03-19 12:00:00,"4,899.5"\n'
                           '2024-03-19 12:01:00,"4,901.0"\n2024-03-19 12:02:00,812.0\n')
    refused(path, ": no numeric channel columns found among 'timestamp', 'power'; column(s) "
                  "mostly text, not used as channels: 'power' (1 numbers, 2 text cells such as "
                  "'4,899.5'): strip the thousands separators, as in 4899.5")


def test_a_few_thousands_separators_in_a_number_column_say_how_to_fix_them(tmp_path):
    path = write(tmp_path, 'timestamp,power\n2024-03-19 12:00:00,812.0\n'
                           '2024-03-19 12:01:00,"4,901.0"\n2024-03-19 12:02:00,815.0\n')
    refused(path, ", line 3, column 'power': '4,901.0' is not a number; strip the thousands "
                  "separators, as in 4901.0")


def test_units_in_cells_say_how_to_fix_them(tmp_path):
    path = write(tmp_path, "timestamp,pressure,temperature\n2024-03-19 12:00:00,6.0,20.1 C\n"
                           "2024-03-19 12:01:00,6.1,20.3 C\n")
    data, notes = read_with_notes(path)
    assert data.channels == ["pressure"]  # temperature has no plain number at all: still named
    assert notes == [f"{path}: column(s) mostly text, not used as channels: 'temperature' (0 "
                     f"numbers, 2 text cells such as '20.1 C'): remove the units from the cells, "
                     f"as in 20.1; or name them with --channels to see the first bad cell"]


# ---------------------------------------------------------------- time columns


def test_day_first_dates_are_read_day_first_in_the_whole_column(tmp_path):
    path = write(tmp_path, "timestamp,x\n01/02/2024 00:00,1\n02/02/2024 00:00,2\n"
                           "13/02/2024 00:00,3\n")
    data, notes = read_with_notes(path)
    assert notes == []  # 13/02 leaves no choice
    assert data.frame["timestamp"].tolist() == [pd.Timestamp("2024-02-01"),
                                                pd.Timestamp("2024-02-02"),
                                                pd.Timestamp("2024-02-13")]


def test_dotted_day_first_dates_with_iso_dates_in_the_same_column(tmp_path):
    path = write(tmp_path, "date,x\n2024-01-02,1\n13.01.2024,2\n14.01.2024,3\n")
    data, _ = read_with_notes(path)
    assert data.frame["date"].dt.strftime("%Y-%m-%d").tolist() == ["2024-01-02", "2024-01-13",
                                                                   "2024-01-14"]


def test_ambiguous_dates_warn_which_order_was_chosen(tmp_path):
    path = write(tmp_path, "timestamp,x\n01/02/2024 10:00,1\n01/02/2024 10:01,2\n")
    data, notes = read_with_notes(path)
    assert notes == [f"{path}, column 'timestamp': dates such as '01/02/2024 10:00' can be read "
                     f"day/month or month/day (no day above 12); read as month/day (mm/dd), the "
                     f"default; write yyyy-mm-dd dates to be sure"]
    assert data.frame["timestamp"].iloc[1] == pd.Timestamp("2024-01-02 10:01")


def test_ambiguous_dates_follow_the_order_with_regular_steps(tmp_path):
    path = write(tmp_path, "timestamp,x\n01/02/2024,1\n02/02/2024,2\n03/02/2024,3\n")
    data, notes = read_with_notes(path)
    assert "read as day/month (dd/mm), as month/day the rows would jump by up to 31 days " \
        "00:00:00 (up to 1 days 00:00:00 as day/month)" in notes[0]
    assert data.frame["timestamp"].iloc[1] == pd.Timestamp("2024-02-02")


def test_ambiguous_dates_follow_the_order_that_keeps_time_order(tmp_path):
    path = write(tmp_path, "timestamp,x\n11/01/2024,1\n12/01/2024,2\n01/02/2024,3\n")
    data, notes = read_with_notes(path)
    assert "read as day/month (dd/mm), as month/day the rows would be out of time order" \
        in notes[0]
    assert data.frame["timestamp"].iloc[2] == pd.Timestamp("2024-02-01")


def test_dates_in_both_orders_are_refused(tmp_path):
    path = write(tmp_path, "timestamp,x\n13/01/2024,1\n01/14/2024,2\n")
    refused(path, ", column 'timestamp': dates in both orders, day first at line 2 "
                  "('13/01/2024') and month first at line 3 ('01/14/2024')")


def test_a_sensor_column_given_as_the_time_column_is_refused(tmp_path):
    path = write(tmp_path, HEADER + "\n".join(ROWS) + "\n")
    refused(path, ", column 'temperature': numbers (25.3 to 26.1) are not epoch timestamps: as "
                  "seconds since 1970 they would all fall before 1971",
            time_column="temperature")


def test_elapsed_seconds_in_a_column_named_time_are_refused(tmp_path):
    path = write(tmp_path, "time,x\n0,1\n1,2\n2,3\n")
    refused(path, ", column 'time': numbers (0 to 2) are not epoch timestamps")


def test_one_implausible_epoch_among_good_ones_names_its_line(tmp_path):
    path = write(tmp_path, "ts,x\n1710849600,1\n0,2\n1710849720,3\n")
    refused(path, ", line 3, column 'ts': '0' is not a plausible epoch timestamp (as seconds: "
                  "1970-01-01 00:00:00, before 1971)")


# ---------------------------------------------------------------- pandas' own warnings


def test_pandas_warnings_never_reach_the_caller(tmp_path):
    # pandas warns "Could not infer format ... falling back to dateutil" on such a column
    path = write(tmp_path, "timestamp,x\nnoon 2024-01-01,1\n2024-01-02,2\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        refused(path, ", line 2, column 'timestamp': 'noon 2024-01-01' is not a timestamp")
    assert caught == []


def test_pandas_warnings_never_reach_the_caller_of_from_frame():
    frame = pd.DataFrame({"time": ["noon", "2024-01-02"], "x": [1.0, 2.0]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(DataError, match=r"<DataFrame>, row 1, column 'time': 'noon'"):
            vigil.io.from_frame(frame)
    assert caught == []
