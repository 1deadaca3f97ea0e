"""The run summary email, rendered without a server."""

from __future__ import annotations

import html
from typing import Any

import jinja2
import pytest

from include.retraining.adapters.airflow_api import run_url
from include.retraining.adapters.mail import headline, render_drift_alert, render_failure, render_summary
from include.retraining.core.records import (
    ColumnDrift,
    Decision,
    DriftResult,
    Evaluation,
    Promotion,
    Registration,
    RunInfo,
    Snapshot,
    ValidationReport,
)

MODEL = "vehicle_insurance_cross_sell"
RUN = RunInfo(
    dag_id="retrain_vehicle_insurance",
    run_id="scheduled__2024-02-01T02:00:00+00:00",
    run_end="2024-02-01T02:00:00+00:00",
    reason="drift_monitor",
)
VALIDATION = ValidationReport(
    snapshot=Snapshot(
        uri="s3://mlops-artifacts/retraining/vehicle_insurance/runs/r/validated/0f1e2d3c.parquet",
        rows=2_910,
        content_hash="0f1e2d3c" * 8,
        window_start=None,
        window_end=RUN.run_end,
        columns=("_id", "Age"),
    ),
    rows_in=3_000,
    rows_quarantined=90,
    quarantine_uri="s3://mlops-artifacts/retraining/vehicle_insurance/runs/r/quarantine/rows.parquet",
    problems=("Age: 90 of 3,000 rows (3.0%) missing or not a number, e.g. _id a",),
)
DRIFTED = DriftResult(
    status="drift",
    drift_share=0.6,
    drifted_columns=2,
    columns=(
        ColumnDrift("Age", "Wasserstein distance (normed)", 1.1, 0.1, True, "mean 39 -> 64, sd 12 -> 12"),
        ColumnDrift("Annual_Premium", "Wasserstein distance (normed)", 0.7, 0.1, True),
        ColumnDrift("Gender", "Jensen-Shannon distance", 0.01, 0.1, False),
    ),
    threshold=0.3,
    rows_current=2_910,
    rows_reference=2_800,
    current_uri=VALIDATION.snapshot.uri,
    reference_uri="s3://mlops-artifacts/reference.parquet",
    champion_version="3",
    report_uri="s3://mlops-artifacts/retraining/vehicle_insurance/runs/r/drift/report.html",
    mlflow_run_id="abc123",
)
EVALUATION = Evaluation(
    primary_metric="roc_auc",
    challenger={"accuracy": 0.81, "precision": 0.4, "recall": 0.7, "f1": 0.51, "roc_auc": 0.8612},
    champion={"accuracy": 0.7, "precision": 0.3, "recall": 0.5, "f1": 0.37, "roc_auc": 0.6134},
    champion_version="3",
    improvement=0.2478,
    confidence=1.0,
    passed=True,
    reason="challenger roc_auc 0.8612 beats champion v3 0.6134",
)
REGISTRATION = Registration(model_name=MODEL, version="4", model_uri="models:/m-1", tags={})
URL = "http://mlflow.example/#/experiments/1/runs/abc123"
REPORT_URL = f"{URL}/artifactPath/drift/report.html"
AIRFLOW_URL = "http://airflow.example/dags/retrain_vehicle_insurance/runs/scheduled__2024-02-01T02%3A00%3A00%2B00%3A00"


def summary(**records: Any) -> dict[str, Any]:
    """What ``pipeline.send_summary`` hands to ``render_summary``."""
    return {"model_name": MODEL, "run": RUN.to_dict(), "validation": VALIDATION.to_dict()} | records


def retrain_summary(decision: str, evaluation: Evaluation, promotion: Promotion, **records: Any) -> dict[str, Any]:
    """The summary of a run that retrained on the drifted window and registered version 4."""
    return summary(
        drift=DRIFTED.to_dict(),
        decision=Decision(retrain=True, reason=decision).to_dict(),
        evaluation=evaluation.to_dict(),
        registration=REGISTRATION.to_dict(),
        promotion=promotion.to_dict(),
        **records,
    )


