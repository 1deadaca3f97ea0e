"""The branch after drift detection: retrain, or skip with a reason."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from include.retraining.core.decision import MONITOR_REASON, decide_retrain
from include.retraining.core.records import ColumnDrift, DriftResult, RunInfo

SCHEDULED = RunInfo(dag_id="retrain_vehicle_insurance", run_id="scheduled__1", run_end="2024-05-01T02:00:00+00:00")
FROM_MONITOR = RunInfo(
    dag_id="retrain_vehicle_insurance",
    run_id="manual__2",
    run_end="2024-05-01T10:00:00+00:00",
    reason=MONITOR_REASON,
    trigger={
        "reason": MONITOR_REASON,
        "monitor_run_id": "drift_monitor__7",
        "window_start": "2024-05-01T08:00:00+00:00",
        "window_end": "2024-05-01T10:00:00+00:00",
    },
)


def drift_result(**changes: Any) -> DriftResult:
    base = DriftResult(
        status="no_drift",
        drift_share=0.1,
        drifted_columns=1,
        columns=(
            ColumnDrift("Age", "Wasserstein distance (normed)", 0.02, 0.1, False),
            ColumnDrift("Vintage", "Wasserstein distance (normed)", 0.2, 0.1, True),
            ColumnDrift("Annual_Premium", "Wasserstein distance (normed)", 0.05, 0.1, False),
        ),
        threshold=0.3,
        rows_current=1_000,
        rows_reference=1_000,
        current_uri="s3://b/current.parquet",
        reference_uri="s3://b/reference.parquet",
        champion_version="3",
        report_uri="s3://b/report.html",
        mlflow_run_id="run",
    )
    return DriftResult.from_dict(base.to_dict() | changes)


def test_no_drift_and_a_champion_skips():
    decision = decide_retrain(SCHEDULED, drift_result())

    assert decision.retrain is False
    assert decision.reason == "no data drift (share 0.10 < 0.3) and champion v3 is in place"


def test_force_retrain_wins_over_no_drift():
    decision = decide_retrain(replace(SCHEDULED, force_retrain=True), drift_result())

    assert decision.retrain is True
    assert decision.reason == "forced by the force_retrain Param"


def test_no_champion_trains_the_first_model():
    result = drift_result(status="no_reference", champion_version=None, reference_uri=None, columns=[], drift_share=0.0)

    decision = decide_retrain(SCHEDULED, result)

    assert decision.retrain is True
    assert decision.reason == "no champion yet: training the first model"


def test_champion_without_reference_snapshot_retrains():
    result = drift_result(status="no_reference", reference_uri=None, columns=[], drift_share=0.0, drifted_columns=0)

    decision = decide_retrain(SCHEDULED, result)

    assert decision.retrain is True
    assert decision.reason == "champion v3 has no recorded training snapshot"


def test_drift_retrains_and_names_the_columns():
    columns = [
        {"column": "Age", "method": "Wasserstein distance (normed)", "score": 1.1, "threshold": 0.1, "drifted": True},
        {"column": "Gender", "method": "Jensen-Shannon distance", "score": 0.01, "threshold": 0.1, "drifted": False},
        {"column": "Annual_Premium", "method": "K-S p_value", "score": 0.001, "threshold": 0.05, "drifted": True},
    ]
    result = drift_result(status="drift", drift_share=2 / 3, drifted_columns=2, columns=columns)

    decision = decide_retrain(SCHEDULED, result)

    assert decision.retrain is True
    assert decision.reason == "data drift: 2 of 3 columns drifted (share 0.67 >= 0.3): Age, Annual_Premium"


def test_a_run_triggered_by_the_drift_monitor_retrains_even_if_this_check_sees_no_drift():
    decision = decide_retrain(FROM_MONITOR, drift_result())

    assert decision.retrain is True
    assert decision.reason == (
        "drift detected by drift_monitor run drift_monitor__7 on window "
        "2024-05-01T08:00:00+00:00 .. 2024-05-01T10:00:00+00:00"
    )


def test_a_monitor_run_says_whether_it_saw_drift_or_had_no_champion_to_compare_with():
    drifted = replace(FROM_MONITOR, trigger=FROM_MONITOR.trigger | {"drift_status": "drift", "drift_share": 0.5})
    first = replace(FROM_MONITOR, trigger=FROM_MONITOR.trigger | {"drift_status": "no_reference", "drift_share": 0})

    assert decide_retrain(drifted, drift_result()).reason.endswith("10:00:00+00:00 (share 0.50)")
    assert decide_retrain(first, drift_result()).reason == (
        "drift_monitor run drift_monitor__7 found no champion to compare window "
        "2024-05-01T08:00:00+00:00 .. 2024-05-01T10:00:00+00:00 with"
    )


@pytest.mark.parametrize("reason", ["manual", "backfill"])
def test_another_trigger_is_not_mistaken_for_the_monitor(reason):
    conf = {"reason": reason} if reason != "manual" else {}
    run = RunInfo(
        dag_id="retrain_vehicle_insurance", run_id="manual__3", run_end=SCHEDULED.run_end, reason=reason, trigger=conf
    )

    assert decide_retrain(run, drift_result()).retrain is False


@pytest.mark.parametrize("status", ["drift", "no_drift", "no_reference"])
@pytest.mark.parametrize("run", [SCHEDULED, FROM_MONITOR], ids=["scheduled", "monitor"])
def test_force_retrain_always_retrains(run, status):
    decision = decide_retrain(replace(run, force_retrain=True), drift_result(status=status))
    assert decision == decision.__class__(retrain=True, reason="forced by the force_retrain Param")


PERFORMANCE_DROP = {
    "status": "drift",
    "metric": "roc_auc",
    "reference_value": 0.86,
    "current_value": 0.61,
    "lower": 0.58,
    "upper": 0.64,
    "labeled_rows": 900,
    "reason": "champion roc_auc 0.6100 on 900 labeled rows (upper bound 0.6400 at 95%) vs 0.8600 at registration",
}


def test_performance_drift_alone_retrains_and_says_so():
    drift = drift_result(drifted_columns=0, columns=[], performance=PERFORMANCE_DROP)

    decision = decide_retrain(SCHEDULED, drift)

    assert decision.retrain
    assert decision.reason == f"performance drift: {PERFORMANCE_DROP['reason']}"


def test_data_and_performance_drift_are_both_named():
    drift = drift_result(status="drift", drift_share=0.4, performance=PERFORMANCE_DROP)

    decision = decide_retrain(SCHEDULED, drift)

    assert decision.reason.startswith("data drift: 1 of 3 columns drifted")
    assert decision.reason.endswith(f"; performance drift: {PERFORMANCE_DROP['reason']}")


def test_a_stable_champion_is_named_in_the_skip_reason():
    drift = drift_result(performance=PERFORMANCE_DROP | {"status": "no_drift"})

    decision = decide_retrain(SCHEDULED, drift)

    assert not decision.retrain
    assert "; performance no_drift and champion v3 is in place" in decision.reason


def test_the_monitor_names_the_kind_of_drift_it_saw():
    performance_only = replace(FROM_MONITOR, trigger=FROM_MONITOR.trigger | {"performance_status": "drift"})
    both = replace(
        FROM_MONITOR, trigger=FROM_MONITOR.trigger | {"performance_status": "drift", "drift_status": "drift"}
    )

    assert decide_retrain(performance_only, drift_result()).reason.startswith("performance drift detected by ")
    assert decide_retrain(both, drift_result()).reason.startswith("data drift and performance drift detected by ")
