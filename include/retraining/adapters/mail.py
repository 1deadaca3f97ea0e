"""Everything that sends mail, through the SMTP provider's hook and the configured ``notify.conn_id``:
run summaries, drift alerts and task-failure mails.

Rendering is separate from sending so the messages can be tested without a server.
"""

from __future__ import annotations

import smtplib
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True),
    undefined=StrictUndefined,
)


@dataclass(frozen=True)
class Message:
    subject: str
    html: str


def headline(summary: dict[str, Any]) -> str:
    promotion, decision = summary.get("promotion"), summary["decision"]
    if not decision["retrain"]:
        return "no retrain needed"
    if promotion and promotion["promoted"]:
        return f"version {promotion['champion_version']} is the new champion"
    return "challenger registered, champion unchanged"


def render_summary(summary: dict[str, Any]) -> Message:
    """``summary`` holds the run's records as dicts (run, validation, drift, decision, ...)."""
    title = headline(summary)
    defaults = {"evaluation": None, "registration": None, "promotion": None, "mlflow_run_url": None, "outcome": ""}
    context = defaults | summary
    html = _TEMPLATES.get_template("summary.html").render(headline=title, **context)
    return Message(subject=f"[retrain] {summary['model_name']}: {title}", html=html)


class MailError(RuntimeError):
    """The SMTP server could not be reached or refused the message (after the hook's own retries)."""


def send(
    conn_id: str, recipients: tuple[str, ...] | list[str], message: Message, files: list[str] | None = None
) -> None:
    from airflow.providers.smtp.hooks.smtp import SmtpHook
    from airflow.sdk.exceptions import AirflowException

    try:
        with SmtpHook(smtp_conn_id=conn_id) as hook:
            hook.send_email_smtp(to=list(recipients), subject=message.subject, html_content=message.html, files=files)
    except (OSError, smtplib.SMTPException, AirflowException) as error:
        raise MailError(f"mail {message.subject!r} to {', '.join(recipients)} via {conn_id}: {error}") from error


def render_failure(dag_id: str, run_id: str, task_id: str, try_number: int, error: object, outcome: str) -> Message:
    """``outcome`` says what the run did to the registry, as read from it."""
    html = _TEMPLATES.get_template("failure.html").render(
        dag_id=dag_id, run_id=run_id, task_id=task_id, try_number=try_number, error=error, outcome=outcome
    )
    return Message(subject=f"[retrain] task {task_id} failed in {dag_id} / {run_id}", html=html)


@dataclass(frozen=True)
class DriftAlert:
    subject: str
    html: str
    report_name: str
    report_html: bytes | None


def render_drift_alert(
    model_name: str, drift: dict[str, Any], window: dict[str, Any], links: dict[str, str], report_html: bytes | None
) -> DriftAlert:
    """The drift alert: the performance drop when the champion got worse on new labels, the drifted columns
    with method, score and threshold; the report attached."""
    performance = drift.get("performance")
    performance_drifted = bool(performance) and performance["status"] == "drift"
    data_drifted = drift["status"] == "drift"
    kinds = " and ".join(
        kind for kind, found in (("Data drift", data_drifted), ("Performance drift", performance_drifted)) if found
    )
    context = {
        "model_name": model_name,
        "drift": drift,
        "performance": performance,
        "kinds": kinds or "Drift check",
        "window": window,
        "links": links,
        "drifted": [c for c in drift["columns"] if c["drifted"]],
    }
    share = f"{drift['drift_share']:.0%}"
    headline = f"{share} of columns drifted ({drift['drifted_columns']} of {len(drift['columns'])})"
    if performance_drifted:
        headline = f"{performance['metric']} fell to {performance['current_value']:.4f} on new labels; {headline}"
    return DriftAlert(
        subject=f"[drift] {model_name}: {headline}",
        html=_TEMPLATES.get_template("drift_alert.html").render(**context),
        report_name="drift-report.html",
        report_html=report_html,
    )


def send_drift_alert(conn_id: str, recipients: tuple[str, ...] | list[str], alert: DriftAlert) -> None:
    """The alert as HTML with the Evidently report attached, through the hook's public API."""
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        if alert.report_html is not None:
            report = Path(tmp) / alert.report_name
            report.write_bytes(alert.report_html)
            files.append(str(report))
        send(conn_id, recipients, Message(alert.subject, alert.html), files)
