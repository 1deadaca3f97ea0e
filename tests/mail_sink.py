"""The local stack's mail sink, an aiosmtpd Maildir at ``$MAIL_SINK_DIR``: what was delivered so far."""

from __future__ import annotations

import email
import email.policy
import os
from email.message import EmailMessage
from pathlib import Path

DELIVERED = ("new", "cur")  # Maildir's tmp/ holds messages still being written


def delivered(sink: str | Path | None = None) -> list[EmailMessage]:
    """Every delivered message, oldest first."""
    root = Path(sink or os.environ["MAIL_SINK_DIR"])
    paths = [path for folder in DELIVERED if (root / folder).is_dir() for path in (root / folder).iterdir()]
    paths.sort(key=lambda path: path.stat().st_mtime)
    return [email.message_from_bytes(path.read_bytes(), policy=email.policy.default) for path in paths]


def delivered_to(recipient: str, sink: str | Path | None = None) -> list[EmailMessage]:
    return [message for message in delivered(sink) if recipient in str(message["To"])]
