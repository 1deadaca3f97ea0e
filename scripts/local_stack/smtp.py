"""SMTP: aiosmtpd with its Mailbox handler, which keeps every message as one file in <state>/mail/new/;
and the one reader of that Maildir (``delivered``), for the tests and the benchmarks."""

from __future__ import annotations

import email
import email.policy
import json
import os
import smtplib
from email.message import EmailMessage
from pathlib import Path

from .supervisor import BIN, HOST, Service


def ready(port: int) -> bool:
    try:
        with smtplib.SMTP(HOST, port, timeout=2) as smtp:
            return smtp.noop()[0] == 250
    except (OSError, smtplib.SMTPException):
        return False


def env(state: Path, ports: dict[str, int]) -> dict[str, str]:
    extra = {"disable_ssl": True, "disable_tls": True, "from_email": "retrain-bot@example.com"}
    conn = {
        "conn_type": "smtp",
        "host": HOST,
        "port": ports["smtp"],
        "extra": extra | {"timeout": 30, "retry_limit": 3},
    }
    return {
        "MAIL_SINK_DIR": str(state / "mail"),
        "SMTP_HOST": HOST,
        "SMTP_PORT": str(ports["smtp"]),
        "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(conn, separators=(",", ":")),
    }


def command(state: Path, ports: dict[str, int]) -> list[str]:
    handler = ("-c", "aiosmtpd.handlers.Mailbox", str(state / "mail"))
    return [str(BIN / "python"), "-m", "aiosmtpd", "-n", "-l", f"{HOST}:{ports['smtp']}", *handler]


def describe(state: Path, port: int) -> str:
    return f"smtp://{HOST}:{port}  mail in {state / 'mail' / 'new'}"


DELIVERED = ("new", "cur")  # Maildir's tmp/ holds messages still being written


def deliveries(sink: str | Path | None = None) -> list[tuple[float, EmailMessage]]:
    """(delivery time as a Unix timestamp, message) of every message in the sink ``$MAIL_SINK_DIR``, oldest
    first; the time is the file's mtime: when the sink moved the complete message out of tmp/."""
    root = Path(sink or os.environ["MAIL_SINK_DIR"])
    paths = [path for folder in DELIVERED if (root / folder).is_dir() for path in (root / folder).iterdir()]
    stamped = sorted((path.stat().st_mtime, path) for path in paths)
    return [(at, email.message_from_bytes(path.read_bytes(), policy=email.policy.default)) for at, path in stamped]


def delivered(sink: str | Path | None = None) -> list[EmailMessage]:
    """Every delivered message, oldest first."""
    return [message for _, message in deliveries(sink)]


def delivered_to(recipient: str, sink: str | Path | None = None) -> list[EmailMessage]:
    return [message for message in delivered(sink) if recipient in str(message["To"])]


SERVICE = Service("smtp", command, ready, describe, env)
