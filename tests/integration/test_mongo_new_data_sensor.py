"""The new-data trigger's real ``run()`` against SecantusDB from the local stack, one fresh collection per
test. Needs ``set -a && source .local/stack.env && set +a`` (AIRFLOW_CONN_MONGO_DEFAULT)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from mongo_new_data import MongoNewDataTrigger

from include.retraining.adapters import mongo

pytestmark = pytest.mark.integration

CONN_ID = "mongo_default"  # the pipeline's least-privilege user, as the triggerer polls
ADMIN_CONN_ID = "mongo_admin"  # writes the documents and grants the pipeline role read access
DATABASE = "sensor_it"
# Milliseconds: what a BSON date keeps, so timestamps read back compare equal.
WATERMARK = datetime(2024, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)


@pytest.fixture
def collection() -> Iterator[str]:
    from airflow.providers.mongo.hooks.mongo import MongoHook

    from include.retraining.adapters import mongo_setup
    from include.retraining.core.config import load_config

    name = f"new_data_{uuid.uuid4().hex[:12]}"
    # the pipeline role may read it; no index, so the collection does not exist until a test inserts
    config = load_config({"source": {"database": DATABASE, "collection": name}})
    mongo_setup.ensure_role(config, mongo.client(ADMIN_CONN_ID))
    yield name
    with MongoHook(mongo_conn_id=ADMIN_CONN_ID) as hook:
        hook.get_conn()[DATABASE].drop_collection(name)


def docs_at(*seconds: float) -> list[dict[str, Any]]:
    return [{"ingested_at": WATERMARK + timedelta(seconds=s), "n": i} for i, s in enumerate(seconds)]


async def insert(collection: str, docs: list[dict[str, Any]]) -> None:
    await asyncio.to_thread(mongo.client(ADMIN_CONN_ID)[DATABASE][collection].insert_many, docs)


def trigger_for(collection: str, *, timeout: float = 5, **overrides: Any) -> MongoNewDataTrigger:
    kwargs: dict[str, Any] = {
        "conn_id": CONN_ID,
        "database": DATABASE,
        "collection": collection,
        "timestamp_field": "ingested_at",
        "watermark": WATERMARK.isoformat(),
        "min_documents": 1,
        "poke_interval": 0.2,
        "timeout_at": (datetime.now(UTC) + timedelta(seconds=timeout)).isoformat(),
    }
    return MongoNewDataTrigger(**{**kwargs, **overrides})


async def first_event(trigger: MongoNewDataTrigger) -> dict[str, Any]:
    async def collect() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    (event,) = await asyncio.wait_for(collect(), timeout=15)
    return event


def test_fires_with_the_count_and_latest_of_new_documents(collection):
    asyncio.run(insert(collection, docs_at(-60, -1, 1, 30.5, 2)))
    # The same instant written with another offset: the watermark is normalised to UTC.
    watermark = WATERMARK.astimezone(timezone(timedelta(hours=2))).isoformat()

    event = asyncio.run(first_event(trigger_for(collection, watermark=watermark, min_documents=3)))

    assert event == {
        "status": "new_data",
        "count": 3,
        "watermark": WATERMARK.isoformat(),
        "latest": (WATERMARK + timedelta(seconds=30.5)).isoformat(),
        "future": 0,
    }


def test_documents_at_or_before_the_watermark_are_not_new(collection):
    asyncio.run(insert(collection, docs_at(-3600, -0.001, 0, 0.001)))

    fired = asyncio.run(first_event(trigger_for(collection)))
    waited = asyncio.run(first_event(trigger_for(collection, min_documents=2, timeout=0.5)))

    assert (fired["count"], fired["latest"]) == (1, (WATERMARK + timedelta(milliseconds=1)).isoformat())
    assert (waited["status"], waited["count"]) == ("timeout", 1)


def test_fires_when_documents_arrive_while_it_polls(collection):
    asyncio.run(insert(collection, docs_at(-5)))  # the collection exists, nothing new yet

    async def scenario() -> tuple[dict[str, Any], float]:
        started = asyncio.get_running_loop().time()
        waiting = asyncio.create_task(first_event(trigger_for(collection, min_documents=2)))
        await asyncio.sleep(0.7)
        assert not waiting.done()
        await insert(collection, docs_at(10, 20))
        event = await waiting
        return event, asyncio.get_running_loop().time() - started

    event, elapsed = asyncio.run(scenario())

    assert (event["status"], event["count"]) == ("new_data", 2)
    assert event["latest"] == (WATERMARK + timedelta(seconds=20)).isoformat()
    assert 0.7 <= elapsed < 2


def test_times_out_when_not_enough_new_documents(collection):
    asyncio.run(insert(collection, docs_at(-10, 5)))

    event = asyncio.run(first_event(trigger_for(collection, min_documents=10, timeout=1)))

    assert event["status"] == "timeout"
    assert (event["count"], event["min_documents"]) == (1, 10)


def test_reports_a_missing_collection(collection):
    event = asyncio.run(first_event(trigger_for(collection)))

    assert event["status"] == "error"
    assert f"{DATABASE}.{collection} does not exist" in event["message"]


def test_reports_documents_without_a_date_in_the_field(collection):
    asyncio.run(insert(collection, [{"ingested_at": "2024-03-01T13:00:00Z"}, {"created": WATERMARK}]))

    event = asyncio.run(first_event(trigger_for(collection)))

    assert event["status"] == "error"
    assert "'ingested_at'" in event["message"]
    assert "set source.timestamp_type to 'iso_string'" in event["message"]


@pytest.mark.parametrize(
    ("timestamp_type", "stored"),
    [
        ("iso_string", lambda moment: moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")),
        ("epoch_millis", lambda moment: int(moment.timestamp() * 1000)),
    ],
)
def test_fires_on_timestamps_stored_as_strings_or_numbers(collection, timestamp_type, stored):
    docs = [{"ingested_at": stored(doc["ingested_at"]), "n": doc["n"]} for doc in docs_at(-60, 0, 1, 30.5)]
    asyncio.run(insert(collection, docs))

    trigger = trigger_for(collection, min_documents=2, timestamp_type=timestamp_type)
    event = asyncio.run(first_event(trigger))

    assert (event["status"], event["count"]) == ("new_data", 2)
    assert event["latest"] == (WATERMARK + timedelta(seconds=30.5)).isoformat()
