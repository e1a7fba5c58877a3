"""Decoding sensor readings from Kafka messages: the formats taken, and every bad message named."""

import math

import numpy as np
import pytest

from vigil.engines.stream.messages import BadMessage, Decoder, encode, parse_times

CHANNELS = ["temperature", "pressure"]


@pytest.fixture
def decoder():
    return Decoder(CHANNELS, time_column="timestamp")


def test_nested_json_with_series_and_values(decoder):
    message = b'{"ts": "2024-03-19 12:02:00", "series": "pump-7", "values": ' \
              b'{"temperature": 100.0, "pressure": 950}}'
    assert decoder.decode(None, message) == ("pump-7", "2024-03-19 12:02:00", [100.0, 950.0])


def test_flat_json_takes_the_series_from_the_key(decoder):
    message = b'{"timestamp": 1710849720, "temperature": "100.5", "pressure": null, "x": 1}'
    series, when, values = decoder.decode(b"pump-2", message)
    assert (series, when, values[0]) == ("pump-2", 1710849720, 100.5)
    assert math.isnan(values[1])  # a missing value: filled from the series' previous value


def test_csv_line_in_the_model_column_order(decoder):
    assert decoder.decode(None, b"2024-03-19 12:02:00,100.0,950.0") == (
        "", "2024-03-19 12:02:00", [100.0, 950.0])


def test_csv_line_in_a_given_column_order():
    decoder = Decoder(CHANNELS, "timestamp", columns=["pressure", "machine", "temperature"])
    assert decoder.decode(b"k", b"950,m1,100") == ("k", None, [100.0, 950.0])


@pytest.mark.parametrize("message, reason, words", [
    (b'{"ts": 1, "temperature": 1.0}', "channel", "'pressure'"),
    (b'{"temperature": "hot", "pressure": 1}', "value", "'hot' is not a number"),
    (b'{"temperature": Infinity, "pressure": 1}', "value", "not finite"),
    (b'{"temperature": true, "pressure": 1}', "value", "not a number"),
    (b'{"temperature": 1, "pressure": 1', "decode", "not valid UTF-8 JSON"),
    (b'{"temperature": "\xff\xfe", "pressure": 1}', "decode", "UTF-8"),
    (b"[" * 100_000 + b"]" * 100_000, "decode", ""),
    (b"{" + b'"a":{' * 50_000 + b"}" * 50_001, "decode", "deeply"),
    (b"1,2,3,4", "decode", "4 fields; expected 3"),
    (b'{"values": [1, 2]}', "decode", "'values' is not a JSON object"),
    (b'{"ts": [1], "temperature": 1, "pressure": 1}', "time", "not text or a number"),
    (b"x" * 2_000_000, "size", "over the limit"),
    (None, "decode", "empty"),
])
def test_bad_messages_are_named_never_raised_otherwise(decoder, message, reason, words):
    with pytest.raises(BadMessage) as caught:
        decoder.decode(None, message)
    assert caught.value.reason == reason
    assert words in str(caught.value)


def test_nan_text_is_a_missing_value(decoder):
    _, _, values = decoder.decode(None, b'{"temperature": NaN, "pressure": "nan"}')
    assert all(math.isnan(v) for v in values)


def test_times_are_parsed_in_one_vectorised_call():
    ns = parse_times(["2024-03-19 12:02:00", 1710849720, 1710849720_000, None, "garbage",
                      "2024-03-19T12:02:00+01:00"])
    second = np.int64(1710849720) * 10**9
    assert ns[1] == ns[2] == second
    assert ns[0] == np.datetime64("2024-03-19T12:02:00", "ns").astype(np.int64)
    assert ns[3] == ns[4] == np.iinfo(np.int64).min  # absent, unreadable
    assert ns[5] == ns[0] - 3600 * 10**9


def test_columns_must_name_every_channel():
    with pytest.raises(ValueError, match="lacks pressure"):
        Decoder(CHANNELS, columns=["temperature"])


def test_results_encode_as_compact_json():
    assert encode({"score": np.float64(1.5), "event": np.int64(2)}) == b'{"score":1.5,"event":2}'
