"""Retrain or not: the decision the retrain DAG branches on, from the drift verdict and who asked."""

from __future__ import annotations

from include.retraining.core.records import Decision, DriftResult, RunInfo

MONITOR_REASON = "drift_monitor"  # the conf reason drift_monitor sets when it triggers a retrain


def decide_retrain(run: RunInfo, drift: DriftResult, retrain_on: str = "any_drift") -> Decision:
    """Retrain when asked or when the data moved (``drift.retrain_on``), and only when the window can train
    and fairly judge a challenger (enough labeled rows, an out-of-time holdout with every class it needs)."""
    wanted = wanted_retrain(run, drift, retrain_on)
    plan = drift.windows
    if wanted.retrain and plan and not plan.trainable:
        return Decision(retrain=False, reason=f"{wanted.reason}, but no challenger can be judged: {plan.problem}")
    return wanted


def labels_held(retrain_on: str, performance_status: str | None) -> bool:
    """Under ``performance_when_labeled``: the champion's score on the new labels held, so data drift alone
    does not retrain."""
    return retrain_on == "performance_when_labeled" and performance_status == "no_drift"


def wanted_retrain(run: RunInfo, drift: DriftResult, retrain_on: str = "any_drift") -> Decision:
    if run.force_retrain:
        return Decision(retrain=True, reason="forced by the force_retrain Param")
    if run.reason == MONITOR_REASON:
        window = f"{run.trigger.get('window_start')} .. {run.trigger.get('window_end')}"
        monitor = f"drift_monitor run {run.trigger.get('monitor_run_id')}"
        if run.trigger.get("drift_status") == "no_reference":
            return Decision(retrain=True, reason=f"{monitor} found no champion to compare window {window} with")
        given = run.trigger.get("drift_share")
        share = f" (share {given:.2f})" if isinstance(given, int | float) else ""
        found = [
            kind
            for kind, status in (("data drift", "drift_status"), ("performance drift", "performance_status"))
            if run.trigger.get(status) == "drift"
        ]
        what = " and ".join(found) or "drift"
        if found == ["data drift"] and labels_held(retrain_on, run.trigger.get("performance_status")):
            return Decision(
                retrain=False,
                reason=f"data drift detected by {monitor} on window {window}{share}, but the champion's score on "
                "the new labels held: not retraining (drift.retrain_on is performance_when_labeled)",
            )
        return Decision(retrain=True, reason=f"{what} detected by {monitor} on window {window}{share}")
    if drift.champion_version is None:
        return Decision(retrain=True, reason="no champion yet: training the first model")
    if drift.status == "no_reference":
        return Decision(retrain=True, reason=f"champion v{drift.champion_version} has no recorded training snapshot")
    if drift.status == "no_new_data":
        return Decision(
            retrain=False,
            reason=f"only {drift.rows_current} rows are newer than champion v{drift.champion_version}'s training "
            "data: too few to check for drift (contract.min_rows)",
        )
    reasons = []
    if drift.drifted:
        columns = ", ".join(drift.drifted_column_names)
        reasons.append(
            f"data drift: {drift.drifted_columns} of {len(drift.columns)} columns drifted "
            f"(share {drift.drift_share:.2f} >= {drift.threshold}): {columns}"
        )
    if drift.performance_drifted:
        reasons.append(f"performance drift: {drift.performance.reason}")
    performance_status = drift.performance.status if drift.performance else None
    if reasons and not drift.performance_drifted and labels_held(retrain_on, performance_status):
        return Decision(
            retrain=False,
            reason=f"{reasons[0]}, but the champion's score on the new labels held ({drift.performance.reason}): "
            "not retraining (drift.retrain_on is performance_when_labeled)",
        )
    if reasons:
        return Decision(retrain=True, reason="; ".join(reasons))
    performance = f"; performance {drift.performance.status}" if drift.performance else ""
    return Decision(
        retrain=False,
        reason=f"no data drift (share {drift.drift_share:.2f} < {drift.threshold}){performance} and champion "
        f"v{drift.champion_version} is in place",
    )
