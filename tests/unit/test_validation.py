"""The data contract: rows that break it are quarantined with a reason, too many of them stop the run."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from include.retraining.core.config import ContractConfig, with_overrides
from include.retraining.core.contract import QUARANTINE_REASON, DataContractError, labeled_rows, validate_frame

PROBLEM = re.compile(
    r"^(?P<field>\w+): (?P<count>[\d,]+) of (?P<total>[\d,]+) rows \((?P<percent>[\d.]+)%\) (?P<problem>.+), "
    r"e\.g\. _id (?P<examples>.+)$"
)


@pytest.fixture(scope="module")
def contract(default_config) -> ContractConfig:
    """The default contract with a low row minimum, so hand-made frames of 100 rows are enough."""
    return with_overrides(default_config, contract={"min_rows": 10}).contract


@pytest.fixture
def frame(make_frame) -> pd.DataFrame:
    return make_frame(100, seed=11)


def ids(frame: pd.DataFrame) -> set[str]:
    return set(frame["_id"])


def test_clean_frame_passes_whole(make_frame, default_config):
    frame = make_frame(800, seed=1)

    outcome = validate_frame(frame, default_config.contract, "_id")

    assert len(outcome.valid) == 800
    assert outcome.quarantined.empty
    assert outcome.problems == []
    assert outcome.valid["_id"].tolist() == frame["_id"].tolist()
    labels = labeled_rows(outcome.valid, default_config.contract)["Response"]
    assert labels.dtype == np.int64
    assert labels.tolist() == frame["Response"].astype(int).tolist()


def test_generated_defects_are_quarantined_exactly(make_frame, default_config):
    clean = make_frame(1_000, seed=2)
    broken = make_frame(1_000, seed=2, malformed_share=0.03)
    # the generator breaks rows last, so the two frames differ exactly in the broken rows
    differs = ~((clean == broken) | (clean.isna() & broken.isna())).all(axis=1)
    # a row whose only defect is a missing label is valid, awaiting its label (the drift check reads it)
    unlabeled = differs & broken["Response"].isna()
    broken_ids = set(broken.loc[differs & ~unlabeled, "_id"])
    assert len(broken_ids) + unlabeled.sum() == 30
    assert unlabeled.sum() > 0

    outcome = validate_frame(broken, default_config.contract, "_id")

    assert ids(outcome.quarantined) == broken_ids
    assert ids(outcome.valid) == ids(broken) - broken_ids
    assert outcome.unlabeled == unlabeled.sum()
    assert len(outcome.valid) + len(outcome.quarantined) == 1_000
    assert outcome.quarantined[QUARANTINE_REASON].str.len().gt(0).all()
    counted = 0
    for problem in outcome.problems[:-1]:  # the last one counts the unlabeled rows
        match = PROBLEM.match(problem)
        assert match, problem
        count = int(match["count"].replace(",", ""))
        counted += count
        assert match["total"] == "1,000"
        assert float(match["percent"]) == pytest.approx(100 * count / 1_000, abs=0.05)
        examples = match["examples"].split(", ")
        assert 1 <= len(examples) <= 3
        assert set(examples) <= broken_ids
        reasons = outcome.quarantined.set_index("_id").loc[examples, QUARANTINE_REASON]
        assert reasons.str.startswith(match["field"] + ": ").all()
    assert counted == len(broken_ids)  # one defect per broken row
    assert (
        outcome.problems[-1]
        == f"Response: {unlabeled.sum()} of {len(outcome.valid)} valid rows have no label yet: drift only"
    )


def test_problem_text_names_field_count_share_and_examples(frame, contract):
    frame.loc[[4, 10, 50], "Age"] = np.nan

    outcome = validate_frame(frame, contract, "_id")

    assert outcome.problems == [
        "Age: 3 of 100 rows (3.0%) missing or not a number, e.g. _id doc-00004, doc-00010, doc-00050"
    ]
    assert outcome.quarantined["_id"].tolist() == ["doc-00004", "doc-00010", "doc-00050"]
    assert set(outcome.quarantined[QUARANTINE_REASON]) == {"Age: missing or not a number"}
    assert len(outcome.valid) == 97


def test_quarantine_keeps_the_original_values(frame, contract):
    frame.loc[7, "Gender"] = "X"

    outcome = validate_frame(frame, contract, "_id")

    [row] = outcome.quarantined.to_dict("records")
    assert row["_id"] == "doc-00007"
    assert row["Gender"] == "X"
    assert row[QUARANTINE_REASON] == "Gender: not one of ['Male', 'Female']"


def test_a_row_with_two_defects_gets_both_reasons(frame, contract):
    frame.loc[3, "Vehicle_Age"] = "10+ Years"
    frame.loc[3, "Annual_Premium"] = -5.0

    outcome = validate_frame(frame, contract, "_id")

    assert outcome.quarantined[QUARANTINE_REASON].tolist() == [
        "Vehicle_Age: not one of ['< 1 Year', '1-2 Year', '> 2 Years']; Annual_Premium: below the minimum 0"
    ]
    assert len(outcome.problems) == 2


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("Age", 17.0, "Age: below the minimum 18"),
        ("Age", 101.0, "Age: above the maximum 100"),
        ("Region_Code", 61.0, "Region_Code: above the maximum 60"),
        ("Annual_Premium", -0.5, "Annual_Premium: below the minimum 0"),
        ("Vehicle_Damage", "yes", "Vehicle_Damage: not one of ['Yes', 'No']"),
        ("Vehicle_Damage", None, "Vehicle_Damage: missing or not a string"),
        ("Response", 2.0, "Response: label not one of [0, 1]"),
    ],
)
def test_row_checks(frame, contract, column, value, reason):
    frame.loc[42, column] = value

    outcome = validate_frame(frame, contract, "_id")

    assert outcome.quarantined[["_id", QUARANTINE_REASON]].values.tolist() == [["doc-00042", reason]]


@pytest.mark.parametrize(("column", "value"), [("Age", 18.0), ("Age", 100.0), ("Annual_Premium", 0.0)])
def test_range_bounds_are_inclusive(frame, contract, column, value):
    frame.loc[42, column] = value

    outcome = validate_frame(frame, contract, "_id")

    assert outcome.quarantined.empty
    assert outcome.valid.loc[42, column] == value


def test_share_at_the_limit_is_quarantined(frame, contract):
    frame.loc[:4, "Age"] = np.nan  # 5 of 100 = max_quarantine_share exactly

    outcome = validate_frame(frame, contract, "_id")

    assert len(outcome.quarantined) == 5


def test_share_over_the_limit_stops_the_run(frame, contract):
    frame.loc[:9, "Age"] = np.nan  # 10 of 100
    frame.loc[20, "Gender"] = "X"

    with pytest.raises(DataContractError) as raised:
        validate_frame(frame, contract, "_id")

    message = str(raised.value)
    assert message.startswith(
        "11 of 100 rows (11.0%) break the data contract, more than contract.max_quarantine_share (5.0%)"
    )
    assert "Age: 10 of 100 rows (10.0%) missing or not a number, e.g. _id doc-00000, doc-00001, doc-00002" in message
    assert "Gender: 1 of 100 rows (1.0%) not one of ['Male', 'Female'], e.g. _id doc-00020" in message
    assert "raise contract.max_quarantine_share" in message
    assert "Nothing was trained or registered" in message


def test_generated_frame_far_over_the_limit(make_frame, default_config):
    frame = make_frame(1_000, seed=3, malformed_share=0.2)

    bad = 200 - int(frame["Response"].isna().sum())  # a missing label is no defect of the row

    with pytest.raises(DataContractError, match=rf"{bad} of 1,000 rows \({bad / 10:.1f}%\) break the data contract"):
        validate_frame(frame, default_config.contract, "_id")


def test_empty_frame(frame, contract):
    with pytest.raises(DataContractError, match="the extract window holds no documents"):
        validate_frame(frame.iloc[:0], contract, "_id")


def test_a_missing_label_is_no_defect_the_row_awaits_it(frame, contract):
    frame.loc[42, "Response"] = np.nan

    outcome = validate_frame(frame, contract, "_id")

    assert outcome.quarantined.empty
    assert len(outcome.valid) == 100
    assert outcome.unlabeled == 1
    assert "doc-00042" not in set(labeled_rows(outcome.valid, contract)["_id"])


def test_a_window_without_any_label_is_valid_for_the_drift_check(frame, contract):
    frame["Response"] = np.nan

    outcome = validate_frame(frame, contract, "_id")

    assert len(outcome.valid) == 100
    assert outcome.unlabeled == 100
    assert labeled_rows(outcome.valid, contract).empty


def test_min_rows_counts_valid_rows_only(make_frame, default_config):
    frame = make_frame(520, seed=4)
    frame.loc[:24, "Age"] = np.nan  # 25 of 520 (4.8%) quarantined, 495 remain

    with pytest.raises(DataContractError) as raised:
        validate_frame(frame, default_config.contract, "_id")

    assert "495 valid rows of 520, fewer than contract.min_rows (500)" in str(raised.value)


def test_min_rows_met(make_frame, default_config):
    outcome = validate_frame(make_frame(500, seed=4), default_config.contract, "_id")
    assert len(outcome.valid) == 500


def nullable(contract: ContractConfig, name: str, share: float) -> ContractConfig:
    features = tuple(replace(f, max_null_share=share) if f.name == name else f for f in contract.features)
    return replace(contract, features=features)


def test_nullable_feature_keeps_rows_with_nulls(frame, contract):
    frame.loc[:4, "Vintage"] = np.nan

    outcome = validate_frame(frame, nullable(contract, "Vintage", 0.1), "_id")

    assert outcome.quarantined.empty
    assert outcome.valid["Vintage"].isna().sum() == 5


def test_nullable_feature_over_its_null_share(frame, contract):
    frame.loc[:19, "Vintage"] = np.nan

    with pytest.raises(DataContractError, match=r"Vintage: 20\.0% nulls, more than its max_null_share 10\.0%"):
        validate_frame(frame, nullable(contract, "Vintage", 0.1), "_id")


def test_nullable_feature_still_range_checked(frame, contract):
    frame.loc[0, "Vintage"] = np.nan
    frame.loc[1, "Vintage"] = 401.0

    outcome = validate_frame(frame, nullable(contract, "Vintage", 0.1), "_id")

    assert outcome.quarantined[["_id", QUARANTINE_REASON]].values.tolist() == [
        ["doc-00001", "Vintage: above the maximum 400"]
    ]


def test_missing_feature_column_is_reported(frame, contract):
    with pytest.raises(DataContractError, match=r"Age: 100 of 100 rows \(100\.0%\) missing or not a number"):
        validate_frame(frame.drop(columns=["Age"]), contract, "_id")
