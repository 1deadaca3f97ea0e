"""Replay a collection's history step by step through the pipeline's own decisions, in one process.

At every step end ``t`` each policy runs what the drift monitor and the retrain it triggers decide, with
the functions their stages call: the monitor's check of the step's new rows that the champion never saw
against the rows it was fitted on (``core.drift.judge``) and its score on their labels
(``core.performance.assess_champion``), the decision (``core.decision.decide_retrain``), the extract
window ``(t - training.window_days, t]`` planned into slices (``core.windows.plan``), the challenger fitted
on the training slice (``core.windows.split``, ``core.training.training_sample``,
``core.training.fit_recent``), the gate on the out-of-time holdout (``core.evaluation.decide_promotion``)
and the final refit on training + holdout (``training.refit``). The models live in memory instead of
MLflow; nothing else differs.

The champion of each step is then scored *prequentially*: on the labeled rows of the next step, which
no model of that step has seen. Policies:

* ``configured``: the model's config as it is (drift or performance drift -> retrain -> gate -> promote);
* ``always``: the same run with ``force_retrain`` at every step (the gate still decides the promotion);
* ``never``: the first champion, never retrained.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from include.retraining.core import drift as drift_lib
from include.retraining.core import windows
from include.retraining.core.config import PipelineConfig, lower_is_better
from include.retraining.core.contract import labeled_rows
from include.retraining.core.decision import decide_retrain
from include.retraining.core.evaluation import decide_promotion, metric_value, predict, targets
from include.retraining.core.performance import assess_champion
from include.retraining.core.records import DriftResult, RunInfo
from include.retraining.core.training import fit_recent, training_sample

POLICIES = ("configured", "always", "never")


@dataclass(frozen=True)
class Champion:
    """The in-memory stand-in of a registered champion: what the stages read from its version's tags."""

    version: int
    model: Any
    fitted: pd.DataFrame  # the rows it was fitted on: the drift reference
    holdout_metrics: dict[str, float]

    def fitted_end(self, timestamp_field: str) -> datetime:
        return self.fitted[timestamp_field].max().to_pydatetime()


@dataclass(frozen=True)
class Step:
    """What one policy did at one step end, and how its champion then scored on the next step's labels."""

    policy: str
    end: datetime
    drift_status: str | None  # None: the policy does not check (always, never)
    performance_status: str | None
    alarm: bool
    retrained: bool
    promoted: bool
    champion_version: int | None
    rows_fitted: int | None  # rows of the version this step fitted and promoted
    metric: float | None  # prequential: the champion on the next step's labeled rows
    rows_scored: int
    reason: str


@dataclass
class Policy:
    name: str
    champion: Champion | None = None
    versions: int = 0
    steps: list[Step] = field(default_factory=list)


