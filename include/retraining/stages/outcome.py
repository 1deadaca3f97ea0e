"""The outcome stages: decide, the skip path, and the mails that say what happened (drift alert, summary)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from include.retraining.adapters import airflow_api, mail, mongo, registry
from include.retraining.core import history
from include.retraining.core.config import PipelineConfig
from include.retraining.core.decision import MONITOR_REASON, decide_retrain
from include.retraining.core.reasons import decision_sentence, run_summary
from include.retraining.core.records import (
    Decision,
    DriftResult,
    Evaluation,
    Promotion,
    Registration,
    RunInfo,
    ValidationReport,
)

log = logging.getLogger(__name__)
HISTORY_CHECKS = 90  # the chart's memory bound: the newest checks (three months of nightly ones)
HISTORY_CHART = "history/drift_history.png"  # the chart's artifact path on the run's MLflow run


def run_outcome(config: PipelineConfig, airflow_run_id: str) -> str:
    """What a run did to the registry, read from the registry (not from what its tasks meant to do)."""
    name = config.model_name
    champion = registry.champion(config.mlflow, name)
    champion_label = f"version {champion.version}" if champion else "none"
    mlflow_run_id = registry.find_pipeline_run(config.mlflow, airflow_run_id)
    version = registry.run_version(config.mlflow, name, mlflow_run_id) if mlflow_run_id else None
    if version is None:
        return f"This run registered no version of {name}; the champion ({champion_label}) was not moved by it."
    if champion and champion.version == version:
        return f"This run registered {name} version {version}, and it is the champion now (moved by this run)."
    return (
        f"This run registered {name} version {version} (alias challenger); the champion ({champion_label}) "
        "was not moved by it."
    )


def decide(config: PipelineConfig, run: RunInfo, drift: DriftResult) -> Decision:
    """Retrain or skip; the sentence saying why goes to the log and, until the run ends, to its note."""
    decision = decide_retrain(run, drift, config.drift.retrain_on)
    log.info(decision_sentence(decision))
    airflow_api.set_run_note(run.dag_id, run.run_id, decision_sentence(decision))
    return decision


def skip(config: PipelineConfig, drift: DriftResult, decision: Decision) -> Decision:
    if drift.mlflow_run_id:
        registry.set_run_tag(config.mlflow, drift.mlflow_run_id, "outcome", f"skipped: {decision.reason}")
        log.info("MLflow run of the drift check: %s", registry.run_url(config.mlflow, drift.mlflow_run_id))
    if drift.report_uri:
        log.info("drift report: %s", registry.artifact_url(config.mlflow, drift.report_uri))
    log.info(decision_sentence(decision))
    return decision


def alert_on_drift(config: PipelineConfig, run: RunInfo, validation: ValidationReport, drift: DriftResult) -> dict:
    if run.reason == MONITOR_REASON:
        return {"sent": False, "reason": "alert already sent by drift_monitor"}
    return mail_drift_alert(config, run, drift, validation.snapshot.window_start, tolerate_outage=True)


def mail_drift_alert(
    config: PipelineConfig, run: RunInfo, drift: DriftResult, window_start: str | None, tolerate_outage: bool = False
) -> dict:
    """Email the drift alert linking the Evidently report (the check is already recorded), once per check:
    the check's ``alert_sent_at`` tells a retry that the mail went out."""
    if not drift.alarm:
        return {"sent": False, "reason": f"no drift ({drift.status})"}
    checks = (config.source.conn_id, config.monitoring_database, config.monitoring.collection, drift.check_id)
    if drift.check_id and (sent_at := mongo.field_of(*checks, "alert_sent_at")):
        return {"sent": False, "reason": f"alert for check {drift.check_id} already sent at {sent_at}"}
    links = {}
    if drift.report_uri:
        links["Report"] = registry.artifact_url(config.mlflow, drift.report_uri)
    if drift.mlflow_run_id:
        links["MLflow run"] = registry.run_url(config.mlflow, drift.mlflow_run_id)
    links["Airflow run"] = airflow_api.run_url(run.dag_id, run.run_id)
    window = {"start": window_start, "end": run.run_end, "dag_id": run.dag_id, "run_id": run.run_id}
    attachments = [*small_report(config, drift), *history_attachment(config)]
    alert = mail.render_drift_alert(config.model_name, drift.to_dict(), window, links, attachments)
    # the monitor's alert fails its task (and is retried); the retrain's must not fail a run that promoted
    delivered = deliver(
        lambda: mail.send_drift_alert(config.notify.conn_id, config.notify.recipients, alert),
        "drift alert",
        raise_outage=not tolerate_outage,
    )
    if delivered["sent"] and drift.check_id:
        mongo.mark_once(*checks, "alert_sent_at", datetime.now(UTC))
    return {**delivered, "subject": alert.subject, "recipients": list(config.notify.recipients)}


MAX_ATTACHED_REPORT_BYTES = 1_000_000


