"""Which rows each model sees, on real data (breast cancer, stamped one row per hour in a shuffled order)."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import datetime

import numpy as np
import pandas as pd
import pytest

from include.retraining.core import windows
from include.retraining.core.contract import validate_frame
from tests.datasets import configure, load

TS, ID = "ingested_at", "_id"


@pytest.fixture(scope="module")
def config(default_config):
    return configure(default_config, load("binary"), min_holdout_rows=50)


@pytest.fixture
def frame(config) -> pd.DataFrame:
    data = load("binary").frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    data[ID] = [f"doc-{i}" for i in range(len(data))]
    data[TS] = pd.date_range("2024-01-01", periods=len(data), freq="h", tz="UTC")
    return validate_frame(data, config.contract, ID).valid


def plan(config, frame, champion_end=None):
    return windows.plan(frame, config.contract, config.training, ID, TS, champion_end)


def test_without_a_champion_the_holdout_is_the_newest_labeled_share_and_training_everything_older(config, frame):
    train, holdout = windows.split(frame, config.contract, config.training, TS, None)

    assert len(holdout) == np.ceil(config.training.holdout_share * len(frame))
    assert train[TS].max() < holdout[TS].min()  # out of time, not at random
    assert holdout[TS].max() == frame[TS].max()
    assert len(train) + len(holdout) == len(frame)


def test_rows_sharing_the_boundary_timestamp_all_go_to_the_holdout(config, frame):
    frame = frame.copy()
    frame["ingested_at"] = frame["ingested_at"].dt.floor("1D")  # 24 rows per timestamp

    train, holdout = windows.split(frame, config.contract, config.training, TS, None)

    assert len(train) + len(holdout) == len(frame)  # no row lost at the boundary
    assert train[TS].max() < holdout[TS].min()
    assert len(holdout) >= np.ceil(config.training.holdout_share * len(frame))


def test_the_holdout_never_holds_a_row_the_champion_trained_on(config, frame):
    """The champion trained on the rows up to its training end; today's holdout lies strictly after it."""
    champion_train, _ = windows.split(frame.iloc[:400], config.contract, config.training, TS, None)
    champion_end = champion_train[TS].max().to_pydatetime()

    _, holdout = windows.split(frame, config.contract, config.training, TS, champion_end)

    assert set(holdout[ID]).isdisjoint(champion_train[ID])
    assert holdout[TS].min() > champion_end
    # the current slice (for drift) is everything after the champion's training data, no row of it
    current = windows.after(frame, TS, champion_end)
    assert set(current[ID]).isdisjoint(champion_train[ID])
    assert set(holdout[ID]) <= set(current[ID])


def test_few_rows_after_the_champion_shrink_the_holdout_rather_than_reuse_its_rows(config, frame):
    champion_end = frame[TS].iloc[-60].to_pydatetime()  # 59 rows are newer than the champion's data

    result = plan(config, frame, champion_end)

    # min_holdout_rows (50) outweighs the share of 59; the 9 older new rows are trained on
    assert result.holdout.rows == config.training.min_holdout_rows == 50
    assert datetime.fromisoformat(result.training.end) > champion_end
    assert result.trainable
    tighter = replace(config, training=replace(config.training, min_holdout_rows=100))
    tighter_plan = plan(tighter, frame, champion_end)
    assert tighter_plan.holdout.rows == 59  # all the new rows, never one of the champion's
    assert tighter_plan.problem.startswith("only 59 labeled rows newer than the champion's training data (which ends ")


def test_unlabeled_rows_count_for_drift_and_never_reach_training_or_the_holdout(config, frame):
    frame = frame.copy()
    newest = frame.index[-30:]
    frame.loc[newest, "diagnosis"] = None  # the labels of the last 30 hours have not arrived

    result = plan(config, frame)
    train, holdout = windows.split(frame, config.contract, config.training, TS, None)

    assert result.rows_unlabeled == 30
    assert result.current.rows == len(frame)
    assert set(frame.loc[newest, ID]).isdisjoint(set(train[ID]) | set(holdout[ID]))
    assert holdout[TS].max() < frame[TS].max()  # the holdout is the newest *labeled* slice


