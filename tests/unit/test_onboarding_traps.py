"""The traps ``validate`` warns about on every run (``core.traps.dataset_warnings``), each named with its fix:
a label sorted with the timestamp, one instant, calendar columns and identifiers among the features."""

from __future__ import annotations

import numpy as np
import pandas as pd

from include.retraining.core.config import ContractConfig, FeatureSpec, LabelSpec
from include.retraining.core.traps import classes_missing, dataset_warnings, label_sorted_with_time

STAMPS = pd.date_range("2024-01-01", periods=400, freq="h", tz="UTC")


def contract(*features: str, objective: str = "binary") -> ContractConfig:
    label = LabelSpec("y", objective, classes=(0, 1)) if objective == "binary" else LabelSpec("y", objective)
    return ContractConfig(label, tuple(FeatureSpec(name, "numeric") for name in features))


def window(**columns) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"at": STAMPS, "x": rng.normal(size=len(STAMPS)), **columns})


def test_a_clean_window_raises_no_warning():
    frame = window(y=np.random.default_rng(1).integers(0, 2, len(STAMPS)))

    assert dataset_warnings(frame, contract("x"), "at") == []


def test_a_label_sorted_with_the_timestamp_is_named_with_the_fix():
    frame = window(y=np.repeat([0, 1], len(STAMPS) // 2))

    [warning] = dataset_warnings(frame, contract("x"), "at")

    assert warning.startswith("y is sorted with at (its value changes 1 times from row to row in time order")
    assert "stamp the rows with the moment each arrived, or shuffle the file" in warning


def test_a_regression_target_rising_with_the_timestamp_is_sorted_a_noisy_trend_is_not():
    rng = np.random.default_rng(2)
    trend = np.arange(len(STAMPS), dtype=float)

    assert label_sorted_with_time(window(y=trend), "y", "at", classification=False)
    assert label_sorted_with_time(window(y=trend + rng.normal(0, 200, len(STAMPS))), "y", "at", False) is None


def test_one_instant_calendar_columns_and_identifiers_are_named():
    frame = window(y=np.random.default_rng(3).integers(0, 2, len(STAMPS)), month=STAMPS.month, row=range(len(STAMPS)))
    frame["at"] = pd.Timestamp("1970-01-01", tz="UTC")

    warnings = dataset_warnings(frame, contract("x", "month", "row"), "at")

    assert len(warnings) == 3
    assert "at: every row is stamped 1970-01-01T00:00:00+00:00 (the epoch" in warnings[0]
    assert warnings[1].startswith("month: a calendar column (month) among contract.features")
    assert warnings[2].startswith("row: unique per row (an identifier) among contract.features")


def test_a_class_missing_on_either_side_of_the_split_is_named():
    assert classes_missing(pd.Series(["a", "b"]), pd.Series(["a", "b"]), ["a", "b"]) is None
    gap = classes_missing(pd.Series(["a", "a"]), pd.Series(["a", "b"]), ["a", "b"])
    assert gap.startswith("the training rows (2) lack class ['b']: a model cannot learn")


def test_a_declared_class_absent_from_the_window_is_named():
    frame = window(y=np.zeros(len(STAMPS), dtype=int))

    assert dataset_warnings(frame, contract("x"), "at") == [
        "y: no labeled row of this window holds class [1] of contract.label.classes: a model trained on it never "
        "predicts them; widen training.window_days, or check the label's values"
    ]
