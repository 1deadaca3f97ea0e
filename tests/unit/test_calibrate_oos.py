"""The pure helpers of ``make calibrate``'s out-of-sample and nightly-shape scenarios (bench/calibrate.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from bench.calibrate import (
    LATE_LABELED,
    ONLINE_CHANNEL,
    WEEKEND_AGE_YEARS,
    choose,
    labeled_on_the_night,
    shift_text,
    shifted,
    smallest_alarming,
    whole_years,
    with_weekly_season,
)
from include.demo.sample_data import generate_frame

MONDAY = datetime(2026, 1, 5, tzinfo=UTC)


def test_the_weekly_season_changes_weekend_rows_only():
    week = generate_frame(7_000, start=MONDAY, end=MONDAY + timedelta(days=7), seed=3)
    seasonal = with_weekly_season(week, np.random.default_rng(0))
    weekend = week["ingested_at"].dt.dayofweek.to_numpy() >= 5
    assert seasonal[~weekend].equals(week[~weekend])
    older = seasonal.loc[weekend, "Age"] - week.loc[weekend, "Age"]
    assert (older[week.loc[weekend, "Age"] < 80] == WEEKEND_AGE_YEARS).all()
    online = seasonal.loc[weekend, "Policy_Sales_Channel"] == ONLINE_CHANNEL
    assert online.mean() > (week.loc[weekend, "Policy_Sales_Channel"] == ONLINE_CHANNEL).mean() + 0.02


def test_the_late_segment_is_labeled_less_on_the_night():
    late = np.arange(20_000) % 4 == 0
    labeled = labeled_on_the_night(late, 0.9, np.random.default_rng(1))
    assert labeled[late].mean() == pytest.approx(LATE_LABELED, abs=0.02)
    assert labeled[~late].mean() == pytest.approx(0.9, abs=0.02)


def test_the_smallest_shift_is_the_first_whose_rate_reaches_the_level():
    shifts, rates = (1, 2, 3, 5), (0.02, 0.4, 0.6, 0.96)
    assert smallest_alarming(shifts, rates, 0.5) == 3
    assert smallest_alarming(shifts, rates, 0.95) == 5
    assert smallest_alarming(shifts, rates, 0.99) is None
    assert (shift_text(shifts, rates, 0.99), shift_text(shifts, rates, 0.01)) == ("> 5", "<= 1")


def test_whole_years_move_the_mean_by_a_fraction_of_a_year():
    ages = np.full(100_000, 40.0)
    moved = whole_years(ages + 0.3, np.random.default_rng(2))
    assert set(np.unique(moved)) == {40, 41}
    assert moved.mean() - 40 == pytest.approx(0.3, abs=0.01)


def test_a_larger_damage_shift_flips_the_same_rows_and_more():
    frame = generate_frame(2_000, start=MONDAY, end=MONDAY + timedelta(days=1), seed=4)
    small, large = (shifted(frame, frame, "Vehicle_Damage", points, np.random.default_rng(5)) for points in (3, 10))
    yes = [(f["Vehicle_Damage"] == "Yes").to_numpy() for f in (frame, small, large)]
    assert (yes[1].sum() - yes[0].sum(), yes[2].sum() - yes[0].sum()) == (60, 200)
    assert (yes[2] | ~yes[1]).all()  # every row the small shift flipped, the large one flipped too


def test_tuning_takes_the_most_powerful_value_within_target_and_names_the_cells_none_keeps():
    curves = {
        "i.i.d.": np.array([0.0, 0.02, 0.04, 0.08]),
        "seasonal": np.array([0.3, 0.4, 0.5, 0.6]),
    }
    choice = choose("drift.false_alarm_rate", curves, (0.05, 0.02, 0.01, 0.001), 0.05, shipped=0.01)
    assert (choice.value, list(choice.beyond)) == (0.02, ["seasonal"])
    assert choice.worst == {0.001: 0.0, 0.01: 0.02, 0.02: 0.04, 0.05: 0.08}
    hopeless = choose("x", {"seasonal": curves["seasonal"]}, (0.05, 0.02, 0.01, 0.001), 0.05, shipped=0.01)
    assert hopeless.value == 0.01  # no value keeps any cell within target: the shipped value stays
