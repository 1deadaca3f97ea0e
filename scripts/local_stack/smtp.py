"""SMTP: aiosmtpd with its Mailbox handler, which keeps every message as one file in <state>/mail/new/."""

from __future__ import annotations

import json
import smtplib
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


SERVICE = Service("smtp", command, ready, describe, env)
