"""Everything that touches MongoDB, through the provider's MongoHook: the training windows, the
monitoring history, the drift monitor's watermark and the new-data probe its sensor and trigger poll.

Reads go through pymongoarrow with a schema built from the data contract: it is much faster than
``pd.DataFrame(list(find()))`` and only the contracted fields cross the wire. Values of the wrong
BSON type arrive as nulls (``allow_invalid``) so validation can name and quarantine them instead of
the whole extract failing on one bad document.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from bson import ObjectId

from include.retraining.core import timestamps
from include.retraining.core.config import ContractConfig, SourceConfig
from include.retraining.core.frames import frame_of
from include.retraining.core.timestamps import IsoLayout

if TYPE_CHECKING:
    import pandas as pd
    from pymongo import MongoClient
    from pymongo.collection import Collection

# "auto" ids are rendered as text by the server ($toString), whatever their BSON type
ID_TYPES = {"objectid": ObjectId, "string": pa.string(), "int": pa.int64(), "auto": pa.string()}
TIMESTAMP_BSON_TYPES = ("date", "string", "number")
# every value of one BSON type, as a bounded range (MongoDB compares within a type only): unlike $type,
# an index on the field answers it
TYPE_RANGES = {
    "date": {"$gte": datetime(1, 1, 1, tzinfo=UTC), "$lte": datetime(9999, 12, 31, tzinfo=UTC)},
    "string": {"$gte": "", "$lte": "\U0010ffff"},
    "number": {"$gte": float("-inf"), "$lte": float("inf")},
}
# epoch numbers are read as float64 (ints and doubles alike) and converted after the read
TIMESTAMP_ARROW_TYPES = {
    "date": pa.timestamp("ms", tz="UTC"),
    "iso_string": pa.string(),
    "epoch_seconds": pa.float64(),
    "epoch_millis": pa.float64(),
}
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


def window_filter(
    source: SourceConfig, start: datetime | None, end: datetime, layout: IsoLayout | None = None
) -> dict[str, Any]:
    """Half-open window (start, end] on the timestamp field, in its stored form: consecutive windows never
    overlap. ``layout``: how ISO-string timestamps are written (``iso_layout``)."""
    stored = functools.partial(timestamps.to_stored, timestamp_type=source.timestamp_type, layout=layout)
    bounds: dict[str, Any] = {"$lte": stored(end)}
    if start is not None:
        bounds["$gt"] = stored(start)
    return {source.timestamp_field: bounds}


def iso_layout(docs: Collection, timestamp_field: str) -> IsoLayout:
    """The layout of the newest ISO-string timestamp (the default layout on an empty collection)."""
    newest = docs.find_one(
        {timestamp_field: TYPE_RANGES["string"]}, {timestamp_field: 1, "_id": 0}, sort=[(timestamp_field, -1)]
    )
    return IsoLayout.of(newest[timestamp_field]) if newest else IsoLayout()


def layout_of(docs: Collection, timestamp_field: str, timestamp_type: str) -> IsoLayout | None:
    return iso_layout(docs, timestamp_field) if timestamp_type == "iso_string" else None


def arrow_schema(source: SourceConfig, contract: ContractConfig) -> dict[str, Any]:
    schema: dict[str, Any] = {source.id_field: ID_TYPES[source.id_type]}
    for feature in contract.features:
        schema[feature.name] = pa.float64() if feature.kind == "numeric" else pa.string()
    schema[contract.label.name] = LABEL_TYPES[contract.label.kind]
    schema[source.timestamp_field] = TIMESTAMP_ARROW_TYPES[source.timestamp_type]
    return schema


def read_window(source: SourceConfig, contract: ContractConfig, start: datetime | None, end: datetime) -> pd.DataFrame:
    """The contracted columns of every document in the window, ordered by timestamp; the timestamp as a
    UTC datetime whatever its stored form, the id as text whatever its BSON type."""
    docs = collection(source.conn_id, source.database, source.collection)
    query = window_filter(source, start, end, layout_of(docs, source.timestamp_field, source.timestamp_type))
    return _read(docs, source, contract, query)


def read_documents(source: SourceConfig, contract: ContractConfig, stored_ids: list[Any]) -> pd.DataFrame:
    """The documents with these ids (as stored, any BSON type), read as ``read_window`` reads a window."""
    docs = collection(source.conn_id, source.database, source.collection)
    return _read(docs, source, contract, {source.id_field: {"$in": stored_ids}})


def window_id_batches(source: SourceConfig, start: datetime | None, end: datetime, size: int) -> Iterator[list[Any]]:
    """The stored ids of the documents in the window, ``size`` at a time, oldest first: a caller that
    reads and handles one batch at a time holds one batch in memory, however large the window."""
    docs = collection(source.conn_id, source.database, source.collection)
    query = window_filter(source, start, end, layout_of(docs, source.timestamp_field, source.timestamp_type))
    cursor = docs.find(query, {source.id_field: 1}, sort=[(source.timestamp_field, 1)], batch_size=size)
    batch: list[Any] = []
    for doc in cursor:
        batch.append(doc.get(source.id_field))
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _read(docs: Collection, source: SourceConfig, contract: ContractConfig, query: dict[str, Any]) -> pd.DataFrame:
    from pymongoarrow.api import Schema, aggregate_arrow_all, find_arrow_all

    schema = arrow_schema(source, contract)
    if source.id_type == "auto":  # ids of any type: the server renders each one as text
        projection = dict.fromkeys(schema, 1) | {source.id_field: {"$toString": f"${source.id_field}"}}
        pipeline = [{"$match": query}, {"$sort": {source.timestamp_field: 1}}, {"$project": projection}]
        table = aggregate_arrow_all(docs, pipeline, schema=Schema(schema), allow_invalid=True)
    else:
        sort = [(source.timestamp_field, 1)]
        table = find_arrow_all(docs, query, schema=Schema(schema), allow_invalid=True, sort=sort)
    frame = frame_of(table)
    _refuse_unread_ids(docs, source, query, frame)
    frame[source.id_field] = frame[source.id_field].astype(str)
    frame[source.timestamp_field] = as_datetimes(frame[source.timestamp_field], source.timestamp_type)
    return frame


def as_datetimes(values: pd.Series, timestamp_type: str) -> pd.Series:
    """Stored timestamps as ``datetime64[ms, UTC]``; a value that is no timestamp becomes NaT."""
    import pandas as pd

    if timestamp_type == "date":
        return values
    if timestamp_type == "iso_string":
        parsed = pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce")
    else:
        parsed = pd.to_datetime(values, utc=True, unit="s" if timestamp_type == "epoch_seconds" else "ms")
    return parsed.astype("datetime64[ms, UTC]")


def _refuse_unread_ids(docs: Collection, source: SourceConfig, query: dict[str, Any], frame: pd.DataFrame) -> None:
    """An id of another BSON type than ``source.id_type`` reads as null: say so, instead of reporting "None"."""
    unread = int(frame[source.id_field].isna().sum())
    if not unread:
        return
    bson_type = {"objectid": "objectId", "string": "string", "int": ["int", "long"]}[source.id_type]
    others = docs.find({**query, source.id_field: {"$not": {"$type": bson_type}}}, {source.id_field: 1}, limit=3)
    examples = ", ".join(repr(doc[source.id_field]) for doc in others)
    raise ValueError(
        f"{source.id_field}: {unread:,} of {len(frame):,} documents in the window have an id that is not a "
        f"{source.id_type} (e.g. {examples}): set source.id_type to their type, or to 'auto' for ids of any type"
    )


def off_form(
    source: SourceConfig, start: datetime | None = None, end: datetime | None = None, examples: int = 3
) -> tuple[int, list[str], str]:
    """Documents whose timestamp is set but not in the declared form: no window finds them (another BSON
    type) or one finds them at the wrong place (an ISO string in another layout). Returns their count, a
    few ids and the form expected. Every query is a bounded range, so the field's index answers it; ISO
    layouts are checked within the window's range (start, end], where a misfit would be mis-windowed."""
    docs = collection(source.conn_id, source.database, source.collection)
    field, declared = source.timestamp_field, source.timestamp_type
    bson = timestamps.BSON_TYPES[declared]
    suspects = [{field: TYPE_RANGES[other]} for other in TIMESTAMP_BSON_TYPES if other != bson]
    expected = declared
    if declared == "iso_string":
        layout = iso_layout(docs, field)
        in_window = TYPE_RANGES["string"] | (window_filter(source, start, end, layout)[field] if end else {})
        suspects.append({field: {**in_window, "$not": {"$regex": layout.pattern}}})
        expected = f"ISO strings like {layout.describe()!r}"
    counts = [docs.count_documents(query) for query in suspects]  # one range each: $or would scan
    found = [
        doc
        for query, count in zip(suspects, counts, strict=True)
        if count
        for doc in docs.find(query, {"_id": 1}, limit=examples)
    ]
    return sum(counts), [str(doc["_id"]) for doc in found[:examples]], expected


