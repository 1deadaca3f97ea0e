"""core.history: the drift history as a PNG, from drift-check documents as MongoDB stores them."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

import pytest

from include.retraining.core.history import Registered, drift_history_png, promotions

START = datetime(2026, 9, 1, 2, tzinfo=UTC)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def column(name: str, score: float, method: str = "K-S p_value", threshold: float = 0.025) -> dict:
    drifted = score < threshold if "p_value" in method else score >= threshold
    return {"column": name, "method": method, "score": score, "threshold": threshold, "drifted": drifted}


def check(day: int, champion: str | None = "1", performance: dict | None = None, **changes) -> dict:
    columns = [column("Age", 1e-30 if day % 2 else 0.4), column("Gender", 0.6)]
    return {
        "checked_at": START + timedelta(days=day),
        "status": "drift" if day % 2 else "no_drift",
        "columns": columns,
        "champion_version": champion,
        "performance": performance,
        **changes,
    }


def scored(value: float, status: str = "no_drift") -> dict:
    return {
        "status": status,
        "metric": "roc_auc",
        "reference_value": 0.85,
        "current_value": value,
        "lower": value - 0.02,
        "upper": value + 0.02,
        "labeled_rows": 400,
        "reason": "",
    }


def size_of(png: bytes) -> tuple[int, int]:
    """Width and height from the PNG's IHDR chunk."""
    assert png.startswith(PNG_SIGNATURE), "not a PNG"
    return struct.unpack(">II", png[16:24])


@pytest.mark.parametrize(
    "checks",
    [
        pytest.param([], id="no checks"),
        pytest.param([check(0)], id="one check"),
        pytest.param([check(day) for day in range(5)], id="no performance"),
        pytest.param([check(day, performance=scored(0.8 + day / 100)) for day in range(5)], id="with performance"),
        pytest.param([check(0, status="no_reference", columns=[], champion_version=None)], id="no champion yet"),
        pytest.param(
            [check(day, columns=[column("Age", 0.2 - day / 100, "wasserstein", 0.1)]) for day in range(4)],
            id="distance scores",
        ),
    ],
)
def test_every_history_draws_a_readable_png(checks):
    width, height = size_of(drift_history_png("demo", checks, [Registered("1", START - timedelta(days=1))]))
    assert (width, height) == (1100, 750)


def test_a_change_of_champion_between_checks_is_a_promotion_at_the_first_check_against_it():
    checks = [check(0, "1"), check(1, "1"), check(2, "2"), check(3, "2"), check(4, "3")]
    assert promotions(checks) == [(START + timedelta(days=2), "2"), (START + timedelta(days=4), "3")]


def test_the_first_champion_and_checks_without_one_are_no_promotion():
    assert promotions([check(0, None), check(1, "1"), check(2, "1")]) == [(START + timedelta(days=1), "1")]
    assert promotions([check(0, "1")]) == []


def test_a_promotion_and_a_drop_are_drawn():
    """The marks change the picture: a history with a promotion and a performance drop is not the same PNG."""
    plain = [check(day, performance=scored(0.85)) for day in range(4)]
    marked = [*plain[:2], check(2, "2", performance=scored(0.7, "drift")), check(3, "2", performance=scored(0.85))]
    assert drift_history_png("demo", plain) != drift_history_png("demo", marked)
