"""What a retrain learns from after a change, at the shipped defaults: the holdout's cap after a long calm,
and training on the new rows only after performance drift."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from include.retraining.core import windows
from include.retraining.core.records import PerformanceDrift

TS, ID = "ingested_at", "_id"
END = pd.Timestamp("2024-06-01", tz="UTC")


def evenly_stamped(config, days: int, per_day: int) -> pd.DataFrame:
    stamps = pd.date_range(end=END, periods=days * per_day, freq=pd.Timedelta(days=1) / per_day)
    ids = [f"doc-{i}" for i in range(len(stamps))]
    return pd.DataFrame({ID: ids, TS: stamps, config.contract.label.name: np.arange(len(stamps)) % 2})


def verdict(status: str) -> PerformanceDrift:
    return PerformanceDrift(
        status=status,
        metric="roc_auc",
        reference_value=0.86,
        current_value=0.35,
        lower=0.34,
        upper=0.36,
        labeled_rows=5_000,
        reason="",
    )


def test_after_a_long_calm_the_holdout_is_capped_so_the_challenger_sees_the_newest_weeks(default_config):
    """A champion fitted 63 days ago: 20% of its 63,000 new rows would be 12.6 days of holdout, and a change
    of the last week would only ever be judged, never learned."""
    frame = evenly_stamped(default_config, days=90, per_day=1_000)
    champion_end = (END - pd.Timedelta(days=63)).to_pydatetime()
    training = default_config.training

    train, holdout = windows.split(frame, default_config.contract, training, TS, champion_end)

    assert len(holdout) == training.max_holdout_rows == 2_000
    assert train[TS].max() > END - pd.Timedelta(days=3)  # the challenger learned up to 2 days ago
    uncapped = replace(training, max_holdout_rows=None)
    assert len(windows.split(frame, default_config.contract, uncapped, TS, champion_end)[1]) == 12_600


@pytest.mark.parametrize("days_since_champion", [3, 10, 30])
def test_after_performance_drift_the_challenger_learns_from_the_new_rows_only(default_config, days_since_champion):
    frame = evenly_stamped(default_config, days=90, per_day=1_000)
    champion_end = (END - pd.Timedelta(days=days_since_champion)).to_pydatetime()
    training, contract = default_config.training, default_config.contract
    forget = windows.forgets(training, verdict("drift"))

    train, holdout = windows.split(frame, contract, training, TS, champion_end, forget)
    kept_train, kept_holdout = windows.split(frame, contract, training, TS, champion_end)

    assert forget
    assert train[TS].min() > pd.Timestamp(champion_end)  # the old relation's labels are left out
    assert len(train) == days_since_champion * 1_000 - len(holdout)
    assert holdout.equals(kept_holdout)  # the same judge either way
    assert kept_train[TS].min() < pd.Timestamp(champion_end)


def test_forgetting_needs_drift_the_switch_and_enough_new_rows(default_config):
    training, contract = default_config.training, default_config.contract
    assert not windows.forgets(training, verdict("no_drift"))
    assert not windows.forgets(training, None)
    assert not windows.forgets(replace(training, forget_on_performance_drift=False), verdict("drift"))
    frame = evenly_stamped(default_config, days=90, per_day=100)
    champion_end = (END - pd.Timedelta(days=3)).to_pydatetime()  # 300 new rows: fewer than contract.min_rows

    train, _ = windows.split(frame, contract, training, TS, champion_end, forget=True)

    assert train[TS].min() < pd.Timestamp(champion_end)  # too few new rows to learn from alone: all of them
