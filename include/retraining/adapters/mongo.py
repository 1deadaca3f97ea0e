"""Everything that touches MongoDB, through the provider's MongoHook: the training windows, the
monitoring history, the drift monitor's watermark and the new-data probe its sensor and trigger poll.

Reads go through pymongoarrow with a schema built from the data contract: it is much faster than
``pd.DataFrame(list(find()))`` and only the contracted fields cross the wire. Values of the wrong
BSON type arrive as nulls (``allow_invalid``) so validation can name and quarantine them instead of
the whole extract failing on one bad document.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from bson import ObjectId

from include.retraining.core.config import ContractConfig, SourceConfig

if TYPE_CHECKING:
    import pandas as pd
    from pymongo import MongoClient
    from pymongo.collection import Collection

ID_TYPES = {"objectid": ObjectId, "string": pa.string(), "int": pa.int64()}
# The label's Arrow type by its kind, so string and bool classes arrive as themselves. Int classes are read
# as float64 (exact up to 2**53): pymongoarrow truncates a double into an int64 column (1.5 arrives as 1),
# which would hide a wrong label from validation; validation casts the valid ones to int64.
LABEL_TYPES = {"int": pa.float64(), "float": pa.float64(), "str": pa.string(), "bool": pa.bool_()}


@dataclass(frozen=True)
class NewDocuments:
    """One poll of the new-data probe: settled documents stamped after the watermark."""

    count: int
    latest: str | None  # ISO UTC timestamp of the newest one, once ``count`` reached the minimum
    problem: str | None  # why waiting can never succeed (missing collection, undated documents)
    future: int = 0  # documents stamped more than the grace period ahead of now: never in a window yet


@functools.cache  # one pooled, thread-safe client per connection and process (the trigger polls for hours)
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
    schema[contract.label.name] = LABEL_TYPES[contract.label.kind]
    schema[source.timestamp_field] = pa.timestamp("ms", tz="UTC")
    return schema


def read_window(source: SourceConfig, contract: ContractConfig, start: datetime | None, end: datetime) -> pd.DataFrame:
    """The contracted columns of every document in the window, ordered by timestamp."""
    from pymongoarrow.api import Schema, find_arrow_all

    docs = collection(source.conn_id, source.database, source.collection)
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


def record_once(conn_id: str, database: str, name: str, key: dict[str, Any], doc: dict[str, Any]) -> str:
    """Write the monitoring document identified by ``key`` (e.g. one drift check per run), replacing what
    an earlier try wrote; return its id."""
    from pymongo import ReturnDocument

    stored = client(conn_id)[database][name].find_one_and_update(
        key, {"$set": doc}, upsert=True, return_document=ReturnDocument.AFTER, projection={"_id": 1}
    )
    return str(stored["_id"])


def mark_once(conn_id: str, database: str, name: str, doc_id: str, field: str, value: Any) -> bool:
    """Set ``field`` on a monitoring document unless it is set already; False if it was."""
    query = {"_id": ObjectId(doc_id), field: {"$exists": False}}
    return client(conn_id)[database][name].update_one(query, {"$set": {field: value}}).modified_count == 1


def field_of(conn_id: str, database: str, name: str, doc_id: str, field: str) -> Any:
    found = client(conn_id)[database][name].find_one({"_id": ObjectId(doc_id)}, {field: 1})
    return (found or {}).get(field)


def as_watermark(value: str | datetime) -> datetime:
    """A tz-aware UTC datetime from an ISO string or a datetime; naive values are refused, not guessed."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime):
        raise ValueError(f"watermark must be an ISO datetime string or a datetime, got {value!r}")
    if moment.tzinfo is None:
        raise ValueError(f"watermark {value!r} has no time zone: pass e.g. '2024-01-01T00:00:00+00:00'")
    return moment.astimezone(UTC)


