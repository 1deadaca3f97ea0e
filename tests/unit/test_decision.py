"""The branch after drift detection: retrain, or skip with a reason."""

from __future__ import annotations

from dataclasses import replace

import pytest

from include.retraining.core.decision import MONITOR_REASON, decide_retrain
from include.retraining.core.records import RunInfo, Slice, WindowPlan
from tests.builders import drift_result

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


def untrainable(problem: str) -> dict:
    """A window plan whose window cannot train and judge a challenger (``core/windows.py`` words why)."""
    empty = Slice(start=None, end=None, rows=0, ids_hash="0" * 64)
    return WindowPlan(empty, empty, empty, rows_unlabeled=0, champion_training_end=None, problem=problem).to_dict()


TOO_FEW = "only 240 labeled rows older than the holdout to train on, fewer than contract.min_rows (300)"


def test_drift_on_a_window_that_cannot_judge_a_challenger_skips_training_with_the_reason():
    drift = drift_result(status="drift", drift_share=0.5, drifted_columns=5, columns=[], windows=untrainable(TOO_FEW))

    decision = decide_retrain(SCHEDULED, drift)

    assert not decision.retrain
    assert decision.reason.startswith("data drift: 5 of 0 columns drifted")
    assert f", but no challenger can be judged: {TOO_FEW}" in decision.reason


def test_a_forced_retrain_is_refused_the_same_way():
    forced = replace(SCHEDULED, force_retrain=True)

    decision = decide_retrain(forced, drift_result(windows=untrainable(TOO_FEW)))

    assert not decision.retrain
    assert decision.reason.startswith("forced by the force_retrain Param, but no challenger can be judged")


def test_too_few_new_rows_are_no_drift_check_and_no_retrain():
    decision = decide_retrain(SCHEDULED, drift_result(status="no_new_data", rows_current=40, champion_version="2"))

    assert not decision.retrain
    assert decision.reason == (
        "only 40 rows are newer than champion v2's training data: too few to check for drift (contract.min_rows)"
    )


@pytest.mark.parametrize("held", [True, False])
def test_data_drift_on_labels_the_champion_still_scores_well_retrains_only_under_any_drift(held):
    """``drift.retrain_on: performance_when_labeled``: inputs that moved in a way the champion handles (its
    score on the new labels held) raise the alert, not a retrain; without a verdict on labels they retrain."""
    performance = PERFORMANCE_DROP | {"status": "no_drift" if held else "undetermined"}
    drift = drift_result(status="drift", drift_share=0.6, performance=performance)

    under_any = decide_retrain(SCHEDULED, drift)
    under_labels = decide_retrain(SCHEDULED, drift, "performance_when_labeled")

    assert under_any.retrain
    assert under_labels.retrain is not held
    if held:
        assert "but the champion's score on the new labels held" in under_labels.reason
        assert under_labels.reason.startswith("data drift: ")


def test_a_monitor_trigger_for_data_drift_alone_does_not_retrain_when_the_labels_held():
    data_only = replace(
        FROM_MONITOR, trigger=FROM_MONITOR.trigger | {"drift_status": "drift", "performance_status": "no_drift"}
    )
    both = replace(data_only, trigger=data_only.trigger | {"performance_status": "drift"})

    assert decide_retrain(data_only, drift_result()).retrain
    assert not decide_retrain(data_only, drift_result(), "performance_when_labeled").retrain
    assert decide_retrain(both, drift_result(), "performance_when_labeled").retrain