def small_report(config: PipelineConfig, drift: DriftResult) -> list[mail.Attachment]:
    """The report as an attachment only when it is small: Evidently's page embeds its scripts (about 4 MB),
    which mail servers and phones handle badly; the link serves it either way."""
    if not drift.report_uri:
        return []
    size = registry.artifact_size(config.mlflow, drift.report_uri)
    if size is None or size > MAX_ATTACHED_REPORT_BYTES:
        return []
    return [("drift-report.html", registry.read_artifact(config.mlflow, drift.report_uri), "text/html")]


def notify(
    config: PipelineConfig,
    run: RunInfo,
    validation: ValidationReport,
    drift: DriftResult,
    decision: Decision,
    evaluation: Evaluation | None,
    registration: Registration | None,
    promotion: Promotion | None,
) -> dict[str, Any]:
    """Email what happened and why, and close the MLflow run. The model stages are None on the skip path."""
    records = {
        "validation": validation,
        "drift": drift,
        "decision": decision,
        "evaluation": evaluation,
        "registration": registration,
        "promotion": promotion,
    }
    summary: dict[str, Any] = {
        "model_name": config.model_name,
        "run": run.to_dict(),
        **{name: record.to_dict() if record else None for name, record in records.items()},
    }
    summary["outcome"] = run_outcome(config, run.run_id)
    summary["airflow_run_url"] = airflow_api.run_url(run.dag_id, run.run_id)
    if drift.report_uri:
        summary["drift_report_url"] = registry.artifact_url(config.mlflow, drift.report_uri)
    if drift.mlflow_run_id:
        summary["mlflow_run_url"] = registry.run_url(config.mlflow, drift.mlflow_run_id)
        log_history_chart(config, drift.mlflow_run_id)
        registry.finish_run(config.mlflow, drift.mlflow_run_id)
    message = mail.render_summary(summary)
    delivered = mail_summary_once(config, drift.mlflow_run_id, message)
    note = run_summary(decision, evaluation, registration, promotion)
    log.info(note)
    airflow_api.set_run_note(run.dag_id, run.run_id, note)
    return {"subject": message.subject, "recipients": list(config.notify.recipients), **delivered}


SUMMARY_SENT_TAG = "summary_sent_at"  # on the run's MLflow run: a cleared notify does not mail twice


def mail_summary_once(config: PipelineConfig, mlflow_run_id: str | None, message: mail.Message) -> dict[str, Any]:
    """Send the summary unless the run's MLflow run records that it went out (a cleared or retried notify)."""
    sent_at = registry.run_tag(config.mlflow, mlflow_run_id, SUMMARY_SENT_TAG) if mlflow_run_id else None
    if sent_at:
        log.info("the summary of this run was mailed at %s: not again", sent_at)
        return {"sent": False, "reason": f"summary already sent at {sent_at}"}
    delivered = deliver(lambda: mail.send(config.notify.conn_id, config.notify.recipients, message), "summary")
    if delivered["sent"] and mlflow_run_id:
        registry.set_run_tag(config.mlflow, mlflow_run_id, SUMMARY_SENT_TAG, datetime.now(UTC).isoformat())
    return delivered


def history_chart(config: PipelineConfig, limit: int = HISTORY_CHECKS) -> bytes | None:
    """The model's last ``limit`` drift checks as a PNG (``core.history``), with the versions registered
    since; None before its first check."""
    monitoring = (config.source.conn_id, config.monitoring_database, config.monitoring.collection)
    checks = mongo.drift_history(*monitoring, config.model_name, limit)
    if not checks:
        return None
    versions = registry.registered_versions(config.mlflow, config.model_name, limit)
    return history.drift_history_png(config.model_name, checks, versions)


def drawn_history(config: PipelineConfig) -> bytes | None:
    """``history_chart``, or None when it cannot be drawn: a picture is no outcome, so the log says why and
    the run, or the alert, goes on."""
    try:
        return history_chart(config)
    except Exception:
        log.exception("the drift history chart could not be drawn")
        return None


def log_history_chart(config: PipelineConfig, mlflow_run_id: str) -> str | None:
    """The chart as artifact ``HISTORY_CHART`` of the run's MLflow run (its ``runs:/`` URI)."""
    chart = drawn_history(config)
    if chart is None:
        return None
    uri = registry.log_bytes(config.mlflow, mlflow_run_id, chart, HISTORY_CHART)
    log.info("drift history chart: %s", registry.artifact_url(config.mlflow, uri))
    return uri


def history_attachment(config: PipelineConfig) -> list[mail.Attachment]:
    chart = drawn_history(config)
    return [(HISTORY_CHART.rpartition("/")[2], chart, "image/png")] if chart else []


def deliver(send: Callable[[], None], what: str, raise_outage: bool = False) -> dict[str, Any]:
    """Send a notification of the retrain run; an outage (after the SMTP hook's own retries) is logged and
    recorded, never a failed run: the run's state must say what happened to the model, not to the mail."""
    try:
        send()
    except mail.MailError as error:
        if raise_outage:
            raise
        log.error("the %s mail could not be sent: %s", what, error)
        return {"sent": False, "error": str(error)}
    return {"sent": True}
