"""The bundled sample data: the file matches the generator, and the labels are what the docs say."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vigil import sample_data
from vigil.errors import ConfigError


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return sample_data.generate()


@pytest.fixture(scope="module")
def bundled() -> pd.DataFrame:
    return sample_data.load()


def test_bundled_file_matches_generator(frame: pd.DataFrame, bundled: pd.DataFrame) -> None:
    # Remake the file with `python scripts/make_sample_data.py` if this fails after a change.
    assert list(bundled.columns) == list(frame.columns)
    assert len(bundled) == len(frame)
    for column in ("timestamp", "label", "anomaly_kind"):
        pd.testing.assert_series_equal(bundled[column], frame[column], check_dtype=False)
    for channel, decimals in sample_data._DECIMALS.items():
        # Within one unit of the last decimal: a libm ulp on another platform may flip a rounding.
        np.testing.assert_allclose(
            bundled[channel], frame[channel], rtol=0, atol=1.01 * 10.0**-decimals, err_msg=channel
        )


def test_write_round_trips(frame: pd.DataFrame, bundled: pd.DataFrame, tmp_path) -> None:
    written = sample_data.write(tmp_path / "sub" / "sensors.csv")
    pd.testing.assert_frame_equal(sample_data.load(written), frame)
    # Same text layout as the bundled file: header, 'YYYY-MM-DD HH:MM:SS', empty kind on normal rows.
    head = written.read_text(encoding="utf-8").splitlines()[:2]
    assert head == sample_data.path().read_text(encoding="utf-8").splitlines()[:2]
    assert head[1].startswith("2024-03-04 00:00:00,") and head[1].endswith(",0,")


def test_columns_and_shape(frame: pd.DataFrame) -> None:
    assert list(frame.columns) == ["timestamp", *sample_data.CHANNELS, "label", "anomaly_kind"]
    assert len(frame) == 21 * 1440
    assert not frame.isna().any().any()
    assert frame["vibration"].min() > 0


def test_timestamps_strictly_increasing_by_one_minute(frame: pd.DataFrame) -> None:
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2024-03-04 00:00:00")
    steps = frame["timestamp"].diff().dropna()
    assert (steps == pd.Timedelta(seconds=60)).all()


def test_every_kind_present_and_labels_after_training(frame: pd.DataFrame) -> None:
    runs = sample_data.events(frame)
    assert runs == [(e.kind, e.start, e.stop) for e in sample_data.EVENTS]
    assert {kind for kind, _, _ in runs} == set(sample_data.KINDS)
    labelled = frame["label"].to_numpy() == 1
    assert not labelled[: sample_data.TRAIN_ROWS].any()
    assert ((frame["anomaly_kind"] != "").to_numpy() == labelled).all()
    assert set(frame["label"].unique()) == {0, 1}
    starts = [start for _, start, _ in runs]
    stops = [stop for _, _, stop in runs]
    assert all(nxt - prev >= 120 for prev, nxt in zip(stops, starts[1:]))  # separated


def test_stuck_is_exactly_constant(frame: pd.DataFrame) -> None:
    for event in sample_data.EVENTS:
        if event.kind == "stuck":
            values = frame[event.channel].iloc[event.start : event.stop]
            assert values.nunique() == 1
            assert event.stop - event.start >= 120


def test_seeded(frame: pd.DataFrame) -> None:
    short = sample_data.generate(days=5)
    assert len(short) == 5 * 1440
    pd.testing.assert_frame_equal(short, sample_data.generate(days=5))
    assert not sample_data.generate(days=5, seed=8)["temperature"].equals(short["temperature"])
    assert sample_data.events(short) == [
        (e.kind, e.start, e.stop) for e in sample_data.EVENTS if e.stop <= 5 * 1440
    ]


@pytest.mark.parametrize("days", [0, -1, 2.5, True, "14"])
def test_bad_days(days: object) -> None:
    with pytest.raises(ConfigError, match="days"):
        sample_data.generate(days=days)  # type: ignore[arg-type]
