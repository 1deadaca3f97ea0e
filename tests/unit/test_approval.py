"""Approval before promotion: who is asked, what they read, what an answer means, and what promote may do
with it (core.approval; the Airflow side is tests/e2e/test_approval_e2e.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from include.retraining.core.approval import (
    APPROVE,
    REJECT,
    approval_answer,
    approval_body,
    approval_refusal,
    not_asked,
    unasked_reason,
)
from include.retraining.core.config import GateConfig
from include.retraining.core.records import ColumnDrift, Evaluation
from tests.builders import drift_result

REQUIRED = GateConfig(primary_metric="roc_auc", approval="required", approval_timeout_hours=12)
PASSED = Evaluation(
    primary_metric="roc_auc",
    challenger={"roc_auc": 0.8612, "f1": 0.4101},
    champion={"roc_auc": 0.8401, "f1": 0.3987},
    champion_version="3",
    improvement=0.0211,
    confidence=0.987,
    passed=True,
    reason="roc_auc 0.8612 vs v3 0.8401: improvement +0.0211 (needs >= 0.0050), wins 98.7% of the bootstrap "
    "resamples (needs >= 95.0%)",
)
REFUSED = replace(PASSED, passed=False, reason="improvement +0.0011 (needs >= 0.0050)")
DRIFT = drift_result(
    status="drift",
    columns=[
        ColumnDrift("Age", "K-S p_value", 1e-9, 0.0033, True, "mean 38.9 -> 64.2, sd 15.1 -> 15.0").to_dict(),
        ColumnDrift("Vintage", "K-S p_value", 0.41, 0.0033, False, "mean 154 -> 155, sd 83 -> 84").to_dict(),
        ColumnDrift("Vehicle_Damage", "chi2", 1e-6, 0.0033, True, 'share of "Yes" 0.50 -> 0.92').to_dict(),
    ],
)
LINKS = {
    "Model version in MLflow": "http://mlflow:5000/#/models/vi/versions/4",
    "Drift report": "http://mlflow:5000/#/experiments/1/runs/abc/artifactPath/drift/report.html",
}
AT = datetime(2026, 12, 7, 3, 40, 12, 345678, tzinfo=UTC)


def test_a_person_is_asked_only_for_a_challenger_the_gate_passed_when_the_config_requires_it():
    assert unasked_reason(REQUIRED, PASSED) is None
    assert unasked_reason(REQUIRED, REFUSED).startswith("the gate refused the challenger")
    assert unasked_reason(replace(REQUIRED, approval="automatic"), PASSED) == "gate.approval is automatic"


def test_the_body_shows_both_models_metrics_the_margin_the_confidence_the_drifted_columns_and_the_links():
    body = approval_body("vi", "4", PASSED, DRIFT, REQUIRED, LINKS)

    assert "**vi version 4** passed the promotion gate against the champion (v3)" in body
    assert "| **roc_auc** (primary) | 0.8612 | 0.8401 |" in body
    assert "| f1 | 0.4101 | 0.3987 |" in body
    assert "Improvement on roc_auc: +0.0211 (margin: 0.005)" in body
    assert "wins 98.7% of the paired bootstrap resamples (needs 95.0%)" in body
    assert "2 of 3 columns drifted" in body
    assert "| Age | K-S p_value | 1e-09 / 0.0033 | mean 38.9 -> 64.2, sd 15.1 -> 15.0 |" in body
    assert '| Vehicle_Damage | chi2 | 1e-06 / 0.0033 | share of "Yes" 0.50 -> 0.92 |' in body
    assert "Vintage" not in body  # not drifted
    assert f"[Model version in MLflow]({LINKS['Model version in MLflow']})" in body
    assert f"[Drift report]({LINKS['Drift report']})" in body
    assert "No answer within 12 h counts as Reject." in body


def test_without_a_champion_the_body_says_the_challenger_was_judged_against_the_floor():
    first = replace(PASSED, champion=None, champion_version=None, improvement=None, confidence=None)

    body = approval_body("vi", "1", first, drift_result(), REQUIRED, {})

    assert "against the champion (none)" in body
    assert "| **roc_auc** (primary) | 0.8612 | - |" in body
    assert "No champion to compare with" in body
    assert "Drift: no_drift, 1 of 3 columns drifted:" in body
    assert "| Vintage | Wasserstein distance (normed) | 0.2 / 0.1 | - |" in body  # no shift measured


@pytest.mark.parametrize(
    ("chosen", "by", "timed_out", "outcome", "reason"),
    [
        ([APPROVE], "admin", False, "approved", "approved by admin at 2026-12-07 03:40:12 UTC"),
        ([REJECT], "admin", False, "rejected", "rejected by admin at 2026-12-07 03:40:12 UTC"),
        ([REJECT], None, True, "timed_out", "no answer within 0.01 h"),
    ],
    ids=["approve", "reject", "timeout"],
)
def test_an_answer_becomes_an_approval_with_its_reason(chosen, by, timed_out, outcome, reason):
    approval = approval_answer(chosen, by, AT, timed_out, 0.01)

    assert (approval.outcome, approval.reason, approval.by) == (outcome, reason, by)
    assert approval.at == "2026-12-07T03:40:12+00:00"
    assert approval.asked


def test_the_answers_time_is_shown_in_utc_whatever_zone_it_came_in():
    local = AT.astimezone(timezone(timedelta(hours=2)))

    assert approval_answer([APPROVE], "ana", local, False, 12).reason == "approved by ana at 2026-12-07 03:40:12 UTC"


@pytest.mark.parametrize(
    ("gate", "evaluation", "approval", "refusal"),
    [
        (REQUIRED, PASSED, approval_answer([APPROVE], "admin", AT, False, 12), None),
        (REQUIRED, PASSED, approval_answer([REJECT], "admin", AT, False, 12), "not approved: rejected by admin at"),
        (REQUIRED, PASSED, approval_answer([REJECT], None, AT, True, 12), "not approved: no answer within 12 h"),
        (REQUIRED, REFUSED, not_asked("the gate refused the challenger"), None),  # the gate's refusal stands
        (REQUIRED, PASSED, None, "not approved: gate.approval is required by this run's config, but this DAG"),
        (GateConfig(), PASSED, None, None),  # automatic: the DAG has no approval step
        (GateConfig(), PASSED, not_asked("gate.approval is automatic"), None),  # a run's override turned it off
    ],
    ids=["approved", "rejected", "timed-out", "gate-refused", "required-without-step", "automatic", "overridden"],
)
def test_promote_may_act_only_on_an_approval_the_config_requires(gate, evaluation, approval, refusal):
    found = approval_refusal(gate, evaluation, approval)

    assert (found or "")[: len(refusal or "")] == (refusal or ""), found
    assert (found is None) == (refusal is None), found
