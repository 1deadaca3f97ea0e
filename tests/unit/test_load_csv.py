"""The CSV loader's conversions: stamps in file order or from the file, each storage form, no NaN fields."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from scripts.load_csv import documents

END = datetime(2014, 3, 1, tzinfo=UTC)


def test_rows_without_a_timestamp_column_are_stamped_in_file_order_up_to_the_end():
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0], "label": ["a", "b", "a", "c"]})
    docs = documents(frame, "ingested_at", "date", days=4, end=END)
    stamps = [d["ingested_at"] for d in docs]
    assert stamps == sorted(stamps)
    assert stamps[-1] == END
    assert stamps[0] == datetime(2014, 2, 26, tzinfo=UTC)
    assert [d["label"] for d in docs] == ["a", "b", "a", "c"]


@pytest.mark.parametrize(
    ("timestamp_type", "expected"),
    [
        ("date", datetime(2014, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("iso_string", "2014-01-02T03:04:05.000Z"),
        ("epoch_seconds", 1388631845.0),
        ("epoch_millis", 1388631845000),
    ],
)
def test_a_timestamp_column_is_parsed_as_utc_and_stored_in_the_declared_form(timestamp_type, expected):
    frame = pd.DataFrame({"at": ["2014-01-02 04:04:05+01:00"], "x": [1]})
    [doc] = documents(frame, "at", timestamp_type, days=1, end=END)
    assert doc["at"] == expected
    assert type(doc["at"]) is type(expected)
    assert type(doc["x"]) is int  # a Python int, not numpy's: BSON cannot encode numpy scalars


def test_an_empty_cell_becomes_an_absent_field():
    frame = pd.DataFrame({"x": [1.0, None], "y": ["a", None]})
    docs = documents(frame, "ingested_at", "date", days=1, end=END)
    assert set(docs[0]) == {"x", "y", "ingested_at"}
    assert set(docs[1]) == {"ingested_at"}


def test_unparseable_timestamps_are_counted_and_located():
    frame = pd.DataFrame({"at": ["2014-01-01", "not a date", "yesterday"]})
    with pytest.raises(ValueError, match=r"2 of 3 values of column 'at' are not dates \(e.g. row 3 of the file\)"):
        documents(frame, "at", "date", days=1, end=END)


def test_integer_years_are_refused_with_the_fix_not_stored_at_1970():
    frame = pd.DataFrame({"year": [2019, 2020, 2021], "x": [1, 2, 3]})
    with pytest.raises(ValueError, match=r"column 'year' holds whole numbers that look like years \(2019 .. 2021\)"):
        documents(frame, "year", "date", days=1, end=END)


def test_epoch_seconds_and_milliseconds_columns_are_read_in_their_unit():
    seconds = pd.DataFrame({"at": [1388631845, 1388631846], "x": [1, 2]})
    millis = pd.DataFrame({"at": [1388631845000, 1388631846000], "x": [1, 2]})

    assert documents(seconds, "at", "date", days=1, end=END)[0]["at"] == datetime(2014, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert documents(millis, "at", "date", days=1, end=END)[1]["at"] == datetime(2014, 1, 2, 3, 4, 6, tzinfo=UTC)


def test_a_column_of_one_instant_is_refused():
    frame = pd.DataFrame({"at": ["2014-01-01"] * 3, "x": [1, 2, 3]})
    with pytest.raises(ValueError, match=r"column 'at': every row is stamped 2014-01-01T00:00:00\+00:00"):
        documents(frame, "at", "date", days=1, end=END)