def stored_types(source: SourceConfig) -> dict[str, int]:
    """How many documents store the timestamp field as a date, a string, a number (BSON type names)."""
    docs = collection(source.conn_id, source.database, source.collection)
    counts = {bson: docs.count_documents({source.timestamp_field: TYPE_RANGES[bson]}) for bson in TIMESTAMP_BSON_TYPES}
    return {bson: count for bson, count in counts.items() if count}


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


def find_document(conn_id: str, database: str, name: str, doc_id: str) -> dict[str, Any] | None:
    """The monitoring document with id ``doc_id`` (an ObjectId, or a lease's text key); None if there is none."""
    if ObjectId.is_valid(doc_id):
        return client(conn_id)[database][name].find_one({"_id": ObjectId(doc_id)})
    return client(conn_id)[database][name].find_one({"_id": doc_id})


def take_lease(conn_id: str, database: str, name: str, key: str, holder: str, ttl: timedelta) -> bool:
    """One atomic upsert of lease document ``key``: taken when it is free (none, or expired) or already
    ``holder``'s (a retry after a kill takes its own lease back); False while another holder has it."""
    from pymongo.errors import DuplicateKeyError

    now = datetime.now(UTC)
    mine_or_free = {"_id": key, "$or": [{"holder": holder}, {"expires_at": {"$lte": now}}]}
    leases = client(conn_id)[database][name]
    try:
        leases.update_one(mine_or_free, {"$set": {"holder": holder, "expires_at": now + ttl}}, upsert=True)
    except DuplicateKeyError:  # the key exists and is another holder's
        return False
    return True


