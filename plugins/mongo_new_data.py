"""Wait for new documents in a MongoDB collection: a deferrable sensor and its trigger.

Airflow appends the plugins folder to ``sys.path`` in every component (scheduler, dag-processor,
workers, triggerer) and loads this file as the module ``mongo_new_data``, so DAGs import
``from mongo_new_data import MongoNewDataSensor`` and the triggerer finds the trigger by that classpath.

Only the Airflow classes live here. The query itself is ``include.retraining.adapters.mongo.new_documents``
(the one home of MongoDB access): poke mode calls it directly, the trigger in a thread so the
triggerer's event loop never blocks. The sensor returns ``{"count", "watermark", "latest"}``: the
window (watermark, latest] that woke it up. The adapter is imported lazily: this module is imported
at DAG parse time.
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

    from include.retraining.adapters.mongo import NewDocuments

TRIGGER_CLASSPATH = "mongo_new_data.MongoNewDataTrigger"
# The trigger's own deadline ends the wait with a "timeout" event (a skip). Airflow's deferral timeout
# is only a backstop for a triggerer that is down, so it gets this much slack on top.
DEFERRAL_GRACE = timedelta(minutes=5)


def probe(
    conn_id: str,
    database: str,
    collection: str,
    timestamp_field: str,
    watermark: str | datetime,
    min_documents: int,
    grace_seconds: float,
    timestamp_type: str = "date",
) -> NewDocuments:
    from include.retraining.adapters import mongo

    grace = timedelta(seconds=grace_seconds)
    moment = mongo.as_watermark(watermark)
    return mongo.new_documents(
        conn_id, database, collection, timestamp_field, moment, min_documents, grace, timestamp_type
    )


def window(found: NewDocuments, watermark: str | datetime) -> dict[str, Any]:
    from include.retraining.adapters.mongo import as_watermark

    start = as_watermark(watermark).isoformat()
    return {"count": found.count, "watermark": start, "latest": found.latest, "future": found.future}


class MongoNewDataTrigger(BaseTrigger):
    """Poll until ``min_documents`` documents have ``timestamp_field`` after ``watermark``.

    Yields exactly one event: ``new_data`` (count, watermark, latest), ``timeout`` once ``timeout_at``
    has passed, or ``error`` when waiting could never succeed (missing collection, undated documents).
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
        grace_seconds: float = 0.0,
        timestamp_type: str = "date",
    ) -> None:
        super().__init__()
        self.conn_id = conn_id
        self.database = database
        self.collection = collection
        self.timestamp_field = timestamp_field
        self.watermark = watermark
        self.min_documents = int(min_documents)
        self.poke_interval = float(poke_interval)
        self.timeout_at = timeout_at
        self.grace_seconds = float(grace_seconds)
        self.timestamp_type = timestamp_type

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
            "grace_seconds": self.grace_seconds,
            "timestamp_type": self.timestamp_type,
        }

    async def run(self) -> AsyncIterator[TriggerEvent]:
        yield TriggerEvent(await self._wait())

    async def _wait(self) -> dict[str, Any]:
        last_count = None
        while True:
            found = await asyncio.to_thread(
                probe,
                self.conn_id,
                self.database,
                self.collection,
                self.timestamp_field,
                self.watermark,
                self.min_documents,
                self.grace_seconds,
                self.timestamp_type,
            )
            self._log_poll(found.count, last_count)
            last_count = found.count
            if found.count >= self.min_documents:
                self.log.info(
                    "%d new documents in %s.%s, latest %s", found.count, self.database, self.collection, found.latest
                )
                return {"status": "new_data", **window(found, self.watermark)}
            if found.problem:
                return {"status": "error", "message": found.problem}
            remaining = self._seconds_left()
            if remaining is not None and remaining <= 0:
                return self._timeout(found.count)
            await asyncio.sleep(self.poke_interval if remaining is None else min(self.poke_interval, remaining))

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


class MongoNewDataSensor(BaseSensorOperator):
    """Wait until at least ``min_documents`` documents have ``timestamp_field`` after ``watermark``; the field
    is compared in its stored form, ``timestamp_type`` (date, iso_string, epoch_seconds, epoch_millis).

    Returns (XCom) ``{"count", "watermark", "latest", "future"}``: the new documents are the window
    (watermark, latest], where ``latest`` is at most now - ``grace_seconds`` (later ones may still be
    overtaken by a late writer); ``future`` counts documents stamped beyond now + grace. Waiting past
    ``timeout`` ends the task **skipped** (never failed), so a monitoring loop simply goes on; a missing
    collection or undated documents fail it with a message.
    Deferrable by default (the wait runs in the triggerer); ``deferrable=False`` pokes in a worker slot
    (``mode="reschedule"`` frees it between pokes).
    """

    template_fields: Sequence[str] = (
        "watermark",
        "database",
        "collection",
        "timestamp_field",
        "min_documents",
        "grace_seconds",
        "timestamp_type",
    )

    def __init__(
        self,
        *,
        database: str,
        collection: str,
        watermark: str | datetime,
        mongo_conn_id: str = "mongo_default",
        timestamp_field: str = "ingested_at",
        timestamp_type: str = "date",
        min_documents: int | str = 1,
        grace_seconds: float | str = 0.0,
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
        self.timestamp_type = timestamp_type
        self.watermark = watermark
        self.min_documents = min_documents
        self.grace_seconds = grace_seconds
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
        from include.retraining.adapters.mongo import as_watermark

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
            grace_seconds=float(self.grace_seconds),
            timestamp_type=self.timestamp_type,
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        status = event.get("status")
        if status == "new_data":
            return {key: event[key] for key in ("count", "watermark", "latest", "future")}
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
        found = probe(
            self.mongo_conn_id,
            self.database,
            self.collection,
            self.timestamp_field,
            self.watermark,
            self._min_documents(),
            float(self.grace_seconds),
            self.timestamp_type,
        )
        self.log.info("%s.%s: %d new documents after %s", self.database, self.collection, found.count, self.watermark)
        if found.count >= self._min_documents():
            return PokeReturnValue(True, window(found, self.watermark))
        if found.problem:
            raise AirflowException(found.problem)
        return PokeReturnValue(is_done=False)

    def _min_documents(self) -> int:
        # Templated, so it may arrive as a string.
        count = int(self.min_documents)
        if count < 1:
            raise ValueError(f"min_documents must be at least 1, got {count}")
        return count
