"""Which rows each model sees: disjoint, recorded windows over one validated extract.

- *reference*: the rows the champion was fitted on (its recorded fitted slice);
- *current*: the rows stamped after the champion's fitted slice ended — what the drift check compares
  with the reference, so the champion's own rows never dilute the drift;
- *holdout* (out of time): the newest ``training.holdout_share`` of the labeled rows of the current slice
  (at least ``training.min_holdout_rows``, at most ``training.max_holdout_rows``); neither model trained on
  them, both are scored on them;
- *training*: the labeled rows older than the holdout, within the extract (``training.window_days``): the
  older part of the new rows included, so the challenger the gate judges has learned what changed; after
  performance drift only those new rows (``training.forget_on_performance_drift``), when there are enough;
- *fitted*: what the registered version was fitted on — training plus holdout when the gate passed and
  ``training.refit`` is on (the final refit), else training.

The holdout lies strictly after the champion's fitted slice, so the two never share a row. Rows without a
label (labels often arrive days later) count for the drift check only.
"""

from __future__ import annotations

import hashlib
import math
from datetime import datetime

import pandas as pd

from include.retraining.core.config import ContractConfig, TrainingConfig
from include.retraining.core.contract import labeled_rows
from include.retraining.core.records import PerformanceDrift, Slice, WindowPlan


def ids_hash(ids: pd.Series) -> str:
    """Order-free: the same rows give the same hash however they were read."""
    values = sorted(ids.astype(str))
    return hashlib.sha256("".join(f"{value}\0" for value in values).encode()).hexdigest()


def slice_of(frame: pd.DataFrame, id_field: str, timestamp_field: str) -> Slice:
    stamps = frame[timestamp_field]
    bound = (lambda value: pd.Timestamp(value).isoformat()) if len(frame) else (lambda value: None)
    return Slice(
        start=bound(stamps.min()), end=bound(stamps.max()), rows=len(frame), ids_hash=ids_hash(frame[id_field])
    )


def after(frame: pd.DataFrame, timestamp_field: str, moment: datetime | None) -> pd.DataFrame:
    return frame if moment is None else frame.loc[frame[timestamp_field] > pd.Timestamp(moment)]


def split(
    frame: pd.DataFrame,
    contract: ContractConfig,
    training: TrainingConfig,
    timestamp_field: str,
    champion_training_end: datetime | None,
    forget: bool = False,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training rows, holdout rows): the holdout is the newest ``holdout_share`` of the labeled rows newer
    than the champion's fitted slice (``holdout_size``); training is every labeled row older than it, the
    older new rows included — or, with ``forget`` (performance drift), only those new rows when there are
    ``contract.min_rows`` of them. Deterministic: a retried task splits the same rows again."""
    stamps = frame[timestamp_field]
    labeled = frame[contract.label.name].notna()
    ordered = stamps[labeled].sort_values(kind="stable")
    newer = ordered if champion_training_end is None else ordered[ordered > pd.Timestamp(champion_training_end)]
    size = holdout_size(len(newer), training)
    if not size:
        rows = in_time_order(labeled_rows(frame, contract), timestamp_field)
        return rows, rows.iloc[:0]
    # the newer rows are the newest labeled ones; rows stamped like the holdout's first row go with it:
    # a timestamp is never split between the two
    first = ordered.iloc[len(ordered) - size]
    older = stamps < first
    if forget and champion_training_end is not None and len(newer) - size >= contract.min_rows:
        older &= stamps > pd.Timestamp(champion_training_end)
    train = in_time_order(labeled_rows(frame, contract, where=older), timestamp_field)
    return train, in_time_order(labeled_rows(frame, contract, where=stamps >= first), timestamp_field)


def forgets(training: TrainingConfig, performance: PerformanceDrift | None) -> bool:
    """Whether the challenger learns from the rows new to the champion only: after performance drift, when
    ``training.forget_on_performance_drift`` is on."""
    return training.forget_on_performance_drift and performance is not None and performance.drifted


def holdout_size(new_labeled: int, training: TrainingConfig) -> int:
    """How many of the newest labeled rows are held out of ``new_labeled`` rows new to the champion: their
    ``holdout_share``, at least ``min_holdout_rows`` and at most ``max_holdout_rows``."""
    size = max(math.ceil(training.holdout_share * new_labeled), training.min_holdout_rows)
    if training.max_holdout_rows is not None:
        size = min(size, training.max_holdout_rows)
    return min(new_labeled, size)


def in_time_order(rows: pd.DataFrame, timestamp_field: str) -> pd.DataFrame:
    """Rows read in timestamp order (the extract sorts) are not sorted, i.e. copied, again."""
    return rows if rows[timestamp_field].is_monotonic_increasing else rows.sort_values(timestamp_field, kind="stable")


def plan(
    frame: pd.DataFrame,
    contract: ContractConfig,
    training: TrainingConfig,
    id_field: str,
    timestamp_field: str,
    champion_training_end: datetime | None,
    forget: bool = False,
) -> WindowPlan:
    current = after(frame, timestamp_field, champion_training_end)
    train, holdout = split(frame, contract, training, timestamp_field, champion_training_end, forget)
    return WindowPlan(
        current=slice_of(current, id_field, timestamp_field),
        training=slice_of(train, id_field, timestamp_field),
        holdout=slice_of(holdout, id_field, timestamp_field),
        rows_unlabeled=int(current[contract.label.name].isna().sum()),
        champion_training_end=champion_training_end.isoformat() if champion_training_end else None,
        problem=problem(train, holdout, contract, training, champion_training_end),
    )


def problem(
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    contract: ContractConfig,
    training: TrainingConfig,
    champion_training_end: datetime | None,
) -> str | None:
    """Why this window cannot train and fairly judge a challenger, in one sentence with the fix; else None."""
    label = contract.label
    newer = ""
    if champion_training_end:
        newer = f" newer than the champion's training data (which ends {champion_training_end.isoformat()})"
    if len(holdout) < training.min_holdout_rows:
        return (
            f"only {len(holdout):,} labeled rows{newer} for the out-of-time holdout, fewer than "
            f"training.min_holdout_rows ({training.min_holdout_rows:,}): wait for more labeled documents, "
            "or lower training.min_holdout_rows"
        )
    if label.is_classification:
        for name, rows in (("training rows", train), ("out-of-time holdout", holdout)):
            present = sorted(map(str, rows[label.name].unique()))
            if len(present) == 1:
                return (
                    f"the {name} ({len(rows):,} rows) hold only class {present} of {label.name}: a model cannot "
                    "be trained or compared on one class; wait for more labeled documents"
                )
    elif train[label.name].nunique() == 1:
        return f"the training rows hold a single value of {label.name}: nothing to learn; wait for more data"
    if len(train) < contract.min_rows:
        return (
            f"only {len(train):,} labeled rows older than the holdout to train on, fewer than contract.min_rows "
            f"({contract.min_rows:,}): widen training.window_days, or wait for more labeled documents"
        )
    return None
