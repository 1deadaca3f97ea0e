"""The new-data trigger's polling logic (the MongoDB adapter's probe over a small in-memory collection),
and the sensor's defer/resume contract. No network: the integration test runs the same trigger against
SecantusDB."""

from __future__ import annotations

import asyncio
import importlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowSkipException, TaskDeferred
from mongo_new_data import TRIGGER_CLASSPATH, MongoNewDataSensor, MongoNewDataTrigger

from include.retraining.adapters import mongo

WATERMARK = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    """A timestamp relative to the watermark, naive UTC as pymongo decodes BSON dates."""
    return (WATERMARK + timedelta(minutes=minutes)).replace(tzinfo=None)


# --- a narrow fake of the pymongo API the adapter's probe uses -----------------------------------------


def _matches(doc: dict[str, Any], query: dict[str, Any]) -> bool:
    for field, condition in query.items():
        value = doc.get(field)
        if not isinstance(value, datetime):
            return False
        if "$gt" in condition and not value.replace(tzinfo=UTC) > condition["$gt"]:
            return False
        if "$lte" in condition and not value.replace(tzinfo=UTC) <= condition["$lte"]:
            return False
    return True


class FakeCollection:
    def __init__(self, docs: list[dict[str, Any]], arrivals: dict[int, list[dict[str, Any]]] | None = None):
        self.docs = docs
        self.arrivals = arrivals or {}  # poll number -> documents inserted just before it
        self.polls = 0

    def count_documents(self, query: dict[str, Any]) -> int:
        if any("$lte" in condition for condition in query.values()):  # the probe's settled count: one per poll
            self.polls += 1
            self.docs.extend(self.arrivals.pop(self.polls, []))
        return sum(_matches(doc, query) for doc in self.docs)

    def find_one(self, query: dict[str, Any], projection: Any = None, sort: Any = None) -> Any:
        hits = [doc for doc in self.docs if _matches(doc, query)]
        if sort:
            (field, direction), *_ = sort
            hits.sort(key=lambda doc: doc[field], reverse=direction < 0)
        return hits[0] if hits else None


class FakeDatabase:
    def __init__(self, collections: dict[str, FakeCollection]):
        self.collections = collections
        self.name = "insurance"

    def __getitem__(self, name: str) -> FakeCollection:
        # Like MongoDB, a missing collection reads as empty.
        return self.collections.get(name, FakeCollection([]))

    def list_collection_names(self, filter: dict[str, Any], **options: Any) -> list[str]:
        return [name for name in self.collections if name == filter["name"]]


class FakeClient:
    def __init__(self, collections: dict[str, FakeCollection]):
        self.database = FakeDatabase(collections)

    def __getitem__(self, database: str) -> FakeDatabase:
        return self.database


def trigger_for(**overrides: Any) -> MongoNewDataTrigger:
    kwargs: dict[str, Any] = {
        "conn_id": "mongo_default",
        "database": "insurance",
        "collection": "events",
        "timestamp_field": "ingested_at",
        "watermark": WATERMARK.isoformat(),
        "min_documents": 1,
        "poke_interval": 0.01,
        "timeout_at": (datetime.now(UTC) + timedelta(seconds=5)).isoformat(),
    }
    return MongoNewDataTrigger(**{**kwargs, **overrides})


@pytest.fixture
def run_trigger(monkeypatch):
    def run(trigger: MongoNewDataTrigger, client: FakeClient) -> list[dict[str, Any]]:
        async def collect() -> list[dict[str, Any]]:
            return [event.payload async for event in trigger.run()]

        monkeypatch.setattr(mongo, "client", lambda conn_id: client)
        return asyncio.run(collect())

    return run


def docs_at(*minutes: float, field: str = "ingested_at") -> list[dict[str, Any]]:
    return [{field: at(m)} for m in minutes]


# --- trigger -----------------------------------------------------------------------------------------


def test_trigger_fires_with_count_and_latest_of_new_documents(run_trigger):
    client = FakeClient({"events": FakeCollection(docs_at(-5, 0, 1, 7, 3))})

    events = run_trigger(trigger_for(min_documents=3), client)

    assert events == [
        {
            "status": "new_data",
            "count": 3,  # the document stamped exactly at the watermark is not new
            "watermark": WATERMARK.isoformat(),
            "latest": (WATERMARK + timedelta(minutes=7)).isoformat(),
            "future": 0,
        }
    ]


