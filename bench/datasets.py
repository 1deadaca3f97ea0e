"""Bench data: one MongoDB collection per size (``bench_10k``, ``bench_100k``, ``bench_1m``), seeded once.

Every collection holds exactly ``rows`` synthetic vehicle-insurance documents spread over 30 days that
end at a fixed instant, drawn from fixed seeds, so two runs (and two commits) read the same rows. The
documents are generated and inserted in chunks of 100k, so seeding 1M stays within a few hundred MB.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pandas as pd

END = datetime(2026, 1, 31, tzinfo=UTC)
DAYS = 30
CHUNK = 100_000
SIZES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000}


def collection_name(label: str) -> str:
    return f"bench_{label}"


def database() -> str:
    return os.environ.get("MONGO_DB", "insurance")


def ensure_collection(label: str, conn_id: str | None = None) -> str:
    """The collection for ``label``, seeded if it does not hold exactly the expected rows: by the seeding
    connection (``SEED_MONGO_CONN_ID``, the local stack's admin), since the pipeline's own user may only read."""
    from include.demo.sample_data import generate_documents
    from include.retraining.adapters import mongo

    rows, name = SIZES[label], collection_name(label)
    conn_id = conn_id or os.environ.get("SEED_MONGO_CONN_ID", "mongo_default")
    docs = mongo.collection(conn_id, database(), name)
    if docs.estimated_document_count() == rows:
        return name
    docs.drop()
    span = timedelta(days=DAYS) / max(1, rows // CHUNK)
    for number, first in enumerate(range(0, rows, CHUNK)):
        start = END - timedelta(days=DAYS) + number * span
        chunk = generate_documents(min(CHUNK, rows - first), start=start, end=start + span, seed=number)
        docs.insert_many(chunk, ordered=False)
    docs.create_index("ingested_at")
    return name


def drift_pair(rows: int, shifted: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(current, reference) frames of ``rows`` each; ``shifted`` moves the current inputs (covariate drift)."""
    from include.demo.sample_data import generate_frame

    start = END - timedelta(days=DAYS)
    reference = generate_frame(rows, start=start, end=END, seed=101)
    current = generate_frame(rows, start=start, end=END, seed=202, covariate_drift=1.0 if shifted else 0.0)
    return current, reference


if __name__ == "__main__":
    import sys

    for size in sys.argv[1:] or list(SIZES):
        print(size, ensure_collection(size), flush=True)
