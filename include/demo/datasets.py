"""Public datasets bundled with scikit-learn as MongoDB documents, with a timestamp in any stored form.

    python -m include.demo.datasets wine --database public --collection wine --timestamp-type iso_string

Rows are spread evenly over ``days`` days ending at ``end`` in a shuffled (seeded) order, so any time
window is a fair sample. Class labels become their names where scikit-learn has them (wine:
``class_0``.., iris: ``setosa``..), or stay the integers / floats the dataset holds.
"""

from __future__ import annotations

import argparse
import os
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from include.retraining.core.timestamps import TIMESTAMP_TYPES, to_stored

LOADERS = {
    "breast_cancer": ("load_breast_cancer", "binary: 0/1"),
    "wine": ("load_wine", "multiclass: class names"),
    "iris": ("load_iris", "multiclass: class names"),
    "diabetes": ("load_diabetes", "regression"),
    "digits": ("load_digits", "multiclass: 0..9"),
}
NAMED_CLASSES = ("wine", "iris")
END = datetime(2024, 6, 30, tzinfo=UTC)


def documents(
    dataset: str,
    *,
    timestamp_field: str = "observed_at",
    timestamp_type: str = "date",
    int_ids: bool = False,
    days: float = 60,
    end: datetime = END,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """One document per row: feature columns by name, ``target``, and the timestamp in the stored form."""
    from sklearn import datasets

    bunch = getattr(datasets, LOADERS[dataset][0])(as_frame=True)
    frame = bunch.frame.rename(columns=lambda name: str(name).replace(" ", "_").replace("(", "").replace(")", ""))
    rows = frame.to_dict("records")
    random.Random(seed).shuffle(rows)
    step = timedelta(days=days) / len(rows)
    docs = []
    for i, row in enumerate(rows):
        moment = end - step * (len(rows) - 1 - i)
        doc = {name: _plain(value) for name, value in row.items()}
        if dataset in NAMED_CLASSES:
            doc["target"] = str(bunch.target_names[int(doc["target"])])
        doc[timestamp_field] = to_stored(moment.replace(microsecond=moment.microsecond // 1000 * 1000), timestamp_type)
        if int_ids:
            doc["_id"] = i + 1
        docs.append(doc)
    return docs


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers (BSON knows no numpy types); whole floats stay floats."""
    return value.item() if hasattr(value, "item") else value


def main(argv: Sequence[str] | None = None) -> None:
    from include.retraining.adapters import mongo

    parser = argparse.ArgumentParser(prog="python -m include.demo.datasets", description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", choices=sorted(LOADERS))
    parser.add_argument("--database", required=True)
    parser.add_argument("--collection", required=True)
    parser.add_argument("--timestamp-field", default="observed_at")
    parser.add_argument("--timestamp-type", choices=TIMESTAMP_TYPES, default="date")
    parser.add_argument("--int-ids", action="store_true", help="_id 1..n instead of ObjectIds")
    parser.add_argument("--days", type=float, default=60)
    parser.add_argument("--end", type=datetime.fromisoformat, default=END, help="the newest timestamp, ISO with offset")
    parser.add_argument("--conn-id", default=os.environ.get("SEED_MONGO_CONN_ID", "mongo_admin"))
    args = parser.parse_args(argv)
    docs = documents(
        args.dataset,
        timestamp_field=args.timestamp_field,
        timestamp_type=args.timestamp_type,
        int_ids=args.int_ids,
        days=args.days,
        end=args.end,
    )
    inserted = mongo.insert_documents(docs, database=args.database, collection=args.collection, conn_id=args.conn_id)
    print(f"inserted {inserted} {args.dataset} documents into {args.database}.{args.collection}")


if __name__ == "__main__":
    main()