def release_lease(conn_id: str, database: str, name: str, key: str, holder: str) -> None:
    """Expired now rather than deleted: the pipeline's user may not remove documents."""
    leases = client(conn_id)[database][name]
    leases.update_one({"_id": key, "holder": holder}, {"$set": {"expires_at": datetime.now(UTC)}})


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
    timestamp_type: str = "date",
) -> NewDocuments:
    """Count the settled new documents: ``timestamp_field`` in (watermark, now - grace]. A document stamped
    exactly at the watermark belongs to the previous window; one stamped in the last ``grace`` may still
    be overtaken by a concurrent writer's older timestamp, so it waits for the next window. Bounds are
    compared in the stored form (``timestamp_type``). Synchronous: the trigger runs it in a thread."""
    now = datetime.now(UTC)
    db = client(conn_id)[database]
    docs = db[name]
    layout = layout_of(docs, timestamp_field, timestamp_type)

    def stored(moment: datetime) -> Any:
        return timestamps.to_stored(moment, timestamp_type, layout)

    query = {timestamp_field: {"$gt": stored(watermark), "$lte": stored(now - grace)}}
    count = docs.count_documents(query)
    future = docs.count_documents({timestamp_field: {"$gt": stored(max(now + grace, watermark))}})
    if count < min_documents:
        return NewDocuments(count, None, _source_problem(db, name, timestamp_field, timestamp_type), future)
    newest = docs.find_one(query, {timestamp_field: 1, "_id": 0}, sort=[(timestamp_field, -1)])
    latest = timestamps.from_stored(newest[timestamp_field], timestamp_type)
    return NewDocuments(count, latest.isoformat(), None, future)


def _source_problem(db: Any, name: str, timestamp_field: str, timestamp_type: str = "date") -> str | None:
    """An empty collection may fill up; a missing or undated one never will. ``authorizedCollections``
    lets a read-only user without the listCollections privilege ask."""
    where = f"{db.name}.{name}"
    if not db.list_collection_names(filter={"name": name}, authorizedCollections=True):
        return (
            f"collection {where} does not exist: check the sensor's database/collection "
            "(and the Mongo connection) or start the ingestion that writes there"
        )
    docs = db[name]
    declared = TYPE_RANGES[timestamps.BSON_TYPES[timestamp_type]]
    if docs.find_one({timestamp_field: declared}, {"_id": 1}) or not docs.find_one({}, {"_id": 1}):
        return None
    other = docs.find_one({timestamp_field: {"$exists": True, "$ne": None}}, {timestamp_field: 1})
    found = timestamps.stored_type(other[timestamp_field]) if other else None
    fix = (
        f"set source.timestamp_type to {found!r}" if found else "set source.timestamp_field to the ingestion-time field"
    )
    return (
        f"no document in {where} stores field {timestamp_field!r} as the declared timestamp_type "
        f"{timestamp_type!r} ({'they hold ' + found if found else 'missing or not a timestamp'}): {fix}"
    )


def latest_documents(
    conn_id: str, database: str, name: str, *, sort_field: str, limit: int = 1
) -> list[dict[str, Any]]:
    cursor = client(conn_id)[database][name].find({}, sort=[(sort_field, -1)], limit=limit)
    return list(cursor)


def latest_timestamp(source: SourceConfig) -> datetime | None:
    """The newest value of the timestamp field in the source collection (in its declared form)."""
    return _edge_timestamp(source, -1)


def earliest_timestamp(source: SourceConfig) -> datetime | None:
    return _edge_timestamp(source, 1)


def _edge_timestamp(source: SourceConfig, direction: int) -> datetime | None:
    docs = collection(source.conn_id, source.database, source.collection)
    field, declared = source.timestamp_field, source.timestamp_type
    edge = docs.find_one(
        {field: TYPE_RANGES[timestamps.BSON_TYPES[declared]]}, sort=[(field, direction)], projection={field: 1}
    )
    return timestamps.from_stored(edge[field], declared) if edge else None


