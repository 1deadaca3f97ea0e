"""notify.send through the SMTP provider to the stack's aiosmtpd sink, read back from its Maildir."""

from __future__ import annotations

import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from include.retraining.adapters import airflow_api, registry
from include.retraining.adapters import mail as notify
from include.retraining.core.records import ColumnDrift, Decision, DriftResult, RunInfo, Snapshot, ValidationReport
from include.retraining.stages.outcome import mail_drift_alert
from include.retraining.stages.outcome import notify as send_summary
from scripts.local_stack import smtp as mail_sink

pytestmark = pytest.mark.integration


def delivered_to(stack_env, recipient: str, timeout: float = 15.0) -> EmailMessage:
    """The one message in the sink addressed to ``recipient`` (each test uses a unique address)."""
    sink = stack_env["MAIL_SINK_DIR"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := mail_sink.delivered_to(recipient, sink):
            assert len(found) == 1, f"{len(found)} messages to {recipient}"
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no message to {recipient} in {sink} after {timeout} s")


def html_of(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("html",)).get_content()


def test_send_delivers_subject_recipients_and_html(stack_env, pipeline_config):
    [recipient] = pipeline_config.notify.recipients
    copy = f"copy-{recipient}"
    message = notify.Message(subject=f"[retrain] test {recipient}", html="<h2>champion: v7 ✓</h2>")

    notify.send(pipeline_config.notify.conn_id, [recipient, copy], message)

    received = delivered_to(stack_env, recipient)
    assert received["Subject"] == f"[retrain] test {recipient}"
    assert recipient in received["To"]
    assert copy in received["To"]
    assert received["From"] == "retrain-bot@example.com"  # from the smtp_default connection's extras
    assert "<h2>champion: v7 ✓</h2>" in html_of(received)


def test_send_attaches_bytes(stack_env, pipeline_config):
    [recipient] = pipeline_config.notify.recipients
    chart = ("drift-history.png", b"\x89PNG\r\n\x1a\n chart", "image/png")

    notify.send(
        pipeline_config.notify.conn_id, (recipient,), notify.Message("drift", "<p>see chart</p>", None, (chart,))
    )

    received = delivered_to(stack_env, recipient)
    [attachment] = list(received.iter_attachments())
    assert attachment.get_filename() == "drift-history.png"
    assert attachment.get_content_type() == "image/png"
    assert attachment.get_payload(decode=True) == chart[1]


def test_send_summary_mails_the_run_and_closes_its_mlflow_run(stack_env, pipeline_config):
    run = RunInfo(dag_id="test", run_id=f"summary-{pipeline_config.model_name}", run_end=datetime.now(UTC).isoformat())
    mlflow_run_id = registry.pipeline_run(pipeline_config, run)
    snapshot = Snapshot(
        uri="s3://bucket/validated.parquet",
        rows=2_000,
        content_hash="ab" * 32,
        window_start=None,
        window_end=run.run_end,
        columns=("_id",),
    )
    drift = DriftResult(
        status="no_drift",
        drift_share=0.0,
        drifted_columns=0,
        columns=(),
        threshold=0.3,
        rows_current=2_000,
        rows_reference=2_000,
        current_uri=snapshot.uri,
        reference_uri="s3://bucket/reference.parquet",
        champion_version="4",
        report_uri=None,
        mlflow_run_id=mlflow_run_id,
    )
    validation = ValidationReport(snapshot, 2_000, 0, None, ())
    decision = Decision(retrain=False, reason="no data drift and champion v4 is in place")

    sent = send_summary(pipeline_config, run, validation, drift, decision, None, None, None)

    [recipient] = pipeline_config.notify.recipients
    assert sent == {
        "subject": f"[retrain] {pipeline_config.model_name}: no retrain needed",
        "recipients": [recipient],
        "sent": True,
    }
    received = delivered_to(stack_env, recipient)
    assert received["Subject"] == sent["subject"]
    body = html_of(received)
    assert "no data drift and champion v4 is in place" in body
    assert f"This run registered no version of {pipeline_config.model_name}" in body  # read from the registry
    assert registry.run_url(pipeline_config.mlflow, mlflow_run_id) in body
    assert f'<a href="{airflow_api.run_url(run.dag_id, run.run_id)}">' in body
    assert registry.client(pipeline_config.mlflow).get_run(mlflow_run_id).info.status == "FINISHED"

    cleared = send_summary(pipeline_config, run, validation, drift, decision, None, None, None)  # notify cleared

    assert cleared["sent"] is False
    assert cleared["reason"].startswith("summary already sent at ")
    delivered_to(stack_env, recipient)  # still exactly one message


def logged_alert(pipeline_config, run_id: str, report_html: bytes) -> tuple[RunInfo, DriftResult]:
    """A drift check of one drifted column whose report is ``report_html``, logged to MLflow."""
    run = RunInfo(dag_id="drift_monitor_vehicle_insurance", run_id=run_id, run_end="2024-06-01T12:00:00+00:00")
    mlflow_run_id = registry.pipeline_run(pipeline_config, run)
    report_uri = registry.log_drift_report(pipeline_config.mlflow, mlflow_run_id, report_html.decode())
    drift = DriftResult(
        status="drift",
        drift_share=0.5,
        drifted_columns=1,
        columns=(
            ColumnDrift("Age", "Wasserstein distance (normed)", 0.8123, 0.1, True, "mean 39 -> 64, sd 15 -> 15"),
            ColumnDrift("Gender", "Jensen-Shannon distance", 0.01, 0.1, False),
        ),
        threshold=0.3,
        rows_current=1_000,
        rows_reference=2_000,
        current_uri="s3://bucket/current.parquet",
        reference_uri="s3://bucket/reference.parquet",
        champion_version="2",
        report_uri=report_uri,
        mlflow_run_id=mlflow_run_id,
    )
    return run, drift


def test_drift_alert_arrives_as_text_and_html_linking_the_report(stack_env, pipeline_config):
    """Evidently's report embeds its scripts (about 4 MB): it is linked by an http URL the MLflow server
    answers, not attached."""
    report_html = b"<html><body>Evidently says Age drifted</body></html>" + b"<!-- scripts -->" * 70_000
    run, drift = logged_alert(pipeline_config, f"alert-{pipeline_config.model_name}", report_html)

    sent = mail_drift_alert(pipeline_config, run, drift, "2024-06-01T10:00:00+00:00")

    [recipient] = pipeline_config.notify.recipients
    assert sent == {
        "sent": True,
        "subject": f"[drift] {pipeline_config.model_name}: 50% of columns drifted (1 of 2)",
        "recipients": [recipient],
    }
    received = delivered_to(stack_env, recipient)
    assert received["Subject"] == sent["subject"]
    assert received["From"] == "retrain-bot@example.com"
    assert "drift-report.html" not in [a.get_filename() for a in received.iter_attachments()]
    page = " ".join(html_of(received).split())
    assert "<td>Age</td><td>Wasserstein distance (normed)</td><td>0.8123</td>" in page
    assert "2024-06-01T10:00:00+00:00 &rarr; 2024-06-01T12:00:00+00:00" in page
    assert registry.run_url(pipeline_config.mlflow, drift.mlflow_run_id) in page
    text = received.get_body(preferencelist=("plain",)).get_content()
    assert "- Age: Wasserstein distance (normed) 0.8123 / 0.1; mean 39 -> 64, sd 15 -> 15" in text
    report_url = registry.artifact_url(pipeline_config.mlflow, drift.report_uri)
    assert f"Report:     {report_url}" in text
    assert report_url.startswith("http")
    assert fetched(report_url, drift) == report_html
    assert f"Airflow run: {airflow_api.run_url(run.dag_id, run.run_id)}" in text


def fetched(report_url: str, drift: DriftResult) -> bytes:
    """The report's bytes as the MLflow server sends them to the page ``report_url`` opens (the UI's
    artifact view loads them from the server's ``get-artifact`` endpoint)."""
    base, _, fragment = report_url.partition("/#/")
    assert fragment.endswith(f"runs/{drift.mlflow_run_id}/artifactPath/{registry.DRIFT_REPORT}"), fragment
    query = urllib.parse.urlencode({"path": registry.DRIFT_REPORT, "run_uuid": drift.mlflow_run_id})
    with urllib.request.urlopen(f"{base}/get-artifact?{query}", timeout=30) as response:
        assert response.status == 200
        return response.read()


def test_a_small_report_is_attached_as_well(stack_env, pipeline_config):
    report_html = b"<html><body>Evidently says Age drifted</body></html>"
    run, drift = logged_alert(pipeline_config, f"small-alert-{pipeline_config.model_name}", report_html)

    mail_drift_alert(pipeline_config, run, drift, None)

    [recipient] = pipeline_config.notify.recipients
    received = delivered_to(stack_env, recipient)
    [attachment] = [a for a in received.iter_attachments() if a.get_filename() == "drift-report.html"]
    assert attachment.get_payload(decode=True) == report_html
    assert "Attached: drift-report.html" in received.get_body(preferencelist=("plain",)).get_content()
