"""Silent traps in a dataset, each named with its fix: what onboarding refuses or leaves out, and what
``validate`` warns about on every run.

- a label sorted with the timestamp (file order = class order, stamped in file order): the newest rows,
  the out-of-time holdout, hold other classes than the training rows;
- a timestamp that is one instant for every row (integer years read as epoch nanoseconds: 1970-01-01);
- calendar columns (year, month, week...) taken as features: a window and its reference differ in them
  by construction, so they "drift" every night;
- identifiers taken as features: a whole number unique per row tells nothing about the label.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from include.retraining.core.config import ContractConfig

# a calendar column: its plain name and the whole numbers it holds
CALENDAR = {
    "year": (1800, 2200),
    "quarter": (1, 4),
    "month": (1, 12),
    "week": (0, 53),
    "weekofyear": (0, 53),
    "dayofyear": (0, 366),
    "day": (1, 31),
    "dayofmonth": (1, 31),
    "weekday": (0, 7),
    "dayofweek": (0, 7),
    "hour": (0, 23),
}
# their cycle is longer than a week: a 90-day window and its reference differ in them by construction
DRIFTING_CALENDAR = {"year", "quarter", "month", "week", "weekofyear", "dayofyear"}
SORTED_CHANGES = 0.1  # a label changing value this much less often than in a shuffled order is sorted
SORTED_RANK_CORRELATION = 0.98  # a regression target this tied to the timestamp's order is sorted
CALENDAR_DRIFT = "a window and its reference differ in it by construction, so it drifts every night"
IDENTIFIER_USE = "a row id tells nothing about the label, and a model that splits on it does not generalise"
MIN_ROWS_TO_JUDGE = 30
MIN_ID_ROWS = 100  # fewer rows than this are unique per row by chance


def calendar_kind(name: str, values: pd.Series) -> str | None:
    """``year``, ``month``... when the column is named so and holds only whole numbers of that range."""
    plain = re.sub(r"[^a-z]", "", name.lower())
    if plain not in CALENDAR:
        return None
    numbers = pd.to_numeric(values.dropna(), errors="coerce")
    low, high = CALENDAR[plain]
    if numbers.empty or numbers.isna().any() or not (numbers % 1 == 0).all():
        return None
    return plain if numbers.between(low, high).all() else None


def calendar_note(name: str, kind: str) -> str:
    """What onboarding says about a calendar column it leaves out or keeps."""
    if kind in DRIFTING_CALENDAR:
        return (
            f"{name}: a calendar column ({kind}), left out: {CALENDAR_DRIFT}; the timestamp already orders the "
            "rows (add it to contract.features only if the season matters, and expect drift alerts on it)"
        )
    return (
        f"{name}: a calendar column ({kind}) with a cycle shorter than the window: kept; a window shorter "
        "than its cycle drifts on it by construction"
    )


def is_identifier(values: pd.Series) -> bool:
    """Whole numbers, a different one in every row (of at least ``MIN_ID_ROWS``): a row id, not a feature."""
    present = values.dropna()
    if len(present) < MIN_ID_ROWS or not pd.api.types.is_numeric_dtype(present):
        return False
    return bool((present % 1 == 0).all() and present.is_unique)


def identifier_note(name: str) -> str:
    return (
        f"{name}: a whole number unique per row (an identifier), left out: {IDENTIFIER_USE}; store it as _id "
        "(make load-csv ID=<column>), or add it to contract.features if it means something"
    )


def single_instant(stamps: pd.Series, field: str) -> str | None:
    """Every row stamped at one moment: no window can tell old rows from new ones."""
    present = pd.to_datetime(stamps.dropna(), utc=True)
    if len(present) < 2 or present.nunique() > 1:
        return None
    moment = present.iloc[0]
    epoch = (
        " (the epoch: numbers read as nanoseconds since 1970, e.g. integer years)"
        if moment.year == 1970 and moment.dayofyear == 1
        else ""
    )
    return (
        f"{field}: every row is stamped {moment.isoformat()}{epoch}: no window can tell old rows from new; "
        f"load the rows with the moment each arrived (make load-csv without TIMESTAMP= stamps them in file order)"
    )


def label_sorted_with_time(frame: pd.DataFrame, label: str, field: str, classification: bool) -> str | None:
    """The label follows the timestamp's order (a file sorted by the label, stamped in file order)."""
    rows = frame.loc[frame[label].notna(), [field, label]].sort_values(field, kind="stable")
    if len(rows) < MIN_ROWS_TO_JUDGE:
        return None
    values = rows[label]
    if classification:
        shares = values.value_counts(normalize=True)
        expected = (len(values) - 1) * (1 - float((shares**2).sum()))
        changes = int((values.to_numpy()[1:] != values.to_numpy()[:-1]).sum())
        if expected < 10 or changes >= SORTED_CHANGES * expected:
            return None
        found = f"its value changes {changes:,} times from row to row in time order, {expected:,.0f} when shuffled"
    else:
        ranks = np.arange(len(values))
        correlation = float(pd.Series(ranks).corr(pd.Series(values.rank().to_numpy()), method="pearson"))
        if not abs(correlation) >= SORTED_RANK_CORRELATION:
            return None
        found = f"its rank correlation with {field} is {correlation:+.3f}"
    return (
        f"{label} is sorted with {field} ({found}): the newest rows, the out-of-time holdout, hold other "
        f"{'classes' if classification else 'values'} than the training rows; stamp the rows with the moment "
        "each arrived, or shuffle the file before make load-csv stamps it in file order"
    )


