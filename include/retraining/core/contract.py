"""The data contract: per-row checks that quarantine, and per-dataset checks that stop the run.

Every problem names the field, the count, example ids and the fix, so whoever reads the failed
task log can act on it without opening the data.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from include.retraining.core.config import ContractConfig, FeatureSpec, LabelSpec

EXAMPLE_IDS = 3
EXAMPLE_VALUES = 5  # unknown label values listed with their counts
# the pandas type of a valid label: nullable in the snapshot (a row may await its label), plain in the
# labeled rows that training and evaluation read
NULLABLE_LABEL_DTYPES = {"int": "Int64", "bool": "boolean", "str": "object", "float": "float64"}
LABEL_DTYPES = {"int": "int64", "bool": "bool", "str": "object", "float": "float64"}
MAX_TEXT = 200  # characters of a categorical value: anything longer is a broken document, not a category
QUARANTINE_REASON = "quarantine_reason"


class DataContractError(ValueError):
    """The extracted data breaks the contract badly enough that nothing may be trained on it."""


@dataclass(frozen=True)
class RowCheck:
    field: str
    problem: str
    failing: pd.Series  # boolean mask over the frame
    detail: str = ""  # said once in the problem list, not on every quarantined row


@dataclass(frozen=True)
class ValidationOutcome:
    valid: pd.DataFrame
    quarantined: pd.DataFrame
    problems: list[str]
    unlabeled: int  # valid rows without a label yet: checked for drift, not trained or scored on


def validate_frame(
    frame: pd.DataFrame, contract: ContractConfig, id_field: str, for_training: bool = True
) -> ValidationOutcome:
    """Split ``frame`` into rows that meet the contract and rows to quarantine, or raise. A row without a
    label is valid (labels often arrive days later): the drift check reads it, training and evaluation do
    not (``labeled_rows``). Only a frame ``for_training`` needs ``contract.min_rows`` valid rows."""
    total = len(frame)
    checks = [check for check in [*row_checks(frame, contract), duplicates(frame, id_field)] if check.failing.any()]
    problems = [describe(check, frame, id_field, total) for check in checks]
    bad = pd.Series(False, index=frame.index)
    for check in checks:
        bad |= check.failing
    _raise_if_too_many_bad(bad, total, problems, contract)

    # a clean window is not copied again (a shallow copy: the caller's frame keeps its label column)
    valid = frame.loc[~bad].reset_index(drop=True) if bad.any() else frame.copy(deep=False)
    label = contract.label
    valid[label.name] = valid[label.name].astype(NULLABLE_LABEL_DTYPES[label.kind])
    _raise_on_dataset_problems(valid, contract, total, for_training)
    unlabeled = int(valid[label.name].isna().sum())
    if unlabeled:
        problems.append(f"{label.name}: {unlabeled:,} of {len(valid):,} valid rows have no label yet: drift only")
    quarantined = quarantine_frame(frame, checks, bad)
    return ValidationOutcome(valid=valid, quarantined=quarantined, problems=problems, unlabeled=unlabeled)


def labeled_rows(frame: pd.DataFrame, contract: ContractConfig, where: pd.Series | None = None) -> pd.DataFrame:
    """The rows whose label has arrived (of those ``where`` holds), the label in its plain type: what
    training and evaluation read. One copy of those rows, none of the frame."""
    label = contract.label
    present = frame[label.name].notna()
    rows = frame.loc[present if where is None else present & where]
    return rows.astype({label.name: LABEL_DTYPES[label.kind]}, copy=False)  # rows is a copy already


def row_checks(frame: pd.DataFrame, contract: ContractConfig) -> list[RowCheck]:
    checks = []
    for feature in contract.features:
        checks.extend(feature_checks(frame, feature))
    return [*checks, *label_checks(frame, contract.label)]


def scorable(frame: pd.DataFrame, contract: ContractConfig) -> pd.Series:
    """The rows whose features meet the contract (the label plays no part): what a model may be asked about."""
    ok = pd.Series(True, index=frame.index)
    for feature in contract.features:
        for check in feature_checks(frame, feature):
            ok &= ~check.failing
    return ok


def label_checks(frame: pd.DataFrame, label: LabelSpec) -> list[RowCheck]:
    """A class label must be one of the declared classes; a regression target a finite number in range.
    A missing label is no problem of the row: it has not arrived yet (a value of another type arrives as
    null from the extract too, and is counted with them)."""
    labels = frame[label.name] if label.name in frame else pd.Series(None, index=frame.index, dtype=object)
    present = labels.notna()
    checks = []
    if label.is_classification:
        unknown = present & ~labels.isin(list(label.classes))
        problem = f"label not one of {list(label.classes)}"
        checks.append(RowCheck(label.name, problem, unknown, _unknown_classes(labels[unknown])))
        return checks
    finite = np.isfinite(pd.to_numeric(labels, errors="coerce").astype(float))
    checks.append(RowCheck(label.name, "label not a finite number (inf)", present & ~finite))
    if label.min is not None:
        checks.append(
            RowCheck(label.name, f"label below contract.label.min {label.min:g}", present & (labels < label.min))
        )
    if label.max is not None:
        checks.append(
            RowCheck(label.name, f"label above contract.label.max {label.max:g}", present & (labels > label.max))
        )
    return checks


def _unknown_classes(values: pd.Series) -> str:
    counts = values.value_counts()
    found = ", ".join(f"{value!r} ({count:,})" for value, count in counts.head(EXAMPLE_VALUES).items())
    more = f" and {len(counts) - EXAMPLE_VALUES} more" if len(counts) > EXAMPLE_VALUES else ""
    return f"; {len(counts)} unknown value(s): {found}{more}; add them to contract.label.classes or fix the documents"


def duplicates(frame: pd.DataFrame, id_field: str) -> RowCheck:
    """A document ingested twice (every read field equal, under another id): the copies after the first."""
    fields = [column for column in frame.columns if column != id_field]
    repeated = frame.duplicated(subset=fields, keep="first") if fields and len(frame) else frame[id_field].isna()
    return RowCheck("(document)", "duplicate of an earlier document (every field and the timestamp equal)", repeated)


def feature_checks(frame: pd.DataFrame, feature: FeatureSpec) -> list[RowCheck]:
    values = frame[feature.name] if feature.name in frame else pd.Series(None, index=frame.index, dtype=object)
    present = values.notna()
    checks = []
    if feature.max_null_share == 0:
        kind = "not a number" if feature.kind == "numeric" else "not a string"
        checks.append(RowCheck(feature.name, f"missing or {kind}", ~present))
    if feature.kind == "numeric":
        finite = np.isfinite(pd.to_numeric(values, errors="coerce").astype(float))
        checks.append(RowCheck(feature.name, "not a finite number (inf)", present & ~finite))
    if feature.kind == "categorical":
        too_long = values.astype(str).str.len() > MAX_TEXT
        checks.append(RowCheck(feature.name, f"longer than {MAX_TEXT} characters", present & too_long))
    if feature.kind == "categorical" and feature.categories:
        allowed = list(feature.categories)
        checks.append(RowCheck(feature.name, f"not one of {allowed}", present & ~values.isin(allowed)))
    if feature.min is not None:
        checks.append(RowCheck(feature.name, f"below the minimum {feature.min:g}", present & (values < feature.min)))
    if feature.max is not None:
        checks.append(RowCheck(feature.name, f"above the maximum {feature.max:g}", present & (values > feature.max)))
    return checks


def describe(check: RowCheck, frame: pd.DataFrame, id_field: str, total: int) -> str:
    count = int(check.failing.sum())
    examples = ", ".join(frame.loc[check.failing, id_field].astype(str).head(EXAMPLE_IDS))
    return (
        f"{check.field}: {count:,} of {total:,} rows ({count / total:.1%}) {check.problem}, e.g. {id_field} {examples}"
        + check.detail
    )


def quarantine_frame(frame: pd.DataFrame, checks: list[RowCheck], bad: pd.Series) -> pd.DataFrame:
    reasons = pd.Series("", index=frame.index)
    for check in checks:
        reasons[check.failing] += f"{check.field}: {check.problem}; "
    quarantined = frame.loc[bad].copy()
    quarantined[QUARANTINE_REASON] = reasons[bad].str.rstrip("; ")
    return quarantined.reset_index(drop=True)


def _raise_if_too_many_bad(bad: pd.Series, total: int, problems: list[str], contract: ContractConfig) -> None:
    if total == 0:
        raise DataContractError(
            "the extract window holds no documents: check source.collection, source.timestamp_field "
            "and the lookback, or load data first"
        )
    share = bad.sum() / total
    if share > contract.max_quarantine_share:
        raise DataContractError(
            f"{int(bad.sum()):,} of {total:,} rows ({share:.1%}) break the data contract, more than "
            f"contract.max_quarantine_share ({contract.max_quarantine_share:.1%}):\n  - "
            + "\n  - ".join(problems)
            + "\nFix the source documents, or raise contract.max_quarantine_share to quarantine them. "
            "Nothing was trained or registered."
        )


def _raise_on_dataset_problems(valid: pd.DataFrame, contract: ContractConfig, total: int, for_training: bool) -> None:
    problems = []
    if for_training and len(valid) < contract.min_rows:
        problems.append(
            f"{len(valid):,} valid rows of {total:,}, fewer than contract.min_rows ({contract.min_rows:,}): "
            "widen the lookback or lower contract.min_rows"
        )
    for feature in contract.features:
        null_share = valid[feature.name].isna().mean() if len(valid) else 0.0
        if feature.max_null_share and null_share > feature.max_null_share:
            problems.append(
                f"{feature.name}: {null_share:.1%} nulls, more than its max_null_share {feature.max_null_share:.1%}"
            )
    if problems:
        raise DataContractError("the data cannot be trained on:\n  - " + "\n  - ".join(problems))
