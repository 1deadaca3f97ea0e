"""The backtest's replay and its report on an in-memory history (no services): the policies, the prequential
score, and the figures the targets are checked against."""

from __future__ import annotations

import argparse
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from include.demo.sample_data import generate_frame
from include.retraining.backtest import replay, report
from include.retraining.backtest.__main__ import parse_step
from include.retraining.core.config import load_config, with_overrides

START = datetime(2025, 1, 1, tzinfo=UTC)
DAYS, PER_DAY, CHANGE_DAY = 49, 250, 28
STEP = timedelta(days=7)


@pytest.fixture(scope="module")
def history() -> pd.DataFrame:
    """A steady feed (not a dense block) whose concept flips at ``CHANGE_DAY``."""
    days = []
    for day in range(DAYS):
        begin = START + timedelta(days=day)
        concept = 1.0 if day >= CHANGE_DAY else 0.0
        end = begin + timedelta(days=1)
        days.append(generate_frame(PER_DAY, start=begin, end=end, seed=day, concept_drift=concept))
    frame = pd.concat(days, ignore_index=True)
    frame["_id"] = [f"row{i}" for i in range(len(frame))]
    return frame


@pytest.fixture(scope="module")
def config():
    # a small, fast model on a 14-day window; everything else (split, refit, gate, drift) as shipped
    shipped = load_config()
    hyperparameters = shipped.training.hyperparameters | {"max_iter": 60}
    return with_overrides(shipped, training={"window_days": 14, "hyperparameters": hyperparameters})


@pytest.fixture(scope="module")
def runs(config, history):
    ends = replay.step_ends(START + timedelta(days=14), START + timedelta(days=DAYS - 7), STEP)
    return replay.replay(config, history, ends, STEP)


def test_step_ends_and_steps_parse():
    assert replay.step_ends(START, START + timedelta(days=2), timedelta(days=1)) == [
        START,
        START + timedelta(days=1),
        START + timedelta(days=2),
    ]
    assert parse_step("12h") == timedelta(hours=12)
    assert parse_step("7d") == timedelta(days=7)
    with pytest.raises(argparse.ArgumentTypeError, match=r"e\.g\. 1d"):
        parse_step("7 days")


def test_every_policy_starts_from_the_same_first_champion(runs):
    firsts = [steps[0] for steps in runs.values()]
    assert all(step.promoted and step.champion_version == 1 for step in firsts)
    assert len({step.metric for step in firsts}) == 1


def test_never_keeps_its_first_champion_and_always_retrains_every_step(runs):
    assert [step.champion_version for step in runs["never"]] == [1] * len(runs["never"])
    assert not any(step.retrained for step in runs["never"][1:])
    assert all(step.retrained for step in runs["always"][1:])
    assert all(step.drift_status is None for step in runs["always"][1:])  # forced: no check needed


def test_the_champion_is_scored_on_the_next_steps_labeled_rows_only(runs, history):
    step = runs["never"][1]
    stamps = history["ingested_at"]
    after = (stamps > pd.Timestamp(step.end)) & (stamps <= pd.Timestamp(step.end + STEP))
    assert step.rows_scored == int(after.sum()) == 7 * PER_DAY


def test_the_configured_policy_learns_the_flipped_concept(runs):
    """After the flip the first champion ranks the new buyers worse than chance; the configured policy
    alarms, retrains on rows from after the flip and promotes a champion that ranks them well again."""
    never, configured = runs["never"], runs["configured"]
    flipped = [i for i, step in enumerate(never) if step.end >= START + timedelta(days=CHANGE_DAY)]
    assert never[flipped[-1]].metric < 0.5
    assert any(step.alarm for step in configured[flipped[0] :])
    assert configured[-1].champion_version > 1
    assert configured[-1].metric > never[-1].metric + 0.2


def test_largest_drop_and_recovery_are_counted_in_steps():
    values = pd.Series([0.85, 0.86, 0.85, 0.40, 0.45, 0.85, 0.85])
    drop = report.largest_drop(values, "roc_auc")
    assert drop == 3
    assert report.recovery(values, None, drop, "roc_auc") == 2
    assert report.recovery(values, 0.44, drop, "roc_auc") == 1  # harder data for every policy: its best
    assert report.recovery(pd.Series([0.9, 0.9, 0.5, 0.5]), None, 2, "roc_auc") is None
    assert report.largest_drop(pd.Series([5.0, 5.0, 9.0, 5.0]), "rmse") == 2  # lower is better


def test_targets_compare_configured_with_always_and_never():
    def steps(policy: str, metrics: list[float], retrained: list[bool]) -> list[replay.Step]:
        base = replay.Step(policy, START, None, None, False, False, False, 1, None, None, 0, "")
        return [
            replace(base, end=START + i * STEP, metric=m, retrained=r)
            for i, (m, r) in enumerate(zip(metrics, retrained, strict=True))
        ]

    runs = {
        "configured": steps("configured", [0.8, 0.8, 0.5, 0.8, 0.8], [True, False, False, True, False]),
        "always": steps("always", [0.8, 0.8, 0.5, 0.8, 0.8], [True] * 5),
        "never": steps("never", [0.8, 0.8, 0.5, 0.5, 0.5], [True, False, False, False, False]),
    }
    summaries = report.summarize(runs, "roc_auc")
    results = {target: met for target, met, _ in report.targets(summaries, "roc_auc")}
    assert summaries["configured"].retrains == 1
    assert summaries["always"].retrains == 4
    assert all(results.values()), results
    runs["configured"] = steps("configured", [0.8, 0.8, 0.5, 0.4, 0.4], [True] * 5)
    results = {target: met for target, met, _ in report.targets(report.summarize(runs, "roc_auc"), "roc_auc")}
    assert not any(results.values()), results
