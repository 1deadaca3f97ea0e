"""The read-only path: the pipeline runs as a MongoDB user that may read the source window and write its
own monitoring documents, and nothing else. The indexes come from the setup step an administrator runs
(include/retraining/adapters/mongo_setup.py), never from the pipeline.

A user and role of this module's own, made by ``mongo_setup.setup`` as in production, reached through an
Airflow connection like ``mongo_default``. SecantusDB checks privileges per database (MongoDB per
collection), so the monitoring collections live in a database of their own here
(``monitoring.database``); the same role keeps the source read-only in its own database on MongoDB.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pymongo.errors import OperationFailure

from include.demo.sample_data import generate_documents
from include.retraining.adapters import mongo, mongo_setup
from include.retraining.core.config import PipelineConfig
from include.retraining.core.records import RunInfo
from include.retraining.stages import detect_drift, extract, open_window, validate
from tests.integration.conftest import ADMIN_CONN_ID

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer:UserWarning"),
]

UNAUTHORIZED = 13
NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
def config(config_factory) -> Iterator[PipelineConfig]:
    tag = uuid.uuid4().hex[:8]
    user, password = f"lp_user_{tag}", uuid.uuid4().hex
    conn_id = f"mongo_lp_{tag}"
    login = json.loads(os.environ["AIRFLOW_CONN_MONGO_DEFAULT"]) | {"login": user, "password": password}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(login))
        config = config_factory({"source": {"conn_id": conn_id}, "monitoring": {"database": f"it_mon_{tag}"}})
        mongo_setup.setup(config, ADMIN_CONN_ID, role=f"lp_role_{tag}", user=user, password=password)
        source = config.source
        docs = generate_documents(800, start=NOW - timedelta(days=3), end=NOW - timedelta(hours=1), seed=7)
        target = {"database": source.database, "collection": source.collection}
        assert mongo.insert_documents(docs, **target, conn_id=ADMIN_CONN_ID) == len(docs)
        yield config
        admin = mongo.client(ADMIN_CONN_ID).admin
        admin.command("dropUser", user)
        admin.command("dropRole", f"lp_role_{tag}")


def pipeline_db(config: PipelineConfig, database: str | None = None):
    return mongo.client(config.source.conn_id)[database or config.source.database]


def refused(action) -> bool:
    try:
        action()
    except OperationFailure as error:
        return error.code == UNAUTHORIZED
    return False


def test_setup_created_the_indexes_the_pipeline_no_longer_creates(config):
    admin = mongo.client(ADMIN_CONN_ID)
    source_keys = [spec["key"] for spec in admin[config.source.database][config.source.collection].list_indexes()]
    monitoring = admin[config.monitoring_database][config.monitoring.collection]
    assert {"ingested_at": 1} in [dict(key) for key in source_keys]
    assert {"checked_at": 1} in [dict(spec["key"]) for spec in monitoring.list_indexes()]


def test_pipeline_user_reads_the_window_and_writes_its_monitoring_documents(config):
    run = RunInfo(dag_id="test", run_id=f"lp__{uuid.uuid4().hex}", run_end=NOW.isoformat())

    snapshot = extract(config, run)
    drift = detect_drift(config, run, validate(config, run, snapshot))
    window = open_window(config, run)  # initialises the watermark: an upsert into the state collection

    assert snapshot.rows == 800
    admin = mongo.client(ADMIN_CONN_ID)[config.monitoring_database]
    checks = list(admin[config.monitoring.collection].find({"run_id": run.run_id}))
    assert [str(check["_id"]) for check in checks] == [drift.check_id]
    assert admin[config.monitoring.state_collection].count_documents({}) == 1
    assert window["watermark"]


def test_pipeline_user_cannot_change_the_source(config):
    docs = pipeline_db(config)[config.source.collection]

    assert refused(lambda: docs.insert_one({"ingested_at": NOW, "Age": 40}))
    assert refused(lambda: docs.update_many({}, {"$set": {"Age": 1}}))
    assert refused(lambda: docs.delete_many({}))
    assert refused(docs.drop_indexes)
    assert mongo.count_documents(database=config.source.database, collection=config.source.collection,
                                 conn_id=ADMIN_CONN_ID) == 800  # fmt: skip


def test_pipeline_user_cannot_create_indexes_or_collections(config):
    monitoring = pipeline_db(config, config.monitoring_database)

    assert refused(lambda: pipeline_db(config)[config.source.collection].create_index("Age"))
    assert refused(lambda: monitoring[config.monitoring.collection].create_index("status"))
    assert refused(lambda: pipeline_db(config).create_collection(f"other_{uuid.uuid4().hex[:6]}"))


def test_pipeline_user_reaches_no_other_database(config):
    assert refused(lambda: mongo.client(config.source.conn_id)["admin"].command("usersInfo", 1))
    assert refused(lambda: pipeline_db(config, "some_other_db")["x"].insert_one({}))
    assert refused(pipeline_db(config, "some_other_db")["x"].find_one)
