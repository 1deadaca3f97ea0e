"""``python -m include.demo.seed``: insert synthetic vehicle-insurance documents into MongoDB."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from include.demo.sample_data import as_utc, generate_documents

# --- CLI ------------------------------------------------------------------------------------------------


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    seed = argparse.ArgumentParser(
        prog="python -m include.demo.seed",
        description="Generate synthetic vehicle insurance cross-sell documents and insert them into MongoDB.",
    )
    seed.add_argument("--rows", type=_positive(int), required=True, help="number of documents")
    seed.add_argument("--days", type=_positive(float), required=True, help="ingested_at spans this many days")
    seed.add_argument("--end", type=_iso_datetime, help="end of the time range, ISO 8601 (default now, UTC)")
    seed.add_argument("--covariate-drift", type=_share, default=0.0, help="0..1")
    seed.add_argument("--concept-drift", type=_share, default=0.0, help="0..1")
    seed.add_argument("--malformed-share", type=_share, default=0.0, help="0..1")
    seed.add_argument("--seed", type=int, default=0)
    seed.add_argument("--if-empty", action="store_true", help="do nothing if the collection has documents")
    seed.add_argument("--batch-size", type=_positive(int), default=5000)
    seed.add_argument("--database", default=os.environ.get("MONGO_DB", "insurance"))
    seed.add_argument("--collection", default=os.environ.get("MONGO_COLLECTION", "vehicle_insurance"))
    seed.add_argument(
        "--conn-id",
        default=os.environ.get("SEED_MONGO_CONN_ID", "mongo_default"),
        help="Airflow connection id of a MongoDB user that may write the collection (default $SEED_MONGO_CONN_ID, "
        "else mongo_default; the local stack sets mongo_admin: the pipeline's own user may only read it)",
    )
    return seed.parse_args(argv)


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        value = kind(text)  # a ValueError here becomes argparse's "invalid ... value"
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be within [0, 1], got {text}")
    return value


def _iso_datetime(text: str) -> datetime:
    try:
        return as_utc(datetime.fromisoformat(text), "--end")
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 datetime: {text!r}") from error


def seed_collection(args: argparse.Namespace) -> int:
    """Insert generated documents in batches; return how many were inserted."""
    from include.retraining.adapters.mongo import count_documents, insert_documents

    target = {"database": args.database, "collection": args.collection, "conn_id": args.conn_id}
    where = f"{args.database}.{args.collection}"
    if args.if_empty and (existing := count_documents(**target)) > 0:
        print(f"skipped: {where} already holds {existing} documents")
        return 0
    end = args.end or datetime.now(UTC)
    start = end - timedelta(days=args.days)
    documents = generate_documents(
        args.rows,
        start=start,
        end=end,
        seed=args.seed,
        covariate_drift=args.covariate_drift,
        concept_drift=args.concept_drift,
        malformed_share=args.malformed_share,
    )
    inserted = sum(
        insert_documents(documents[i : i + args.batch_size], **target)
        for i in range(0, len(documents), args.batch_size)
    )
    labels = [doc["Response"] for doc in documents if isinstance(doc.get("Response"), int)]
    positives = sum(labels) / len(labels) if labels else 0.0
    print(
        f"inserted {inserted} documents ({positives:.1%} positives) "
        f"ingested_at {start.isoformat()} .. {end.isoformat()} into {where}"
    )
    return inserted


def main(argv: Sequence[str] | None = None) -> int:
    seed_collection(_parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
