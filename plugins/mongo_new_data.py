"""Wait for new documents in a MongoDB collection: a deferrable sensor and its trigger.

Airflow appends the plugins folder to ``sys.path`` in every component (scheduler, dag-processor,
workers, triggerer) and loads this file as the module ``mongo_new_data``, so DAGs import
``from mongo_new_data import MongoNewDataSensor`` and the triggerer finds the trigger by that classpath.

A document is *new* when ``timestamp_field`` holds a date strictly after the watermark. The sensor
returns ``{"count", "watermark", "latest"}``: the window (watermark, latest] that woke it up, which the
extract can read with the same half-open bounds. pymongo and the Mongo provider are imported lazily:
this module is imported at DAG parse time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout, AirflowSkipException
from airflow.triggers.base import BaseTrigger, TriggerEvent

if TYPE_CHECKING:
    from airflow.sdk import Context
    from pymongo import AsyncMongoClient
    from pymongo.asynchronous.collection import AsyncCollection
    from pymongo.asynchronous.database import AsyncDatabase

TRIGGER_CLASSPATH = "mongo_new_data.MongoNewDataTrigger"
# The trigger's own deadline ends the wait with a "timeout" event (a skip). Airflow's deferral timeout
# is only a backstop for a triggerer that is down, so it gets this much slack on top.
DEFERRAL_GRACE = timedelta(minutes=5)


# --- values shared by the trigger (async) and poke mode (sync) ---------------------------------------


def as_watermark(value: str | datetime) -> datetime:
    """A tz-aware datetime from an ISO string or a datetime; naive values are refused, not guessed."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime):
        raise ValueError(f"watermark must be an ISO datetime string or a datetime, got {value!r}")
    if moment.tzinfo is None:
        raise ValueError(f"watermark {value!r} has no time zone: pass e.g. '2024-01-01T00:00:00+00:00'")
    return moment.astimezone(UTC)


def new_documents_filter(timestamp_field: str, watermark: datetime) -> dict[str, Any]:
    # $gt, not $gte: a document stamped exactly at the watermark belongs to the previous window.
    return {timestamp_field: {"$gt": watermark}}


def as_utc_iso(moment: datetime) -> str:
    # pymongo decodes BSON dates as naive UTC unless the client sets tz_aware.
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def missing_collection_message(database: str, collection: str) -> str:
    return (
        f"collection {database}.{collection} does not exist: check the sensor's database/collection "
        "(and the Mongo connection) or start the ingestion that writes there"
    )


def undated_documents_message(database: str, collection: str, timestamp_field: str) -> str:
    return (
        f"no document in {database}.{collection} has a date in field {timestamp_field!r} (missing, or "
        "stored as a string?): set timestamp_field to the ingestion-time field, stored as a BSON date"
    )


# --- the trigger --------------------------------------------------------------------------------------