def test_trigger_keeps_polling_until_enough_documents_arrive(run_trigger):
    events_collection = FakeCollection(docs_at(1), arrivals={3: docs_at(2), 4: docs_at(4)})

    events = run_trigger(trigger_for(min_documents=3), FakeClient({"events": events_collection}))

    assert events_collection.polls == 4
    assert events[0]["count"] == 3
    assert events[0]["latest"] == (WATERMARK + timedelta(minutes=4)).isoformat()


def test_trigger_times_out_with_the_count_so_far(run_trigger):
    events_collection = FakeCollection(docs_at(-1, 1))
    deadline = (datetime.now(UTC) + timedelta(seconds=0.1)).isoformat()

    events = run_trigger(trigger_for(min_documents=5, timeout_at=deadline), FakeClient({"events": events_collection}))

    assert len(events) == 1
    assert events[0]["status"] == "timeout"
    assert (events[0]["count"], events[0]["min_documents"]) == (1, 5)
    assert events_collection.polls > 2  # it polled, then gave up


def test_trigger_waits_on_an_empty_collection_instead_of_failing(run_trigger):
    deadline = (datetime.now(UTC) + timedelta(seconds=0.05)).isoformat()

    events = run_trigger(trigger_for(timeout_at=deadline), FakeClient({"events": FakeCollection([])}))

    assert events[0]["status"] == "timeout"


def test_trigger_reports_a_missing_collection(run_trigger):
    client = FakeClient({"other": FakeCollection(docs_at(1))})

    (event,) = run_trigger(trigger_for(), client)

    assert event["status"] == "error"
    assert "insurance.events does not exist" in event["message"]


@pytest.mark.parametrize(
    "docs",
    [
        pytest.param([{"created": at(1)}], id="field-absent"),
        pytest.param([{"ingested_at": "2024-03-01T13:00:00+00:00"}], id="field-is-a-string"),
    ],
)
def test_trigger_reports_documents_without_a_date_in_the_field(docs, run_trigger):
    (event,) = run_trigger(trigger_for(), FakeClient({"events": FakeCollection(docs)}))

    assert event["status"] == "error"
    assert "insurance.events" in event["message"]
    assert "'ingested_at'" in event["message"]


def test_trigger_serializes_to_its_plugin_classpath_and_back():
    classpath, kwargs = trigger_for(min_documents=4, timeout_at=None).serialize()

    module, name = classpath.rsplit(".", 1)  # how the triggerer finds it: the plugins folder is on sys.path
    assert classpath == TRIGGER_CLASSPATH == "mongo_new_data.MongoNewDataTrigger"
    assert getattr(importlib.import_module(module), name)(**kwargs).serialize() == (classpath, kwargs)
    assert kwargs["watermark"] == WATERMARK.isoformat()


def test_client_is_built_by_the_mongo_hook_from_the_connection(monkeypatch):
    conn = '{"conn_type": "mongo", "host": "db.example", "port": 27018, "login": "ml", "password": "p/w",'
    conn += ' "schema": "insurance", "extra": {"srv": false, "connectTimeoutMS": 1234}}'
    monkeypatch.setenv("AIRFLOW_CONN_MONGO_UNIT", conn)

    client = mongo.client("mongo_unit")  # connects lazily: no network here
    seeds = set(client.topology_description.server_descriptions())
    connect_timeout = client.options.pool_options.connect_timeout
    client.close()

    assert seeds == {("db.example", 27018)}
    assert connect_timeout == 1.234  # extras become client options, as in MongoHook.get_conn


# --- sensor ------------------------------------------------------------------------------------------


def sensor(**overrides: Any) -> MongoNewDataSensor:
    kwargs: dict[str, Any] = {
        "task_id": "wait_for_new_data",
        "database": "insurance",
        "collection": "events",
        "watermark": WATERMARK.isoformat(),
    }
    return MongoNewDataSensor(**{**kwargs, **overrides})


