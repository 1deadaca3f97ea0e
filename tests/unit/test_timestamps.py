"""Window bounds in each stored timestamp form, and stored values back to UTC datetimes."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest

from include.retraining.core.timestamps import IsoLayout, TimestampError, from_stored, stored_type, to_stored

MOMENT = datetime(2024, 6, 1, 12, 30, 15, 987_654, tzinfo=UTC)


@pytest.mark.parametrize(
    ("timestamp_type", "stored"),
    [
        ("date", MOMENT),
        ("epoch_seconds", 1717245015.987654),
        ("epoch_millis", 1717245015987),
        ("iso_string", "2024-06-01T12:30:15Z"),
    ],
)
def test_a_bound_in_each_stored_form(timestamp_type, stored):
    assert to_stored(MOMENT, timestamp_type) == stored


def test_a_bound_in_another_zone_is_converted_to_utc():
    paris = MOMENT.astimezone(timezone(timedelta(hours=2)))
    assert to_stored(paris, "iso_string", IsoLayout.of("2020-01-01T00:00:00.000Z")) == "2024-06-01T12:30:15.987Z"
    assert to_stored(paris, "epoch_millis") == 1717245015987


@pytest.mark.parametrize(
    ("sample", "rendered"),
    [
        ("2020-01-01T00:00:00Z", "2024-06-01T12:30:15Z"),
        ("2020-01-01T00:00:00.000Z", "2024-06-01T12:30:15.987Z"),
        ("2020-01-01T00:00:00.000000+00:00", "2024-06-01T12:30:15.987654+00:00"),
        ("2020-01-01 00:00:00", "2024-06-01 12:30:15"),
        ("2020-01-01", "2024-06-01"),
    ],
)
def test_an_iso_bound_takes_the_stored_layout_and_its_pattern_matches_it(sample, rendered):
    layout = IsoLayout.of(sample)

    assert layout.render(MOMENT) == rendered
    assert re.match(layout.pattern, sample)
    assert re.match(layout.pattern, rendered)


def test_an_iso_pattern_rejects_other_layouts():
    layout = IsoLayout.of("2020-01-01T00:00:00.000Z")
    for other in ("2020-01-01T00:00:00Z", "2020-01-01T00:00:00.000+00:00", "2020-01-01 00:00:00.000Z"):
        assert not re.match(layout.pattern, other), other


def test_truncated_iso_bounds_keep_the_half_open_window_exact():
    """A stored value at the layout's precision compares with the truncated bound as with the real one."""
    layout = IsoLayout.of("2020-01-01T00:00:00.000Z")
    end = datetime(2024, 6, 1, 12, 0, 0, 123_456, tzinfo=UTC)
    for millis in (122, 123, 124):
        stored = f"2024-06-01T12:00:00.{millis:03d}Z"
        moment = from_stored(stored, "iso_string")
        assert (stored <= layout.render(end)) == (moment <= end)
        assert (stored > layout.render(end)) == (moment > end)


@pytest.mark.parametrize(
    ("value", "timestamp_type"),
    [
        (datetime(2024, 6, 1, 12, 30, 15, 987_000), "date"),  # pymongo decodes naive UTC
        (1717245015.987, "epoch_seconds"),
        (1717245015987, "epoch_millis"),
        ("2024-06-01T12:30:15.987Z", "iso_string"),
        ("2024-06-01T12:30:15.987+00:00", "iso_string"),
        ("2024-06-01T12:30:15.987", "iso_string"),
    ],
)
def test_stored_values_read_back_as_utc(value, timestamp_type):
    moment = from_stored(value, timestamp_type)

    assert moment == MOMENT.replace(microsecond=987_000)
    assert moment.utcoffset() == timedelta(0)


def test_a_value_of_another_form_names_the_fix():
    with pytest.raises(TimestampError, match=r"set source\.timestamp_type to 'iso_string'"):
        from_stored("2024-06-01T12:30:15Z", "date")
    with pytest.raises(TimestampError, match=r"set source\.timestamp_type to 'epoch_millis'"):
        from_stored(1717245015987, "iso_string")


def test_iso_strings_must_be_utc():
    with pytest.raises(TimestampError, match="must be UTC"):
        IsoLayout.of("2024-06-01T12:30:15+02:00")
    with pytest.raises(TimestampError, match="not an ISO-8601 timestamp"):
        IsoLayout.of("01/06/2024 12:30")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2024, 1, 1), "date"),
        ("2024-01-01T00:00:00Z", "iso_string"),
        (1_704_067_200, "epoch_seconds"),
        (1_704_067_200_000, "epoch_millis"),
        (True, None),
        ("yesterday", None),
    ],
)
def test_stored_type(value, expected):
    assert stored_type(value) == expected