def new_documents(
    conn_id: str,
    database: str,
    name: str,
    timestamp_field: str,
    watermark: datetime,
    min_documents: int,
    grace: timedelta = timedelta(0),
) -> NewDocuments:
    """Count the settled new documents: ``timestamp_field`` in (watermark, now - grace]. A document stamped
    exactly at the watermark belongs to the previous window; one stamped in the last ``grace`` may still
    be overtaken by a concurrent writer's older timestamp, so it waits for the next window. Synchronous:
    the trigger runs it in a thread."""
    now = datetime.now(UTC)
    query = {timestamp_field: {"$gt": watermark, "$lte": now - grace}}
    db = client(conn_id)[database]
    docs = db[name]
    count = docs.count_documents(query)
    future = docs.count_documents({timestamp_field: {"$gt": max(now + grace, watermark)}})
    if count < min_documents:
        return NewDocuments(count, None, _source_problem(db, name, timestamp_field), future)
    newest = docs.find_one(query, {timestamp_field: 1, "_id": 0}, sort=[(timestamp_field, -1)])
    return NewDocuments(count, _utc(newest[timestamp_field]).isoformat(), None, future)


def _source_problem(db: Any, name: str, timestamp_field: str) -> str | None:
    """An empty collection may fill up; a missing or undated one never will. ``authorizedCollections``
    lets a read-only user without the listCollections privilege ask."""
    where = f"{db.name}.{name}"
    if not db.list_collection_names(filter={"name": name}, authorizedCollections=True):
        return (
            f"collection {where} does not exist: check the sensor's database/collection "
            "(and the Mongo connection) or start the ingestion that writes there"
        )
    docs = db[name]
    if docs.find_one({timestamp_field: {"$type": "date"}}, {"_id": 1}) or not docs.find_one({}, {"_id": 1}):
        return None
    return (
        f"no document in {where} has a date in field {timestamp_field!r} (missing, or stored as a string?): "
        "set timestamp_field to the ingestion-time field, stored as a BSON date"
    )


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


def stamped_after(source: SourceConfig, moment: datetime, examples: int = 3) -> tuple[int, list[str]]:
    """How many documents carry a timestamp after ``moment``, and a few of their ids."""
    docs = collection(source.conn_id, source.database, source.collection)
    query = {source.timestamp_field: {"$gt": moment}}
    count = docs.count_documents(query)
    found = docs.find(query, {"_id": 1}, limit=examples) if count else []
    return count, [str(doc["_id"]) for doc in found]


def read_watermark(
    source: SourceConfig, state_collection: str, key: str, database: str | None = None
) -> datetime | None:
    """``database``: where the state collection lives (default: the source database)."""
    state = client(source.conn_id)[database or source.database][state_collection].find_one({"_id": key})
    return _utc(state["watermark"]) if state and state.get("watermark") else None


def advance_watermark(
    source: SourceConfig,
    state_collection: str,
    key: str,
    expected: datetime | None,
    new: datetime,
    note: dict,
    database: str | None = None,
) -> None:
    """Compare-and-set: move the watermark from ``expected`` to ``new`` or fail loudly.

    A retry of a task that already advanced it is a no-op; any other concurrent change is an error,
    because it would mean a window was handled twice or skipped.
    """
    from pymongo.errors import DuplicateKeyError

    new = new.replace(microsecond=new.microsecond // 1000 * 1000)  # MongoDB keeps milliseconds
    states = client(source.conn_id)[database or source.database][state_collection]
    update = {"$set": {"watermark": new, **note}}
    try:
        result = states.update_one({"_id": key, "watermark": expected}, update, upsert=expected is None)
    except DuplicateKeyError:  # upsert raced with an existing state document
        result = None
    if result is not None and (result.matched_count or result.upserted_id is not None):
        return
    current = read_watermark(source, state_collection, key, database)
    if current != _utc(new):
        raise RuntimeError(
            f"watermark {key!r} is {current}, expected {expected}: another run moved it; not advancing to {new}"
        )


def _utc(value: datetime) -> datetime:
    """MongoDB returns naive UTC datetimes unless the client is tz-aware."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)
