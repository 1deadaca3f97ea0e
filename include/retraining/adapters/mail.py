"""Everything that sends mail, through the SMTP provider's hook and the configured ``notify.conn_id``:
run summaries, drift alerts and task-failure mails.

Rendering is separate from sending so the messages can be tested without a server.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(default=True),
    undefined=StrictUndefined,
)
_TEXT_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"), autoescape=False, undefined=StrictUndefined
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
    context = {"evaluation": None, "registration": None, "promotion": None, "mlflow_run_url": None} | summary
    html = _TEMPLATES.get_template("summary.html").render(headline=title, **context)
    return Message(subject=f"[retrain] {summary['model_name']}: {title}", html=html)


def send(
    conn_id: str, recipients: tuple[str, ...] | list[str], message: Message, files: list[str] | None = None
) -> None:
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    with SmtpHook(smtp_conn_id=conn_id) as hook:
        hook.send_email_smtp(to=list(recipients), subject=message.subject, html_content=message.html, files=files)


def render_failure(dag_id: str, run_id: str, task_id: str, try_number: int, error: object) -> Message:
    html = _TEMPLATES.get_template("failure.html").render(
        dag_id=dag_id, run_id=run_id, task_id=task_id, try_number=try_number, error=error
    )
    return Message(subject=f"[retrain] task {task_id} failed in {dag_id} / {run_id}", html=html)


@dataclass(frozen=True)
class DriftAlert:
    subject: str
    html: str
    text: str
    report_name: str
    report_html: bytes | None


def render_drift_alert(
    model_name: str, drift: dict[str, Any], window: dict[str, Any], links: dict[str, str], report_html: bytes | None
) -> DriftAlert:
    """The drift alert: drifted columns with method, score and threshold; the report attached."""
    context = {
        "model_name": model_name,
        "drift": drift,
        "window": window,
        "links": links,
        "drifted": [c for c in drift["columns"] if c["drifted"]],
    }
    share = f"{drift['drift_share']:.0%}"
    return DriftAlert(
        subject=f"[drift] {model_name}: {share} of columns drifted ({drift['drifted_columns']} of "
        f"{len(drift['columns'])})",
        html=_TEMPLATES.get_template("drift_alert.html").render(**context),
        text=_TEXT_TEMPLATES.get_template("drift_alert.txt").render(**context),
        report_name="drift-report.html",
        report_html=report_html,
    )


def drift_alert_message(alert: DriftAlert, sender: str, recipients: tuple[str, ...] | list[str]) -> EmailMessage:
    message = EmailMessage()
    message["Subject"], message["From"], message["To"] = alert.subject, sender, ", ".join(recipients)
    message.set_content(alert.text)
    message.add_alternative(alert.html, subtype="html")
    if alert.report_html is not None:
        message.add_attachment(alert.report_html, maintype="text", subtype="html", filename=alert.report_name)
    return message


def send_drift_alert(conn_id: str, recipients: tuple[str, ...] | list[str], alert: DriftAlert) -> None:
    """Send through the hook's authenticated client: its own API cannot send a text alternative."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    with SmtpHook(smtp_conn_id=conn_id) as hook:
        message = drift_alert_message(alert, hook.from_email or "airflow@localhost", recipients)
        hook._smtp_client.send_message(message)
