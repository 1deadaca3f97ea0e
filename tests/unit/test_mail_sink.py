"""The one reader of the local stack's mail sink: delivered messages only, oldest first, with their time."""

from __future__ import annotations

import os
from email.message import EmailMessage
from pathlib import Path

from scripts.local_stack.smtp import delivered, delivered_to, deliveries


def drop(sink: Path, folder: str, name: str, subject: str, to: str, mtime: float) -> None:
    message = EmailMessage()
    message["Subject"], message["To"] = subject, to
    message.set_content("body")
    path = sink / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(message.as_bytes())
    os.utime(path, (mtime, mtime))


def test_delivered_messages_come_oldest_first_with_their_time_and_tmp_is_not_delivered(tmp_path):
    drop(tmp_path, "new", "a", "second", "ops@example.com", 2_000_000_000)
    drop(tmp_path, "cur", "b", "first", "dev@example.com", 1_900_000_000)
    drop(tmp_path, "tmp", "c", "still being written", "ops@example.com", 1_800_000_000)

    found = deliveries(tmp_path)

    assert [(at, str(message["Subject"])) for at, message in found] == [
        (1_900_000_000, "first"),
        (2_000_000_000, "second"),
    ]
    assert [str(m["Subject"]) for m in delivered(tmp_path)] == ["first", "second"]
    assert [str(m["Subject"]) for m in delivered_to("ops@example.com", tmp_path)] == ["second"]


def test_an_empty_sink_has_delivered_nothing(tmp_path):
    assert deliveries(tmp_path) == []