def test_retrain_with_promotion():
    promotion = Promotion(promoted=True, champion_version="4", previous_champion="3", reason="version 4 promoted")
    message = render_summary(
        retrain_summary(
            "data drift: 2 of 3 columns drifted",
            EVALUATION,
            promotion,
            mlflow_run_url=URL,
            airflow_run_url=AIRFLOW_URL,
            drift_report_url=REPORT_URL,
        )
    )

    assert message.subject == f"[retrain] {MODEL}: version 4 is the new champion"
    text = " ".join(html.unescape(message.html).split())
    for fact in (
        f"{MODEL}: version 4 is the new champion",
        "retrain_vehicle_insurance / scheduled__2024-02-01T02:00:00+00:00",
        "(drift_monitor)",
        ">3000<",
        "90",
        VALIDATION.quarantine_uri,
        VALIDATION.snapshot.uri,
        "drift: 2 of 3",
        "share 0.60, threshold 0.3",
        f'Drift report</th><td><a href="{REPORT_URL}">',
        f'Airflow run</th><td><a href="{AIRFLOW_URL}">',
        "data drift: 2 of 3 columns drifted",
        EVALUATION.reason,
        "version 4 (alias challenger)",
        "version 4 promoted",
        f'<a href="{URL}">',
        "<td>roc_auc</td><td>0.8612</td>",
        "<td>0.6134</td>",
    ):
        assert fact in text, fact


def test_gate_failed():
    evaluation = Evaluation(
        primary_metric="roc_auc",
        challenger={"roc_auc": 0.70},
        champion={"roc_auc": 0.71},
        champion_version="3",
        improvement=-0.01,
        confidence=0.2,
        passed=False,
        reason="challenger roc_auc 0.7000 does not beat champion v3 0.7100",
    )
    promotion = Promotion(promoted=False, champion_version="3", previous_champion="3", reason="champion v3 unchanged")
    message = render_summary(retrain_summary("forced by the force_retrain Param", evaluation, promotion))

    assert message.subject == f"[retrain] {MODEL}: challenger registered, champion unchanged"
    assert "does not beat champion v3 0.7100" in message.html
    assert "champion v3 unchanged" in message.html
    assert "forced by the force_retrain Param" in message.html
    assert "MLflow run" not in message.html  # no url given
    assert "Airflow run</th>" not in message.html


def test_skip():
    no_drift = DriftResult.from_dict(
        {**DRIFTED.to_dict(), "status": "no_drift", "drift_share": 0.0, "drifted_columns": 0, "report_uri": None}
    )
    message = render_summary(
        summary(
            drift=no_drift.to_dict(),
            decision=Decision(retrain=False, reason="no data drift (share 0.00 < 0.3)").to_dict(),
            evaluation=None,
            registration=None,
            promotion=None,
        )
    )

    assert message.subject == f"[retrain] {MODEL}: no retrain needed"
    assert "no_drift: 0 of 3" in message.html
    assert "no data drift (share 0.00 &lt; 0.3)" in message.html
    for absent in ("Gate", "Registered", "Holdout metrics", "Drift report"):
        assert absent not in message.html


def test_skip_without_stage_records_at_all():
    """The skip path may leave out evaluation/registration/promotion entirely."""
    message = render_summary(
        summary(drift=DRIFTED.to_dict(), decision=Decision(retrain=False, reason="healthy").to_dict())
    )
    assert message.subject.endswith("no retrain needed")


def test_values_are_html_escaped():
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    message = render_summary(
        summary(
            drift=DRIFTED.to_dict(),
            decision=Decision(retrain=False, reason=evil).to_dict(),
            run=RunInfo(dag_id="d", run_id="<b>run</b>", run_end="now").to_dict(),
        )
    )

    assert "<script>" not in message.html
    assert "<img" not in message.html
    assert "<b>run</b>" not in message.html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in message.html
    assert "&lt;b&gt;run&lt;/b&gt;" in message.html