class MongoNewDataTrigger(BaseTrigger):
    """Poll ``count_documents({timestamp_field: {"$gt": watermark}})`` until ``min_documents`` arrive.

    Yields exactly one event: ``new_data`` (count, watermark, latest), ``timeout`` once ``timeout_at``
    has passed, or ``error`` when the collection is missing or none of its documents has a date in
    ``timestamp_field`` (waiting could never succeed).
    """

    def __init__(
        self,
        conn_id: str,
        database: str,
        collection: str,
        timestamp_field: str,
        watermark: str,
        min_documents: int = 1,
        poke_interval: float = 60.0,
        timeout_at: str | None = None,
    ) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.database = database
        self.collection = collection
        self.timestamp_field = timestamp_field
        self.watermark = as_watermark(watermark).isoformat()
        self.min_documents = int(min_documents)
        self.poke_interval = float(poke_interval)
        self.timeout_at = timeout_at

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return TRIGGER_CLASSPATH, {
            "conn_id": self.conn_id,
            "database": self.database,
            "collection": self.collection,
            "timestamp_field": self.timestamp_field,
            "watermark": self.watermark,
            "min_documents": self.min_documents,
            "poke_interval": self.poke_interval,
            "timeout_at": self.timeout_at,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        client = await self._connect()
        try:
            event = await self._wait(client[self.database])
        finally:
            await client.close()
        yield TriggerEvent(event)

    async def _connect(self) -> AsyncMongoClient:
        return await async_mongo_client(self.conn_id)

    async def _wait(self, db: AsyncDatabase) -> dict[str, Any]:
        docs = db[self.collection]
        query = new_documents_filter(self.timestamp_field, as_watermark(self.watermark))
        source_checked, last_count = False, None
        while True:
            count = await docs.count_documents(query)
            self._log_poll(count, last_count)
            last_count = count
            if count >= self.min_documents:
                return await self._new_data(docs, query, count)
            if not source_checked:
                problem, source_checked = await self._check_source(db, docs)
                if problem:
                    return {"status": "error", "message": problem}
            remaining = self._seconds_left()
            if remaining is not None and remaining <= 0:
                return self._timeout(count)
            await asyncio.sleep(self.poke_interval if remaining is None else min(self.poke_interval, remaining))

    async def _new_data(self, docs: AsyncCollection, query: dict[str, Any], count: int) -> dict[str, Any]:
        newest = await docs.find_one(query, {self.timestamp_field: 1, "_id": 0}, sort=[(self.timestamp_field, -1)])
        latest = as_utc_iso(newest[self.timestamp_field])
        self.log.info("%d new documents in %s.%s, latest %s", count, self.database, self.collection, latest)
        return {"status": "new_data", "count": count, "watermark": self.watermark, "latest": latest}

    async def _check_source(self, db: AsyncDatabase, docs: AsyncCollection) -> tuple[str | None, bool]:
        """(problem, verified): verified once a dated document proves the field right; until then an
        empty collection is no problem (it may fill up), but an undated or missing one is.
        authorizedCollections lets a read-only user without the listCollections privilege ask."""
        if not await db.list_collection_names(filter={"name": self.collection}, authorizedCollections=True):
            return missing_collection_message(self.database, self.collection), False
        if await docs.find_one({self.timestamp_field: {"$type": "date"}}, {"_id": 1}) is not None:
            return None, True
        if await docs.find_one({}, {"_id": 1}) is None:
            return None, False
        return undated_documents_message(self.database, self.collection, self.timestamp_field), False

    def _timeout(self, count: int) -> dict[str, Any]:
        return {
            "status": "timeout",
            "count": count,
            "min_documents": self.min_documents,
            "watermark": self.watermark,
            "message": f"{count} of {self.min_documents} new documents in {self.database}.{self.collection} "
            f"after {self.watermark} by {self.timeout_at}",
        }

    def _seconds_left(self) -> float | None:
        if self.timeout_at is None:
            return None
        return (datetime.fromisoformat(self.timeout_at) - datetime.now(UTC)).total_seconds()

    def _log_poll(self, count: int, last_count: int | None) -> None:
        # One info line when the count moves, debug otherwise: a day of 60 s polls stays readable.
        level = self.log.info if count != last_count else self.log.debug
        level(
            "%s.%s: %d new documents after %s (waiting for %d)",
            self.database,
            self.collection,
            count,
            self.watermark,
            self.min_documents,
        )


async def async_mongo_client(conn_id: str) -> AsyncMongoClient:
    """An ``AsyncMongoClient`` for an Airflow connection, without blocking the triggerer's event loop.

    The connection is fetched with the Task SDK's async lookup; MongoHook itself then builds the URI
    and client options (srv, credentials, schema, extras, allow_insecure), so both paths agree.
    """
    from airflow.providers.mongo.hooks.mongo import MongoHook
    from pymongo import AsyncMongoClient

    connection = await MongoHook.aget_connection(conn_id)
    hook = _hook_for(MongoHook, connection)
    # The same options MongoHook.get_conn passes to the sync MongoClient.
    options = dict(hook.extras)
    if hook.allow_insecure:
        options["tlsAllowInvalidCertificates"] = True
    return AsyncMongoClient(hook.uri, **options)


def _hook_for(hook_class: type, connection: Any) -> Any:
    """A MongoHook over an already fetched connection: its __init__ otherwise does a sync lookup."""

    class PrefetchedMongoHook(hook_class):
        def get_connection(self, conn_id: str) -> Any:
            return connection

    return PrefetchedMongoHook(mongo_conn_id=connection.conn_id)


# --- the sensor ---------------------------------------------------------------------------------------


class MongoNewDataSensor(BaseSensorOperator):
    """Wait until at least ``min_documents`` documents have ``timestamp_field`` after ``watermark``.

    Returns (XCom) ``{"count": int, "watermark": iso, "latest": iso}``: the new documents are the window
    (watermark, latest]. Waiting past ``timeout`` ends the task **skipped** (never failed), so a
    monitoring loop simply goes on; a missing collection or undated documents fail it with a message.
    Deferrable by default (the wait runs in the triggerer); ``deferrable=False`` pokes with the sync
    MongoHook in a worker slot (``mode="reschedule"`` frees it between pokes).
    """

    template_fields: Sequence[str] = ("watermark", "database", "collection", "timestamp_field", "min_documents")

    def __init__(
        self,
        *,
        database: str,
        collection: str,
        watermark: str | datetime,
        mongo_conn_id: str = "mongo_default",
        timestamp_field: str = "ingested_at",
        min_documents: int | str = 1,
        poke_interval: timedelta | float = 60,
        timeout: timedelta | float = timedelta(hours=24),
        deferrable: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.mongo_conn_id = mongo_conn_id
        self.database = database
        self.collection = collection
        self.timestamp_field = timestamp_field
        self.watermark = watermark
        self.min_documents = min_documents
        self.deferrable = deferrable

    def execute(self, context: Context) -> Any:
        if self.deferrable:
            self.defer(
                trigger=self.new_data_trigger(),
                method_name="execute_complete",
                timeout=timedelta(seconds=self.timeout) + DEFERRAL_GRACE,
            )
        try:  # poke mode: the base class loops over poke()
            return super().execute(context)
        except AirflowSensorTimeout as timeout:
            raise AirflowSkipException(f"no new data in time: {timeout}") from timeout

    def new_data_trigger(self, now: datetime | None = None) -> MongoNewDataTrigger:
        deadline = (now or datetime.now(UTC)) + timedelta(seconds=self.timeout)
        return MongoNewDataTrigger(
            conn_id=self.mongo_conn_id,
            database=self.database,
            collection=self.collection,
            timestamp_field=self.timestamp_field,
            watermark=as_watermark(self.watermark).isoformat(),
            min_documents=self._min_documents(),
            poke_interval=self.poke_interval,
            timeout_at=deadline.isoformat(),
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        status = event.get("status")
        if status == "new_data":
            return {key: event[key] for key in ("count", "watermark", "latest")}
        if status == "timeout":
            raise AirflowSkipException(f"no new data in time: {event.get('message', event)}")
        raise AirflowException(event.get("message") or f"unexpected trigger event {event!r}")

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        # The base class turns Airflow's deferral timeout (triggerer down past the backstop) into
        # AirflowSensorTimeout, a failure unless soft_fail: a timeout here is always a skip.
        try:
            return super().resume_execution(next_method, next_kwargs, context)
        except AirflowSensorTimeout as timeout:
            raise AirflowSkipException(f"no new data in time: {timeout}") from timeout

    def poke(self, context: Context) -> PokeReturnValue:
        from airflow.providers.mongo.hooks.mongo import MongoHook

        watermark = as_watermark(self.watermark)
        query = new_documents_filter(self.timestamp_field, watermark)
        with MongoHook(mongo_conn_id=self.mongo_conn_id) as hook:
            db = hook.get_conn()[self.database]
            docs = db[self.collection]
            count = docs.count_documents(query)
            self.log.info("%s.%s: %d new documents after %s", self.database, self.collection, count, watermark)
            if count < self._min_documents():
                self._raise_on_source_problem(db, docs)
                return PokeReturnValue(is_done=False)
            newest = docs.find_one(query, {self.timestamp_field: 1, "_id": 0}, sort=[(self.timestamp_field, -1)])
        latest = as_utc_iso(newest[self.timestamp_field])
        return PokeReturnValue(True, {"count": count, "watermark": watermark.isoformat(), "latest": latest})

    def _raise_on_source_problem(self, db: Any, docs: Any) -> None:
        if not db.list_collection_names(filter={"name": self.collection}, authorizedCollections=True):
            raise AirflowException(missing_collection_message(self.database, self.collection))
        dated = docs.find_one({self.timestamp_field: {"$type": "date"}}, {"_id": 1})
        if dated is None and docs.find_one({}, {"_id": 1}) is not None:
            raise AirflowException(undated_documents_message(self.database, self.collection, self.timestamp_field))

    def _min_documents(self) -> int:
        # Templated, so it may arrive as a string.
        count = int(self.min_documents)
        if count < 1:
            raise ValueError(f"min_documents must be at least 1, got {count}")
        return count
