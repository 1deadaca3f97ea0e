"""Everything that sends mail, through the SMTP provider's hook (``smtp_default``).

Rendering is separate from sending so the messages can be tested without a server.
"""

from __future__ import annotations

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
    context = {"evaluation": None, "registration": None, "promotion": None, "mlflow_run_url": None} | summary
    html = _TEMPLATES.get_template("summary.html").render(headline=title, **context)
    return Message(subject=f"[retrain] {summary['model_name']}: {title}", html=html)


def send(
    conn_id: str, recipients: tuple[str, ...] | list[str], message: Message, files: list[str] | None = None
) -> None:
    from airflow.providers.smtp.hooks.smtp import SmtpHook

    with SmtpHook(smtp_conn_id=conn_id) as hook:
        hook.send_email_smtp(to=list(recipients), subject=message.subject, html_content=message.html, files=files)