def test_a_missing_record_is_an_error_not_a_blank():
    with pytest.raises(jinja2.UndefinedError, match="validation"):
        render_summary(
            {
                "model_name": MODEL,
                "run": RUN.to_dict(),
                "drift": DRIFTED.to_dict(),
                "decision": Decision(retrain=False, reason="x").to_dict(),
            }
        )


@pytest.mark.parametrize(
    ("decision", "promotion", "expected"),
    [
        ({"retrain": False}, None, "no retrain needed"),
        ({"retrain": True}, None, "challenger registered, champion unchanged"),
        ({"retrain": True}, {"promoted": False, "champion_version": "2"}, "challenger registered, champion unchanged"),
        ({"retrain": True}, {"promoted": True, "champion_version": "5"}, "version 5 is the new champion"),
    ],
)
def test_headline(decision, promotion, expected):
    assert headline({"decision": decision, "promotion": promotion}) == expected


# --- the drift alert ----------------------------------------------------------------------------------

WINDOW = {
    "start": "2024-01-31T02:00:00+00:00",
    "end": RUN.run_end,
    "dag_id": "drift_monitor_vehicle_insurance",
    "run_id": "m__1",
}
LINKS = {"Report": REPORT_URL, "MLflow run": URL, "Airflow run": AIRFLOW_URL}
CHART = ("drift-history.png", b"\x89PNG...", "image/png")


def test_drift_alert_names_the_drifted_columns_only():
    alert = render_drift_alert(MODEL, DRIFTED.to_dict(), WINDOW, LINKS)

    assert alert.subject == f"[drift] {MODEL}: 60% of columns drifted (2 of 3)"
    page = " ".join(html.unescape(alert.html).split())
    assert "2 of 3 columns drifted" in page
    assert "<td>Age</td><td>Wasserstein distance (normed)</td><td>1.1000</td>" in page
    assert "<td>1.1000</td> <td>0.1</td><td>mean 39 -&gt; 64, sd 12 -&gt; 12</td>" in alert.html.replace("\n", " ")
    assert "<td>Annual_Premium</td>" in page
    assert "<td>Gender</td>" not in page  # not drifted
    assert f"{WINDOW['start']} → {WINDOW['end']}" in page
    assert "champion (v3)" in page
    assert f'<a href="{URL}">' in page
    assert "drift_monitor_vehicle_insurance / m__1" in page
    assert alert.attachments == ()
    assert "Attached" not in page


def test_drift_alert_has_a_plain_text_part_with_the_same_facts():
    alert = render_drift_alert(MODEL, DRIFTED.to_dict(), WINDOW, LINKS)

    assert alert.text is not None
    assert "<" not in alert.text  # no markup, no escaping
    lines = alert.text.splitlines()
    assert lines[0] == f"Data drift on {MODEL}"
    for line in (
        "2 of 3 columns drifted (share 0.60, dataset threshold 0.3).",
        f"Window:     {WINDOW['start']} -> {WINDOW['end']}",
        "Checked by: drift_monitor_vehicle_insurance / m__1",
        f"Report:     {REPORT_URL}",
        f"MLflow run: {URL}",
        f"Airflow run: {AIRFLOW_URL}",
        "- Age: Wasserstein distance (normed) 1.1000 / 0.1; mean 39 -> 64, sd 12 -> 12",
        "- Annual_Premium: Wasserstein distance (normed) 0.7000 / 0.1",  # a check stored before shifts
    ):
        assert line in lines, line
    assert "Gender" not in alert.text


def test_drift_alert_carries_extra_attachments_and_names_them():
    alert = render_drift_alert(MODEL, DRIFTED.to_dict(), WINDOW, LINKS, [CHART])

    assert alert.attachments == (CHART,)
    assert "Attached: drift-history.png" in alert.text
    assert "Attached: drift-history.png." in alert.html


def test_the_mime_message_is_text_and_html_alternatives_then_the_attachments():
    from include.retraining.adapters.mail import mime_message

    alert = render_drift_alert(MODEL, DRIFTED.to_dict(), WINDOW, LINKS, [CHART])
    mime = mime_message(alert, "bot@example.com", ["a@example.com", "b@example.com"])

    assert mime.get_content_type() == "multipart/mixed"
    body, attachment = mime.get_payload()
    assert body.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in body.get_payload()] == ["text/plain", "text/html"]
    assert attachment.get_filename() == "drift-history.png"
    assert attachment.get_content_type() == "image/png"
    assert attachment.get_payload(decode=True) == CHART[1]
    assert mime["To"] == "a@example.com, b@example.com"


