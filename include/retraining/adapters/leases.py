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
from datetime import UTC, datetime, timedelta

from include.retraining.adapters.mongo import client


class LeaseHeld(RuntimeError):
    """Another holder kept the lease past the wait (retryable: it expires)."""


@contextmanager
def held(
    conn_id: str, database: str, collection: str, key: str, holder: str, ttl: timedelta, wait: timedelta
) -> Iterator[None]:
    """Run the block holding lease ``key``; wait up to ``wait`` while another holder has it, then raise
    ``LeaseHeld`` naming that holder. Released when the block ends, also when it raises."""
    leases = client(conn_id)[database][collection]
    deadline = time.monotonic() + wait.total_seconds()
    while not _take(leases, key, holder, ttl):
        if time.monotonic() > deadline:
            current = leases.find_one({"_id": key}) or {}
            raise LeaseHeld(
                f"{key} is held by {current.get('holder')} until {current.get('expires_at')}: "
                f"{holder} waited {wait.total_seconds():.0f} s and does not act at the same time"
            )
        time.sleep(0.5)
    try:
        yield
    finally:  # expired now rather than deleted: the pipeline's user may not remove documents
        leases.update_one({"_id": key, "holder": holder}, {"$set": {"expires_at": datetime.now(UTC)}})


def _take(leases, key: str, holder: str, ttl: timedelta) -> bool:
    from pymongo.errors import DuplicateKeyError

    now = datetime.now(UTC)
    mine_or_free = {"_id": key, "$or": [{"holder": holder}, {"expires_at": {"$lte": now}}]}
    try:
        leases.update_one(mine_or_free, {"$set": {"holder": holder, "expires_at": now + ttl}}, upsert=True)
    except DuplicateKeyError:  # the key exists and is another holder's
        return False
    return True
