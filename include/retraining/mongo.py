"""Everything that touches MongoDB, through the provider's MongoHook.

Reads go through pymongoarrow with a schema built from the data contract: it is much faster than
``pd.DataFrame(list(find()))`` and only the contracted fields cross the wire. Values of the wrong
BSON type arrive as nulls (``allow_invalid``) so validation can name and quarantine them instead of
the whole extract failing on one bad document.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from bson import ObjectId

from include.retraining.config import ContractConfig, SourceConfig

if TYPE_CHECKING:
    import pandas as pd
    from pymongo import MongoClient
    from pymongo.collection import Collection

ID_TYPES = {"objectid": ObjectId, "string": pa.string(), "int": pa.int64()}


def client(conn_id: str) -> MongoClient:
    from airflow.providers.mongo.hooks.mongo import MongoHook

    return MongoHook(mongo_conn_id=conn_id).get_conn()


def collection(conn_id: str, database: str, name: str) -> Collection:
    return client(conn_id)[database][name]


def insert_documents(
    docs: list[dict[str, Any]], *, database: str, collection: str, conn_id: str = "mongo_default"
) -> int:
    if not docs:
        return 0
    target = client(conn_id)[database][collection]
    return len(target.insert_many(docs, ordered=False).inserted_ids)


def count_documents(*, database: str, collection: str, conn_id: str = "mongo_default") -> int:
    return client(conn_id)[database][collection].count_documents({})


def window_filter(source: SourceConfig, start: datetime | None, end: datetime) -> dict[str, Any]:
    """Half-open window (start, end] on the timestamp field: consecutive windows never overlap."""
    bounds: dict[str, Any] = {"$lte": end}
    if start is not None:
        bounds["$gt"] = start
    return {source.timestamp_field: bounds}


def arrow_schema(source: SourceConfig, contract: ContractConfig) -> dict[str, Any]:
    schema: dict[str, Any] = {source.id_field: ID_TYPES[source.id_type]}
    for feature in contract.features:
        schema[feature.name] = pa.float64() if feature.kind == "numeric" else pa.string()
    schema[contract.label.name] = pa.float64()
    schema[source.timestamp_field] = pa.timestamp("ms", tz="UTC")
    return schema


def read_window(source: SourceConfig, contract: ContractConfig, start: datetime | None, end: datetime) -> pd.DataFrame:
    """The contracted columns of every document in the window, ordered by timestamp."""
    from pymongoarrow.api import Schema, find_arrow_all

    docs = collection(source.conn_id, source.database, source.collection)
    docs.create_index(source.timestamp_field)  # idempotent; the window scan needs it at scale
    table = find_arrow_all(
        docs,
        window_filter(source, start, end),
        schema=Schema(arrow_schema(source, contract)),
        allow_invalid=True,
        sort=[(source.timestamp_field, 1)],
    )
    frame = table.to_pandas()
    frame[source.id_field] = frame[source.id_field].astype(str)
    return frame


def record_documents(conn_id: str, database: str, name: str, docs: Iterable[dict[str, Any]]) -> list[str]:
    """Append monitoring documents (drift checks, ...) and return their ids."""
    result = client(conn_id)[database][name].insert_many(list(docs))
    return [str(i) for i in result.inserted_ids]


def latest_documents(
    conn_id: str, database: str, name: str, *, sort_field: str, limit: int = 1
) -> list[dict[str, Any]]:
    cursor = client(conn_id)[database][name].find({}, sort=[(sort_field, -1)], limit=limit)
    return list(cursor)


def latest_timestamp(source: SourceConfig) -> datetime | None:
    """The newest value of the timestamp field in the source collection."""
    docs = collection(source.conn_id, source.database, source.collection)
    newest = docs.find_one(
        {source.timestamp_field: {"$ne": None}},
        sort=[(source.timestamp_field, -1)],
        projection={source.timestamp_field: 1},
    )
    return _utc(newest[source.timestamp_field]) if newest else None


def read_watermark(source: SourceConfig, state_collection: str, key: str) -> datetime | None:
    state = client(source.conn_id)[source.database][state_collection].find_one({"_id": key})
    return _utc(state["watermark"]) if state and state.get("watermark") else None


def advance_watermark(
    source: SourceConfig, state_collection: str, key: str, expected: datetime | None, new: datetime, note: dict
) -> None:
    """Compare-and-set: move the watermark from ``expected`` to ``new`` or fail loudly.

    A retry of a task that already advanced it is a no-op; any other concurrent change is an error,
    because it would mean a window was handled twice or skipped.
    """
    from pymongo.errors import DuplicateKeyError

    new = new.replace(microsecond=new.microsecond // 1000 * 1000)  # MongoDB keeps milliseconds
    states = client(source.conn_id)[source.database][state_collection]
    update = {"$set": {"watermark": new, **note}}
    try:
        result = states.update_one({"_id": key, "watermark": expected}, update, upsert=expected is None)
    except DuplicateKeyError:  # upsert raced with an existing state document
        result = None
    if result is not None and (result.matched_count or result.upserted_id is not None):
        return
    current = read_watermark(source, state_collection, key)
    if current != _utc(new):
        raise RuntimeError(
            f"watermark {key!r} is {current}, expected {expected}: another run moved it; not advancing to {new}"
        )


def _utc(value: datetime) -> datetime:
    """MongoDB returns naive UTC datetimes unless the client is tz-aware."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
