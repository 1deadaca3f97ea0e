"""How far each column moved, next to its p-value: numeric means and spreads, the most changed category."""

from __future__ import annotations

import numpy as np
import pandas as pd

from include.retraining.core.drift import column_shift, judge
from include.retraining.core.records import DriftResult


def test_a_numeric_column_shows_its_mean_and_spread_before_and_after():
    before = pd.Series([29.0, 39.0, 49.0] * 10)
    after = pd.Series([54.0, 64.0, 74.0] * 10)

    assert column_shift(before, after, "numeric") == "mean 39 -> 64, sd 8.16 -> 8.16"


def test_large_numbers_are_written_without_an_exponent():
    before, after = pd.Series([30_564.2, 30_564.2]), pd.Series([41_000.0, 43_000.0])

    assert column_shift(before, after, "numeric") == "mean 30,564 -> 42,000, sd 0 -> 1,000"


def test_a_categorical_column_shows_the_category_whose_share_moved_most():
    before = pd.Series(["Yes"] * 50 + ["No"] * 30 + ["Maybe"] * 20)
    after = pd.Series(["Yes"] * 92 + ["No"] * 5 + ["Maybe"] * 3)

    assert column_shift(before, after, "categorical") == "share of 'Yes' 0.50 -> 0.92"


def test_a_category_new_to_the_window_starts_from_zero():
    before = pd.Series(["< 1 Year"] * 60 + ["1-2 Year"] * 40)
    after = pd.Series(["< 1 Year"] * 40 + ["1-2 Year"] * 20 + ["> 2 Years"] * 40)

    assert column_shift(before, after, "categorical") == "share of '> 2 Years' 0.00 -> 0.40"
    assert column_shift(after, before, "categorical") == "share of '> 2 Years' 0.40 -> 0.00"


def test_missing_values_are_left_out_and_an_empty_side_is_said():
    assert column_shift(pd.Series([1.0, np.nan, np.inf, 3.0]), pd.Series([5.0, None]), "numeric") == (
        "mean 2 -> 5, sd 1 -> 0"
    )
    assert column_shift(pd.Series([1.0, 2.0]), pd.Series([np.nan, np.nan]), "numeric") == "2 -> 0 values"


def test_judge_puts_each_columns_shift_on_its_verdict(make_frame, default_config):
    reference = make_frame(1_500, seed=21)
    current = make_frame(1_500, seed=22, covariate_drift=1.0)
    unjudged = DriftResult(
        status="no_drift",
        drift_share=0.0,
        drifted_columns=0,
        columns=(),
        threshold=0.3,
        rows_current=len(current),
        rows_reference=0,
        current_uri="s3://b/current.parquet",
        reference_uri="s3://b/reference.parquet",
        champion_version="1",
        report_uri=None,
        mlflow_run_id=None,
    )
    contract = default_config.contract

    verdict, _ = judge(unjudged, current, lambda: reference, contract, default_config.drift, 10, report=False)

    kinds = {feature.name: feature.kind for feature in contract.features}
    assert [c.column for c in verdict.columns] == contract.feature_names
    for column in verdict.columns:
        assert column.shift == column_shift(reference[column.column], current[column.column], kinds[column.column])
    age = next(c for c in verdict.columns if c.column == "Age")
    mean_before, mean_after = (float(part.split()[-1].replace(",", "")) for part in age.shift.split(",")[0].split("->"))
    assert mean_before == float(f"{reference['Age'].mean():.3g}")
    assert mean_after == float(f"{current['Age'].mean():.3g}")
    assert mean_before != mean_after
    assert DriftResult.from_dict(verdict.to_dict()) == verdict  # the XCom and the stored check keep it
