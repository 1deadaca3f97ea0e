"""Everything that sends mail, through the SMTP provider's hook and the configured ``notify.conn_id``:
run summaries, drift alerts and task-failure mails.

Rendering is separate from sending so the messages can be tested without a server.
"""

from __future__ import annotations

import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

_TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(enabled_extensions=("html",), default=False),  # the .txt parts stay plain
    undefined=StrictUndefined,
)

Attachment = tuple[str, bytes, str]  # (file name, content, MIME type), e.g. ("drift.png", b"...", "image/png")


@dataclass(frozen=True)
class Message:
    subject: str
    html: str
    text: str | None = None  # the plain-text alternative, for readers that do not show HTML
    attachments: tuple[Attachment, ...] = ()


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
    records = {"evaluation": None, "registration": None, "promotion": None, "outcome": ""}
    defaults = records | {"mlflow_run_url": None, "airflow_run_url": None, "drift_report_url": None}
    context = defaults | summary
    html = _TEMPLATES.get_template("summary.html").render(headline=title, **context)
    return Message(subject=f"[retrain] {summary['model_name']}: {title}", html=html)


class MailError(RuntimeError):
    """The SMTP server could not be reached or refused the message (after the hook's own retries)."""


def send(conn_id: str, recipients: tuple[str, ...] | list[str], message: Message) -> None:
    """Send ``message`` through the connection the SMTP hook opened (host, TLS, login and its connect retries
    from ``conn_id``). The hook's ``send_email_smtp`` builds HTML-only mails with attachments read from
    files, so the message is built here (text + HTML alternative, attachments from bytes) and handed to the
    hook's client."""
    from airflow.providers.smtp.hooks.smtp import SmtpHook
    from airflow.sdk.exceptions import AirflowException

    try:
        with SmtpHook(smtp_conn_id=conn_id) as hook:
            hook._smtp_client.send_message(mime_message(message, hook.from_email, recipients))
    except (OSError, smtplib.SMTPException, AirflowException) as error:
        raise MailError(f"mail {message.subject!r} to {', '.join(recipients)} via {conn_id}: {error}") from error


def mime_message(message: Message, sender: str | None, recipients: tuple[str, ...] | list[str]) -> EmailMessage:
    """multipart/alternative (text, then HTML) when there is a text part, inside multipart/mixed when there
    are attachments."""
    mime = EmailMessage()
    mime["Subject"] = message.subject
    if sender:
        mime["From"] = sender
    mime["To"] = ", ".join(recipients)
    mime["Date"] = formatdate(localtime=True)
    if message.text is None:
        mime.set_content(message.html, subtype="html")
    else:
        mime.set_content(message.text)
        mime.add_alternative(message.html, subtype="html")
    for filename, content, mimetype in message.attachments:
        maintype, _, subtype = mimetype.partition("/")
        mime.add_attachment(content, maintype=maintype, subtype=subtype, filename=filename)
    return mime


def render_failure(
    dag_id: str, run_id: str, task_id: str, try_number: int, error: object, outcome: str, run_url: str | None = None
) -> Message:
    """``outcome`` says what the run did to the registry, as read from it; ``run_url`` is the run's page."""
    html = _TEMPLATES.get_template("failure.html").render(
        dag_id=dag_id,
        run_id=run_id,
        task_id=task_id,
        try_number=try_number,
        error=error,
        outcome=outcome,
        run_url=run_url,
    )
    return Message(subject=f"[retrain] task {task_id} failed in {dag_id} / {run_id}", html=html)


def render_drift_alert(
    model_name: str,
    drift: dict[str, Any],
    window: dict[str, Any],
    links: dict[str, str],
    attachments: tuple[Attachment, ...] | list[Attachment] = (),
) -> Message:
    """The drift alert, as HTML and plain text: the performance drop when the champion got worse on new
    labels, the drifted columns with method, score, threshold and how far each moved; ``links`` (name ->
    http URL) to the report and the runs; ``attachments`` as given."""
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
        "attached": [name for name, _, _ in attachments],
    }
    share = f"{drift['drift_share']:.0%}"
    headline = f"{share} of columns drifted ({drift['drifted_columns']} of {len(drift['columns'])})"
    if performance_drifted:
        headline = f"{performance['metric']} fell to {performance['current_value']:.4f} on new labels; {headline}"
    return Message(
        subject=f"[drift] {model_name}: {headline}",
        html=_TEMPLATES.get_template("drift_alert.html").render(**context),
        text=_TEMPLATES.get_template("drift_alert.txt").render(**context),
        attachments=tuple(attachments),
    )


def send_drift_alert(conn_id: str, recipients: tuple[str, ...] | list[str], alert: Message) -> None:
    send(conn_id, recipients, alert)