def classes_missing(train: pd.Series, holdout: pd.Series, classes: list) -> str | None:
    """Declared classes absent from the training rows or the out-of-time holdout."""
    gaps = []
    for name, rows in (("training rows", train), ("out-of-time holdout", holdout)):
        if missing := [value for value in classes if not (rows == value).any()]:
            gaps.append(f"the {name} ({len(rows):,}) lack class {missing}")
    if not gaps:
        return None
    return (
        "; ".join(gaps) + ": a model cannot learn or be judged on a class it never sees; widen "
        "training.window_days, or check that the label is not sorted with the timestamp"
    )


def classes_absent(labels: pd.Series, classes: list) -> str | None:
    """Declared classes no labeled row of the window holds: no model trained on it can predict them."""
    present = labels.dropna()
    missing = [value for value in classes if not (present == value).any()]
    if present.empty or not missing:
        return None
    return (
        f"{labels.name}: no labeled row of this window holds class {missing} of contract.label.classes: a model "
        "trained on it never predicts them; widen training.window_days, or check the label's values"
    )


def feature_warnings(frame: pd.DataFrame, features: list[str]) -> list[str]:
    """What ``validate`` says about the contract's features every run: calendar columns that drift by
    construction and identifiers."""
    warnings = []
    for name in features:
        if name not in frame:
            continue
        kind = calendar_kind(name, frame[name])
        if kind in DRIFTING_CALENDAR:
            warnings.append(f"{name}: a calendar column ({kind}) among contract.features: {CALENDAR_DRIFT}; remove it")
        elif is_identifier(frame[name]):
            warnings.append(f"{name}: unique per row (an identifier) among contract.features: {IDENTIFIER_USE}")
    return warnings


def dataset_warnings(frame: pd.DataFrame, contract: ContractConfig, timestamp_field: str) -> list[str]:
    """Every trap ``validate`` can see in a validated window, each a sentence with its fix."""
    label = contract.label
    found = [
        single_instant(frame[timestamp_field], timestamp_field) if timestamp_field in frame else None,
        label_sorted_with_time(frame, label.name, timestamp_field, label.is_classification)
        if {label.name, timestamp_field} <= set(frame.columns)
        else None,
        classes_absent(frame[label.name], list(label.classes)) if label.name in frame else None,
        *feature_warnings(frame, contract.feature_names),
    ]
    return [warning for warning in found if warning]