def step_ends(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    """``start``, ``start + step``, ... up to ``end``: the moments a retrain run would start at."""
    ends, moment = [], start
    while moment <= end:
        ends.append(moment)
        moment += step
    return ends


def replay(
    config: PipelineConfig,
    history: pd.DataFrame,
    ends: list[datetime],
    step: timedelta,
    policies: tuple[str, ...] = POLICIES,
    progress: Callable[[Iterator], Iterator] = lambda steps: steps,
) -> dict[str, list[Step]]:
    """Every policy's steps over ``history`` (validated rows, in time order). The first step trains the
    first champion, shared by all policies (the same run decides the same way for each)."""
    states = {name: Policy(name) for name in policies}
    for index in progress(iter(range(len(ends)))):
        end = ends[index]
        scored = next_step_rows(config, history, end, step)
        for state in states.values():
            first = index == 0 and state is not next(iter(states.values()))
            outcome = shared_first_step(states, state) if first else run_step(config, history, state, end, step)
            state.steps.append(replace(outcome, **prequential(config, state.champion, scored)))
    return {name: state.steps for name, state in states.items()}


def shared_first_step(states: dict[str, Policy], state: Policy) -> Step:
    """The first champion is the same for every policy: copy the first policy's instead of fitting it again."""
    leader = next(iter(states.values()))
    state.champion, state.versions = leader.champion, leader.versions
    return replace(leader.steps[0], policy=state.name)


def run_step(config: PipelineConfig, history: pd.DataFrame, state: Policy, end: datetime, step: timedelta) -> Step:
    """One step of ``state``'s policy at ``end``: the drift monitor's check of the step's new rows, then the
    retrain run it triggers (``always``: forced), with the stages' decisions."""
    source, contract, training = config.source, config.contract, config.training
    champion = state.champion
    champion_end = champion.fitted_end(source.timestamp_field) if champion else None
    window = extract_window(config, history, end)
    checks = state.name == "configured" or champion is None
    drift = check(config, window, champion, end - step) if checks else unchecked(config, champion)
    forget = windows.forgets(training, drift.performance)
    plan = windows.plan(window, contract, training, source.id_field, source.timestamp_field, champion_end, forget)
    drift = replace(drift, windows=plan)
    if state.name == "never" and champion is not None:
        return outcome(state, end, drift, checks, False, False, None, "never retrains")
    run = RunInfo(
        dag_id=f"backtest_{state.name}",
        run_id=end.isoformat(),
        run_end=end.isoformat(),
        force_retrain=state.name == "always",
    )
    decision = decide_retrain(run, drift, config.drift.retrain_on)
    if not decision.retrain:
        return outcome(state, end, drift, checks, False, False, None, decision.reason)
    train_rows, holdout = windows.split(window, contract, training, source.timestamp_field, champion_end, forget)
    fitted = training_sample(train_rows, contract, training)
    challenger = fit_recent(fitted, contract, training, source.timestamp_field)
    evaluation = judge_challenger(config, challenger, champion, holdout)
    if not evaluation.passed:
        return outcome(state, end, drift, checks, True, False, None, f"{decision.reason}; {evaluation.reason}")
    if training.refit:
        fitted = windows.in_time_order(pd.concat([fitted, holdout], ignore_index=True), source.timestamp_field)
        challenger = fit_recent(fitted, contract, training, source.timestamp_field)
    state.versions += 1
    state.champion = Champion(state.versions, challenger, fitted, evaluation.challenger)
    return outcome(state, end, drift, checks, True, True, len(fitted), f"{decision.reason}; {evaluation.reason}")


def extract_window(config: PipelineConfig, history: pd.DataFrame, end: datetime) -> pd.DataFrame:
    """The rows a run at ``end`` extracts: ``(end - lookback, end]`` as ``stages.data.read_window`` reads them."""
    stamps = history[config.source.timestamp_field]
    lookback, days = config.source.lookback_hours, config.training.window_days
    start = end - (timedelta(hours=lookback) if lookback else timedelta(days=days)) if (lookback or days) else None
    inside = stamps <= pd.Timestamp(end)
    if start is not None:
        inside &= stamps > pd.Timestamp(start)
    return history.loc[inside]


def next_step_rows(config: PipelineConfig, history: pd.DataFrame, end: datetime, step: timedelta) -> pd.DataFrame:
    """The labeled rows of ``(end, end + step]``: what the champion of the step at ``end`` is scored on."""
    stamps = history[config.source.timestamp_field]
    inside = (stamps > pd.Timestamp(end)) & (stamps <= pd.Timestamp(end + step))
    return labeled_rows(history, config.contract, where=inside)


def check(config: PipelineConfig, window: pd.DataFrame, champion: Champion | None, since: datetime) -> DriftResult:
    """The drift monitor's ``check_drift`` in memory: the step's rows (the monitor's windows since ``since``)
    that are new to the champion, against its fitted rows."""
    source, contract = config.source, config.contract
    end = champion.fitted_end(source.timestamp_field) if champion else None
    current = windows.after(window, source.timestamp_field, max(end, since) if end else since)
    result = unchecked(config, champion, rows_current=len(current))
    if champion is None:
        return result
    metric = config.gate.primary_metric
    performance = assess_champion(
        lambda: champion.model,
        labeled_rows(current, contract),
        contract,
        champion.holdout_metrics.get(metric),
        metric,
        config.performance,
    )
    result = replace(result, performance=performance)
    verdict, _ = drift_lib.judge(
        result, current, lambda: champion.fitted, contract, config.drift, contract.min_rows, report=False
    )
    return verdict


def unchecked(config: PipelineConfig, champion: Champion | None, rows_current: int = 0) -> DriftResult:
    """The drift record of a run that did not check (or before the check): no verdict yet."""
    return DriftResult(
        status="no_reference",
        drift_share=0.0,
        drifted_columns=0,
        columns=(),
        threshold=drift_lib.dataset_threshold(config.drift, len(config.contract.features)),
        rows_current=rows_current,
        rows_reference=0,
        current_uri="memory",
        reference_uri=None,
        champion_version=str(champion.version) if champion else None,
        report_uri=None,
        mlflow_run_id=None,
    )


def judge_challenger(config: PipelineConfig, challenger: Any, champion: Champion | None, holdout: pd.DataFrame):
    """``stages.model.evaluate`` in memory: both models on the same out-of-time holdout, then the gate."""
    contract = config.contract
    features, label = holdout[contract.feature_names], contract.label
    champion_predictions = predict(champion.model, features, label) if champion else None
    return decide_promotion(
        targets(label, holdout[label.name]),
        predict(challenger, features, label),
        champion_predictions,
        str(champion.version) if champion else None,
        config.gate,
        label.objective,
    )


def outcome(
    state: Policy,
    end: datetime,
    drift: DriftResult,
    checked: bool,
    retrained: bool,
    promoted: bool,
    rows_fitted: int | None,
    reason: str,
) -> Step:
    return Step(
        policy=state.name,
        end=end,
        drift_status=drift.status if checked else None,
        performance_status=drift.performance.status if checked and drift.performance else None,
        alarm=checked and drift.alarm,
        retrained=retrained,
        promoted=promoted,
        champion_version=state.champion.version if state.champion else None,
        rows_fitted=rows_fitted,
        metric=None,
        rows_scored=0,
        reason=reason,
    )


def prequential(config: PipelineConfig, champion: Champion | None, rows: pd.DataFrame) -> dict[str, Any]:
    """The champion's primary metric on rows it has never seen (NaN: no champion, or undefined there)."""
    if champion is None or rows.empty:
        return {"metric": None, "rows_scored": len(rows)}
    contract = config.contract
    y = targets(contract.label, rows[contract.label.name])
    predictions = predict(champion.model, rows[contract.feature_names], contract.label)
    value = metric_value(config.gate.primary_metric, y, predictions)
    return {"metric": value if np.isfinite(value) else None, "rows_scored": len(rows)}


def better(metric: str) -> Callable[[float, float], float]:
    """``a`` minus ``b`` in the metric's good direction: positive when ``a`` is better."""
    return (lambda a, b: b - a) if lower_is_better(metric) else (lambda a, b: a - b)
