"""Leases in MongoDB: one holder per key at a time, so two runs of one model never act at once where acting
twice would be wrong (moving the champion). ``max_active_runs`` is not enough: a cleared run runs next to
a new one.

A lease is a document ``{_id: key, holder, expires_at}`` taken by one atomic upsert when it is free (none,
or expired: a released lease expires at once) or already the caller's (a retried task takes its own lease
again, also after its process was killed while holding it). It expires after ``ttl``, so a holder that
died does not block for ever.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from include.retraining.adapters import mongo


class LeaseHeld(RuntimeError):
    """Another holder kept the lease past the wait (retryable: it expires)."""


@contextmanager
def held(
    conn_id: str, database: str, collection: str, key: str, holder: str, ttl: timedelta, wait: timedelta
) -> Iterator[None]:
    """Run the block holding lease ``key``; wait up to ``wait`` while another holder has it, then raise
    ``LeaseHeld`` naming that holder. Released when the block ends, also when it raises."""
    where = (conn_id, database, collection)
    deadline = time.monotonic() + wait.total_seconds()
    while not mongo.take_lease(*where, key, holder, ttl):
        if time.monotonic() > deadline:
            current = mongo.find_document(*where, key) or {}
            raise LeaseHeld(
                f"{key} is held by {current.get('holder')} until {current.get('expires_at')}: "
                f"{holder} waited {wait.total_seconds():.0f} s and does not act at the same time"
            )
        time.sleep(0.5)
    try:
        yield
    finally:
        mongo.release_lease(*where, key, holder)
