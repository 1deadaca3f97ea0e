"""``python -m scripts.load_csv``: load a CSV file into a MongoDB collection, to onboard a dataset locally.

Production data arrives through its own ingestion (or ``mongoimport``); the local stack's server has no
import tool, so this is the first step of onboarding a dataset there::

    make load-csv CSV=weather.csv DB=weather COLLECTION=daily TIMESTAMP=observed_at
    make onboard DB=weather COLLECTION=daily LABEL=summary TIMESTAMP=observed_at

Column types are pandas' inference; an empty cell becomes an absent field. The timestamp column, when
the CSV has it, is parsed (UTC unless it carries an offset) and stored as ``--timestamp-type``; when it
has none, the rows are stamped in file order, evenly over the ``--days`` before ``--end``, as a feed
that arrived over time. Runs as a MongoDB user that may write (``$SEED_MONGO_CONN_ID``; the pipeline's
own user may only read).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from pandas.api.types import is_numeric_dtype

from include.retraining.core.timestamps import TIMESTAMP_TYPES, IsoLayout, to_stored
from include.retraining.core.traps import single_instant

ISO_LAYOUT = IsoLayout(fraction_digits=3)
BATCH = 5000
EPOCHS = {"s": (1e9, 2e9), "ms": (1e12, 2e12)}  # a numeric timestamp column: epoch seconds or milliseconds


def stamped(frame: pd.DataFrame, field: str, days: float, end: datetime) -> pd.Series:
    """The CSV's own timestamps, or file order spread evenly over ``days`` up to ``end``."""
    if field in frame.columns:
        parsed = parsed_numbers(frame[field]) if is_numeric_dtype(frame[field]) else parsed_text(frame[field])
        if bad := int(parsed.isna().sum()):
            raise ValueError(
                f"{bad} of {len(frame)} values of column {field!r} are not dates (e.g. row "
                f"{int(parsed.isna().to_numpy().argmax()) + 2} of the file): fix them, or drop the column to "
                "stamp the rows in file order"
            )
        if one := single_instant(parsed, f"column {field!r}"):
            raise ValueError(one)
        return parsed
    step = timedelta(days=days) / max(len(frame), 1)
    start = end - timedelta(days=days)
    return pd.Series([start + step * (i + 1) for i in range(len(frame))], index=frame.index)


def parsed_text(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True, errors="coerce")


def parsed_numbers(values: pd.Series) -> pd.Series:
    """Epoch seconds or milliseconds (of 2001..2033); any other number is refused, not read as nanoseconds
    after 1970 (pandas' reading, which stores every row at 1970-01-01)."""
    present = values.dropna()
    for unit, (low, high) in EPOCHS.items():
        if present.between(low, high).all():
            return pd.to_datetime(values, unit=unit, utc=True)
    low, high = present.min(), present.max()
    years = (present % 1 == 0).all() and low >= 1000 and high <= 3000
    what = "whole numbers that look like years" if years else "numbers that are no epoch seconds or milliseconds"
    raise ValueError(
        f"column {values.name!r} holds {what} ({low:g} .. {high:g}), not moments: read as epoch nanoseconds "
        "every row would be stamped 1970-01-01. Drop TIMESTAMP= to stamp the rows in file order (sorted by "
        f"{values.name} first, if the file is not), or add a column of dates"
        + (f" (e.g. {int(low)}-07-01 for {int(low)})" if years else "")
    )


def stored(moment: pd.Timestamp, timestamp_type: str) -> Any:
    """A UTC timestamp in the storage form the model config declares (``source.timestamp_type``); ISO
    strings in one layout (milliseconds, ``Z``), so they compare as the windows expect."""
    return to_stored(moment.to_pydatetime().astimezone(UTC), timestamp_type, ISO_LAYOUT)


def documents(frame: pd.DataFrame, field: str, timestamp_type: str, days: float, end: datetime) -> list[dict]:
    stamps = stamped(frame, field, days, end)
    rows = frame.drop(columns=[field], errors="ignore").to_dict(orient="records")
    return [
        {key: native(value) for key, value in row.items() if not _missing(value)}
        | {field: stored(stamp, timestamp_type)}
        for row, stamp in zip(rows, stamps, strict=True)
    ]


def native(value: Any) -> Any:
    """numpy scalars as Python values: BSON has no numpy types."""
    return value.item() if hasattr(value, "item") else value


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m scripts.load_csv", description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--collection", required=True)
    parser.add_argument("--timestamp", default="ingested_at", help="the timestamp field (default ingested_at)")
    parser.add_argument("--timestamp-type", choices=TIMESTAMP_TYPES, default="date")
    parser.add_argument("--days", type=float, default=30.0, help="span of file-order stamps (no timestamp column)")
    parser.add_argument("--end", type=datetime.fromisoformat, help="end of file-order stamps (default now, UTC)")
    parser.add_argument("--id-column", help="a CSV column to store as _id (default: MongoDB's ObjectId)")
    parser.add_argument("--conn-id", default=os.environ.get("SEED_MONGO_CONN_ID", "mongo_default"))
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from include.retraining.adapters.mongo import insert_documents

    args = _parse_args(argv)
    frame = pd.read_csv(args.csv)
    if args.id_column:
        frame = frame.rename(columns={args.id_column: "_id"})
    end = args.end or datetime.now(UTC)
    end = end.replace(tzinfo=UTC) if end.tzinfo is None else end.astimezone(UTC)  # a bare date or time is UTC
    try:
        docs = documents(frame, args.timestamp, args.timestamp_type, args.days, end)
    except ValueError as error:
        print(f"load-csv: {args.csv}: {error}", file=sys.stderr)
        return 2
    target = {"database": args.database, "collection": args.collection, "conn_id": args.conn_id}
    inserted = sum(insert_documents(docs[i : i + BATCH], **target) for i in range(0, len(docs), BATCH))
    print(
        f"loaded {inserted} documents from {args.csv} into {args.database}.{args.collection} "
        f"({args.timestamp} stored as {args.timestamp_type})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