def test_drift_alert_from_the_beginning():
    alert = render_drift_alert(MODEL, DRIFTED.to_dict(), WINDOW | {"start": None}, {})
    assert "beginning → " in " ".join(html.unescape(alert.html).split())


def test_drift_alert_html_is_escaped():
    drift = DRIFTED.to_dict()
    drift["columns"][0]["column"] = "<b>Age</b>"

    alert = render_drift_alert(MODEL, drift, WINDOW, {})

    assert "<b>Age</b>" not in alert.html
    assert "&lt;b&gt;Age&lt;/b&gt;" in alert.html


@pytest.mark.parametrize("status", ["no_drift", "no_reference"])
def test_no_alert_without_drift(status, default_config):
    from include.retraining.stages.outcome import mail_drift_alert

    result = DriftResult.from_dict({**DRIFTED.to_dict(), "status": status})

    # returns before touching S3, MLflow or SMTP: nothing here is reachable
    assert mail_drift_alert(default_config, RUN, result, None) == {"sent": False, "reason": f"no drift ({status})"}


def test_regression_metrics_and_a_metric_the_champion_lacks():
    """Metrics of any objective are listed; one undefined for the champion (left out of its record) shows '-'."""
    evaluation = Evaluation(
        primary_metric="rmse",
        challenger={"rmse": 52.25, "mae": 41.5, "r2": 0.41},
        champion={"rmse": 58.0, "mae": 45.0},
        champion_version="3",
        improvement=5.75,
        confidence=0.97,
        passed=True,
        reason="challenger rmse 52.2500 beats champion v3 58.0000 (lower is better)",
    )
    promotion = Promotion(promoted=True, champion_version="4", previous_champion="3", reason="promoted")
    message = render_summary(retrain_summary("forced by the force_retrain Param", evaluation, promotion))

    text = " ".join(html.unescape(message.html).split())
    assert "<td>rmse</td><td>52.2500</td> <td>58.0000</td>" in text
    assert "<td>r2</td><td>0.4100</td> <td>-</td>" in text
    assert "(lower is better)" in text


def test_a_performance_drop_leads_the_alert():
    performance = {
        "status": "drift",
        "metric": "roc_auc",
        "reference_value": 0.86,
        "current_value": 0.6123,
        "lower": 0.58,
        "upper": 0.64,
        "labeled_rows": 900,
        "reason": "champion roc_auc 0.6123 on 900 labeled rows vs 0.8600 at registration",
    }
    drift = DRIFTED.to_dict() | {"status": "no_drift", "performance": performance}

    alert = render_drift_alert(MODEL, drift, WINDOW, LINKS)

    assert alert.subject == f"[drift] {MODEL}: roc_auc fell to 0.6123 on new labels; 60% of columns drifted (2 of 3)"
    page = " ".join(html.unescape(alert.html).split())
    assert page.startswith(f"<h2>Performance drift on {MODEL}</h2>")
    assert "champion roc_auc 0.6123 on 900 labeled rows vs 0.8600 at registration" in page
    assert "data: no_drift; performance: drift" in page


# --- links ----------------------------------------------------------------------------------------------


def test_the_airflow_run_url_is_on_the_configured_base_url_with_the_run_id_quoted(monkeypatch):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.example/")

    assert run_url(RUN.dag_id, RUN.run_id) == AIRFLOW_URL


def test_the_failure_mail_links_the_airflow_run():
    message = render_failure(RUN.dag_id, RUN.run_id, "train", 2, RuntimeError("boom"), "no version", AIRFLOW_URL)

    assert f'The run in Airflow: <a href="{AIRFLOW_URL}">' in message.html
    assert "Airflow" not in render_failure(RUN.dag_id, RUN.run_id, "train", 2, "boom", "no version").html