def test_execute_defers_to_the_trigger_with_a_deadline_and_a_backstop():
    task = sensor(min_documents="3", poke_interval=30, timeout=600, watermark=WATERMARK)  # as rendered
    before = datetime.now(UTC)

    with pytest.raises(TaskDeferred) as deferred:
        task.execute(context={})

    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.timeout > timedelta(seconds=600)  # Airflow's own timeout only as a backstop
    classpath, kwargs = deferred.value.trigger.serialize()
    deadline = datetime.fromisoformat(kwargs.pop("timeout_at"))
    assert timedelta(seconds=600) <= deadline - before < timedelta(seconds=610)
    assert (classpath, kwargs) == (
        TRIGGER_CLASSPATH,
        {
            "conn_id": "mongo_default",
            "database": "insurance",
            "collection": "events",
            "timestamp_field": "ingested_at",
            "watermark": WATERMARK.isoformat(),
            "min_documents": 3,
            "poke_interval": 30.0,
            "grace_seconds": 0.0,
            "timestamp_type": "date",
        },
    )


def test_execute_refuses_a_watermark_without_time_zone():
    with pytest.raises(ValueError, match="no time zone"):
        sensor(watermark="2024-03-01T12:00:00").execute(context={})


def test_execute_complete_returns_the_window_on_new_data():
    event = {"status": "new_data", "count": 3, "watermark": "w", "latest": "l", "future": 0, "extra": 1}

    window = {"count": 3, "watermark": "w", "latest": "l", "future": 0}
    assert sensor().execute_complete(context={}, event=event) == window


def test_execute_complete_skips_on_timeout():
    with pytest.raises(AirflowSkipException, match="2 of 5"):
        sensor().execute_complete(context={}, event={"status": "timeout", "count": 2, "message": "2 of 5 new"})


def test_execute_complete_fails_with_the_trigger_message_on_error():
    with pytest.raises(AirflowException, match="does not exist") as raised:
        sensor().execute_complete(context={}, event={"status": "error", "message": "x.y does not exist"})

    assert not isinstance(raised.value, AirflowSkipException)


def test_deferral_timeout_backstop_skips_too():
    from airflow.sdk.bases.operator import TRIGGER_FAIL_REPR, TriggerFailureReason

    kwargs = {"error": TriggerFailureReason.TRIGGER_TIMEOUT}
    with pytest.raises(AirflowSkipException):
        sensor().resume_execution(TRIGGER_FAIL_REPR, kwargs, context={})


def test_poke_mode_timeout_skips(monkeypatch):
    task = sensor(deferrable=False, timeout=0, poke_interval=0)
    monkeypatch.setattr(task, "poke", lambda context: False)

    with pytest.raises(AirflowSkipException, match="no new data in time"):
        task.execute(context={})


def test_poke_mode_returns_the_window_once_enough_documents_are_new(monkeypatch):
    client = FakeClient({"events": FakeCollection(docs_at(-1, 2, 5))})
    monkeypatch.setattr(mongo, "client", lambda conn_id: client)

    waiting = sensor(deferrable=False, min_documents=3).poke(context={})
    done = sensor(deferrable=False, min_documents=2).poke(context={})

    assert waiting.is_done is False
    assert done.is_done is True
    latest = (WATERMARK + timedelta(minutes=5)).isoformat()
    assert done.xcom_value == {"count": 2, "watermark": WATERMARK.isoformat(), "latest": latest, "future": 0}


def test_documents_within_the_grace_period_wait_and_future_ones_are_reported(monkeypatch):
    now = datetime.now(UTC)
    docs = [
        {"ingested_at": (now + delta).replace(tzinfo=None)}
        for delta in (
            timedelta(minutes=-10),  # settled: counted
            timedelta(seconds=-30),  # within the 2-minute grace: a late writer may still overtake it
            timedelta(hours=3),  # future-dated: reported, never in a window yet
        )
    ]
    monkeypatch.setattr(mongo, "client", lambda conn_id: FakeClient({"events": FakeCollection(docs)}))
    watermark = (now - timedelta(hours=1)).isoformat()

    result = sensor(deferrable=False, watermark=watermark, grace_seconds=120).poke(context={})

    assert result.xcom_value["count"] == 1
    assert result.xcom_value["future"] == 1
    assert datetime.fromisoformat(result.xcom_value["latest"]) <= now - timedelta(minutes=2)


def test_poke_mode_fails_on_a_missing_collection(monkeypatch):
    monkeypatch.setattr(mongo, "client", lambda conn_id: FakeClient({}))

    with pytest.raises(AirflowException, match=r"insurance\.events does not exist"):
        sensor(deferrable=False).poke(context={})