def sample_documents(source: SourceConfig, size: int) -> list[dict[str, Any]]:
    """Up to ``size`` documents picked at random by the server (``$sample``)."""
    docs = collection(source.conn_id, source.database, source.collection)
    return list(docs.aggregate([{"$sample": {"size": size}}]))


def id_types(source: SourceConfig) -> dict[str, int]:
    """How many documents have an id of each BSON type (``objectId``, ``string``, ``int``, ...)."""
    docs = collection(source.conn_id, source.database, source.collection)
    groups = docs.aggregate([{"$group": {"_id": {"$type": f"${source.id_field}"}, "count": {"$sum": 1}}}])
    return {group["_id"]: group["count"] for group in groups}


def stamped_after(source: SourceConfig, moment: datetime, examples: int = 3) -> tuple[int, list[str]]:
    """How many documents carry a timestamp after ``moment``, and a few of their ids."""
    docs = collection(source.conn_id, source.database, source.collection)
    layout = layout_of(docs, source.timestamp_field, source.timestamp_type)
    query = {source.timestamp_field: {"$gt": timestamps.to_stored(moment, source.timestamp_type, layout)}}
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


UNAUTHORIZED = 13  # MongoDB's error code for a command the user's roles do not allow


def denied(error: BaseException, conn_id: str, collections: dict[str, list[str]], fix: str) -> str | None:
    """One sentence for a MongoDB permission error: the user, what it may not do where, and ``fix``
    (``collections``: database -> the collections the pipeline uses there); None for any other error."""
    from pymongo.errors import OperationFailure

    if not isinstance(error, OperationFailure) or error.code != UNAUTHORIZED:
        return None
    message = (error.details or {}).get("errmsg") or str(error)
    found = re.search(r"not authorized on (\S+) to execute command.*?(?:action: (\w+)|\{ ?(\w+):)", message)
    database = found.group(1) if found else "?"
    action = (found and (found.group(2) or found.group(3))) or "run this command"
    used = collections.get(database)
    where = f"database {database}" + (f" (the model's {', '.join(used)} there)" if used else "")
    return f"MongoDB user {login_of(conn_id)!r} (connection {conn_id}) may not {action} in {where}: {fix}"


def login_of(conn_id: str) -> str:
    from airflow.sdk.bases.hook import BaseHook

    try:
        return BaseHook.get_connection(conn_id).login or "(no login)"
    except Exception:
        return "(unknown)"


HISTORY_FIELDS = ("checked_at", "status", "columns", "performance", "champion_version", "dag_id", "run_id")


def drift_history(conn_id: str, database: str, name: str, model_name: str, limit: int) -> list[dict[str, Any]]:
    """The model's ``limit`` newest drift checks, oldest first, with only the fields a history chart needs
    (bounded: never the whole collection)."""
    newest = client(conn_id)[database][name].find(
        {"model_name": model_name},
        dict.fromkeys(HISTORY_FIELDS, 1) | {"_id": 0},
        sort=[("checked_at", -1)],
        limit=limit,
    )
    return [doc | {"checked_at": _utc(doc["checked_at"])} for doc in reversed(list(newest))]


DUPLICATE_KEY = 11000


def insert_new(conn_id: str, database: str, name: str, docs: list[dict[str, Any]]) -> int:
    """Insert ``docs`` (each with its ``_id``); one whose ``_id`` is there already, from an earlier try or a
    concurrent run, is left as it is. Returns how many were inserted."""
    from pymongo.errors import BulkWriteError

    if not docs:
        return 0
    try:
        return len(collection(conn_id, database, name).insert_many(docs, ordered=False).inserted_ids)
    except BulkWriteError as error:
        if any(problem["code"] != DUPLICATE_KEY for problem in error.details["writeErrors"]):
            raise
        return int(error.details["nInserted"])


def present_ids(conn_id: str, database: str, name: str, ids: list[str]) -> set[str]:
    """Which of these ``_id`` values the collection holds."""
    return {doc["_id"] for doc in collection(conn_id, database, name).find({"_id": {"$in": ids}}, {"_id": 1})}


def scores_by_document(conn_id: str, database: str, name: str, prediction_ids: list[str], chunk: int = 10_000) -> dict:
    """document id -> the ``score`` of the predictions with these ``_id`` values, that exist."""
    predictions = collection(conn_id, database, name)
    found: dict[str, Any] = {}
    for first in range(0, len(prediction_ids), chunk):
        query = {"_id": {"$in": prediction_ids[first : first + chunk]}}
        found.update(
            (doc["document_id"], doc["score"]) for doc in predictions.find(query, {"document_id": 1, "score": 1})
        )
    return found