def test_a_one_class_holdout_is_a_clear_reason_not_a_nan(config, frame):
    frame = frame.copy()
    newest = frame.index[-120:]
    frame.loc[newest, "diagnosis"] = "benign"

    result = plan(config, frame)

    assert result.problem.startswith("the out-of-time holdout (114 rows) hold only class ['benign'] of diagnosis")


def test_too_few_training_rows_name_the_setting(config, frame):
    result = plan(config, frame.iloc[:300])

    assert result.problem.startswith("only 240 labeled rows older than the holdout to train on, fewer than contract")


def test_the_plan_is_recorded_with_bounds_counts_and_order_free_id_hashes(config, frame):
    result = plan(config, frame)
    again = plan(config, frame.sample(frac=1.0, random_state=9))

    assert result == again  # the same rows, read in another order
    assert result.holdout.rows + result.training.rows == len(frame)
    assert datetime.fromisoformat(result.training.end) < datetime.fromisoformat(result.holdout.start)
    assert result.holdout.ids_hash != result.training.ids_hash


def test_the_id_hash_is_the_digest_versions_recorded_so_far(frame):
    """One join instead of two updates per id (1M ids: ~1 s less) must not change a recorded hash."""
    digest = hashlib.sha256()
    for value in sorted(frame[ID].astype(str)):
        digest.update(value.encode())
        digest.update(b"\0")

    assert windows.ids_hash(frame[ID].sample(frac=1.0, random_state=1)) == digest.hexdigest()


def test_the_split_of_rows_read_in_any_order_is_in_timestamp_order(config, frame):
    train, holdout = windows.split(frame.sample(frac=1.0, random_state=4), config.contract, config.training, TS, None)
    in_order_train, in_order_holdout = windows.split(frame, config.contract, config.training, TS, None)

    assert train[TS].is_monotonic_increasing
    assert holdout[TS].is_monotonic_increasing
    assert train.index.tolist() == in_order_train.index.tolist()
    assert holdout.index.tolist() == in_order_holdout.index.tolist()
    assert holdout[config.contract.label.name].dtype == in_order_holdout[config.contract.label.name].dtype


def evenly_stamped(config, days: int, per_day: int, end: datetime) -> pd.DataFrame:
    """``per_day`` labeled rows a day for ``days`` days up to ``end``, one every 86,400 / per_day seconds."""
    stamps = pd.date_range(end=end, periods=days * per_day, freq=pd.Timedelta(days=1) / per_day)
    ids = [f"doc-{i}" for i in range(len(stamps))]
    return pd.DataFrame({ID: ids, TS: stamps, config.contract.label.name: np.arange(len(stamps)) % 2})


@pytest.mark.parametrize("days_since_champion", [1, 3, 10, 18])
def test_at_the_shipped_defaults_a_retrain_trains_on_rows_newer_than_the_champion(default_config, days_since_champion):
    """Issue 16: the newest rows must not only ever serve as the holdout, or a retrain never learns a drift."""
    end = pd.Timestamp("2024-06-01", tz="UTC")
    frame = evenly_stamped(default_config, days=90, per_day=1_000, end=end)
    champion_end = (end - pd.Timedelta(days=days_since_champion)).to_pydatetime()
    champion_fitted = frame[frame[TS] <= champion_end]
    new = windows.after(frame, TS, champion_end)

    train, holdout = windows.split(frame, default_config.contract, default_config.training, TS, champion_end)

    assert len(holdout) == windows.holdout_size(len(new), default_config.training) < len(new)
    assert (train[TS] > champion_end).sum() == len(new) - len(holdout)  # the older new rows are trained on
    assert holdout[TS].min() > train[TS].max()  # the holdout is the newest rows only
    assert holdout[TS].max() == frame[TS].max()
    assert set(holdout[ID]).isdisjoint(champion_fitted[ID])
    assert set(holdout[ID]).isdisjoint(train[ID])
    assert len(train) + len(holdout) == len(frame)
