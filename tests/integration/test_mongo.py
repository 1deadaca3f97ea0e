"""mongo.py against the stack's MongoDB (SecantusDB) through the provider's MongoHook."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from bson import ObjectId

from include.retraining.adapters import mongo
from include.retraining.core.config import LabelSpec, PipelineConfig, with_overrides
from tests.integration.conftest import ADMIN_CONN_ID

pytestmark = pytest.mark.integration

T = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def document(moment: datetime, **changes) -> dict:
    doc = {
        "Gender": "Female",
        "Age": 40,
        "Driving_License": 1,
        "Region_Code": 28.0,
        "Previously_Insured": 0,
        "Vehicle_Age": "1-2 Year",
        "Vehicle_Damage": "Yes",
        "Annual_Premium": 31_000.0,
        "Policy_Sales_Channel": 26.0,
        "Vintage": 120,
        "Response": 1,
        "ingested_at": moment,
    }
    return {**doc, **changes}


def insert(config: PipelineConfig, docs: list[dict]) -> int:
    source = config.source
    return mongo.insert_documents(docs, database=source.database, collection=source.collection, conn_id=ADMIN_CONN_ID)


def test_insert_and_count(pipeline_config):
    source = pipeline_config.source
    target = {"database": source.database, "collection": source.collection, "conn_id": ADMIN_CONN_ID}

    assert mongo.count_documents(**target) == 0
    assert mongo.insert_documents([], **target) == 0
    assert mongo.insert_documents([document(T), document(T, Age=50)], **target) == 2
    assert mongo.insert_documents([document(T)], **target) == 1
    assert mongo.count_documents(**target) == 3


def test_read_window_is_half_open_and_sorted(pipeline_config):
    offsets = [-120, 30, -60, 0, -30, 60]  # minutes around T, inserted out of order
    insert(pipeline_config, [document(T + timedelta(minutes=m), Vintage=100 + m) for m in offsets])
    source, contract = pipeline_config.source, pipeline_config.contract

    window = mongo.read_window(source, contract, T - timedelta(minutes=60), T)
    everything_until_t = mongo.read_window(source, contract, None, T)
    after = mongo.read_window(source, contract, T, T + timedelta(hours=1))

    # (start, end]: the document at start is excluded, the one at end included
    assert window["Vintage"].tolist() == [70.0, 100.0]
    assert everything_until_t["Vintage"].tolist() == [-20.0, 40.0, 70.0, 100.0]
    assert after["Vintage"].tolist() == [130.0, 160.0]  # consecutive windows neither overlap nor miss
    assert window["ingested_at"].tolist() == [T - timedelta(minutes=30), T]
    assert str(window["ingested_at"].dt.tz) == "UTC"


def test_read_window_projects_the_contract_only(pipeline_config):
    [doc] = [document(T, customer_name="Jane Doe", notes={"free": "text"})]
    insert(pipeline_config, [doc])

    frame = mongo.read_window(pipeline_config.source, pipeline_config.contract, None, T)

    contract = pipeline_config.contract
    assert list(frame.columns) == ["_id", *contract.feature_names, contract.label.name, "ingested_at"]
    assert frame.loc[0, "_id"] == str(doc["_id"])  # insert_many set the ObjectId on the dict
    assert isinstance(frame.loc[0, "_id"], str)
    assert ObjectId.is_valid(frame.loc[0, "_id"])
    assert frame.loc[0, "Age"] == 40.0
    assert frame.loc[0, "Gender"] == "Female"
    assert frame["Age"].dtype == np.float64
    assert frame["Response"].dtype == np.float64


def test_wrong_types_and_missing_fields_become_null(pipeline_config):
    bad = document(T, Age="forty", Gender=1, Response="yes", Annual_Premium=None)
    del bad["Vintage"]
    insert(pipeline_config, [document(T - timedelta(minutes=1)), bad])

    frame = mongo.read_window(pipeline_config.source, pipeline_config.contract, None, T)

    assert len(frame) == 2  # one bad document does not fail the extract
    good, broken = frame.iloc[0], frame.iloc[1]
    assert good.notna().all()
    for column in ("Age", "Gender", "Response", "Annual_Premium", "Vintage"):
        assert broken.isna()[column], column
    assert broken["Vehicle_Age"] == "1-2 Year"  # the rest of the document is intact


def test_string_ids(config_factory):
    config = config_factory({"source": {"id_type": "string"}})
    insert(config, [document(T, _id="policy-0001"), document(T, _id="policy-0002")])

    frame = mongo.read_window(config.source, config.contract, None, T)

    assert sorted(frame["_id"]) == ["policy-0001", "policy-0002"]


def test_other_timestamp_field(config_factory):
    config = config_factory()
    source = replace(config.source, timestamp_field="loaded_at")
    docs = [{**document(T), "loaded_at": T - timedelta(days=2)}, {**document(T), "loaded_at": T}]
    insert(config, docs)

    frame = mongo.read_window(source, config.contract, T - timedelta(days=1), T)

    assert len(frame) == 1
    assert "loaded_at" in frame.columns
    assert "ingested_at" not in frame.columns


def test_empty_window_has_the_contract_columns(pipeline_config):
    frame = mongo.read_window(pipeline_config.source, pipeline_config.contract, None, T)

    assert frame.empty
    assert "Age" in frame.columns


def test_record_once_per_key_and_read_latest_documents(pipeline_config):
    conn, database = pipeline_config.source.conn_id, pipeline_config.source.database
    name = pipeline_config.monitoring.collection
    checks = [{"checked_at": T + timedelta(minutes=m), "status": f"check-{m}"} for m in (5, 1, 9)]

    ids = [mongo.record_once(conn, database, name, {"run_id": f"run-{i}"}, c) for i, c in enumerate(checks)]
    retried = mongo.record_once(conn, database, name, {"run_id": "run-2"}, checks[2] | {"status": "check-9b"})
    latest = mongo.latest_documents(conn, database, name, sort_field="checked_at", limit=2)

    assert all(isinstance(i, str) and ObjectId.is_valid(i) for i in ids)
    assert retried == ids[2]  # a retried task replaces its own document, it does not add one
    assert mongo.collection(conn, database, name).count_documents({"run_id": "run-2"}) == 1
    assert [doc["status"] for doc in latest] == ["check-9b", "check-5"]
    assert [str(doc["_id"]) for doc in latest] == [ids[2], ids[0]]


def test_mark_once_sets_a_field_only_the_first_time(pipeline_config):
    conn, database = pipeline_config.source.conn_id, pipeline_config.source.database
    name = pipeline_config.monitoring.collection
    check_id = mongo.record_once(conn, database, name, {"run_id": "mark-once"}, {"status": "drift"})

    assert mongo.mark_once(conn, database, name, check_id, "alert_sent_at", T) is True
    assert mongo.mark_once(conn, database, name, check_id, "alert_sent_at", T + timedelta(hours=1)) is False
    assert mongo.field_of(conn, database, name, check_id, "alert_sent_at") == T.replace(tzinfo=None)


# --- the drift monitor's state: newest timestamp and the compare-and-set watermark ----------------------


def test_latest_timestamp(pipeline_config):
    source = pipeline_config.source
    assert mongo.latest_timestamp(source) is None  # empty collection

    insert(pipeline_config, [document(T - timedelta(hours=1)), document(T), document(T - timedelta(days=1))])
    insert(pipeline_config, [{k: v for k, v in document(T).items() if k != "ingested_at"}])
    insert(pipeline_config, [document(T + timedelta(hours=2)) | {"ingested_at": None}])

    latest = mongo.latest_timestamp(source)
    assert latest == T
    assert latest.tzinfo is not None


def test_watermark_moves_by_compare_and_set(pipeline_config):
    source, state = pipeline_config.source, pipeline_config.monitoring.state_collection
    key = f"{pipeline_config.model_name}:watermark"
    first = T.replace(microsecond=123_456)  # MongoDB keeps milliseconds
    second = T + timedelta(hours=1)

    assert mongo.read_watermark(source, state, key) is None
    mongo.advance_watermark(source, state, key, None, first, {"initialised_by": "run-1"})
    stored = mongo.read_watermark(source, state, key)
    assert stored == T.replace(microsecond=123_000)
    assert stored.tzinfo is not None

    mongo.advance_watermark(source, state, key, stored, second, {"advanced_by": "run-2"})
    assert mongo.read_watermark(source, state, key) == second
    # a retried task that already moved it: a no-op, not an error
    mongo.advance_watermark(source, state, key, stored, second, {"advanced_by": "run-2"})
    assert mongo.read_watermark(source, state, key) == second
    [document_] = mongo.latest_documents(source.conn_id, source.database, state, sort_field="watermark")
    assert document_["_id"] == key
    assert document_["advanced_by"] == "run-2"
    assert document_["initialised_by"] == "run-1"


def test_watermark_refuses_a_concurrent_move(pipeline_config):
    source, state = pipeline_config.source, pipeline_config.monitoring.state_collection
    key = f"{pipeline_config.model_name}:watermark"
    mongo.advance_watermark(source, state, key, None, T, {})
    mongo.advance_watermark(source, state, key, T, T + timedelta(hours=1), {"advanced_by": "other run"})

    with pytest.raises(RuntimeError, match="another run moved it"):
        mongo.advance_watermark(source, state, key, T, T + timedelta(hours=2), {})
    with pytest.raises(RuntimeError, match="another run moved it"):
        mongo.advance_watermark(source, state, key, None, T + timedelta(hours=3), {})  # a second initialisation

    assert mongo.read_watermark(source, state, key) == T + timedelta(hours=1)


def test_watermarks_are_per_key(pipeline_config):
    source, state = pipeline_config.source, pipeline_config.monitoring.state_collection
    mongo.advance_watermark(source, state, "model-a", None, T, {})
    mongo.advance_watermark(source, state, "model-b", None, T - timedelta(days=1), {})

    assert mongo.read_watermark(source, state, "model-a") == T
    assert mongo.read_watermark(source, state, "model-b") == T - timedelta(days=1)


@pytest.mark.parametrize(
    ("label", "stored", "read"),
    [
        # strings survive (they were nulls when every label was read as float64); a number is no string
        (
            {"objective": "multiclass", "classes": ["rain", "sun", "fog"]},
            ["rain", "fog", 3, None],
            ["rain", "fog", None, None],
        ),
        ({"classes": (False, True)}, [True, False, 1, "yes"], [True, False, None, None]),
        # int classes: 1.5 must reach validation as 1.5 (an int64 column would truncate it to 1)
        ({"classes": (0, 1)}, [1, 0, 1.5, "1"], [1.0, 0.0, 1.5, None]),
        (
            {"objective": "regression", "classes": [], "positive_class": None},
            [151.0, 75, -2.5, "x"],
            [151.0, 75.0, -2.5, None],
        ),
    ],
)
def test_the_label_is_read_with_the_type_of_its_kind(config_factory, label, stored, read):
    config = with_overrides(
        config_factory(),
        contract={"label": LabelSpec("Response", **label)},
        training={"hyperparameters": {}},
        gate={"primary_metric": None},
    )
    insert(config, [document(T + timedelta(minutes=i), Response=value) for i, value in enumerate(stored)])

    frame = mongo.read_window(config.source, config.contract, None, T + timedelta(hours=1))

    values = [None if pd.isna(value) else value for value in frame["Response"].tolist()]  # NaN, None: null
    assert values == read
    assert [type(value) for value in values] == [type(value) for value in read]
