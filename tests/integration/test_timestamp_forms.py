"""Timestamps stored as BSON dates, ISO strings, epoch seconds and epoch milliseconds window exactly alike
(the extract, the sensor's probe, the monitor's first watermark); ids of any BSON type reach the quarantine
report; an empty window says why. Against the stack's MongoDB (SecantusDB) and S3."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from mongo_new_data import probe

from include.retraining.adapters import mongo, storage
from include.retraining.core.config import PipelineConfig
from include.retraining.core.contract import QUARANTINE_REASON, DataContractError
from include.retraining.core.records import RunInfo
from include.retraining.stages import extract, monitor
from include.retraining.stages.data import Window, validated
from tests.integration.test_mongo import T, document, insert

pytestmark = pytest.mark.integration

OFFSETS = [-120, 30, -60, 0, -30, 60]  # minutes around T, inserted out of order
STORED: dict[str, Callable[[datetime], Any]] = {
    "date": lambda moment: moment,
    "iso_string": lambda moment: moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
    "epoch_seconds": lambda moment: int(moment.timestamp()),
    "epoch_millis": lambda moment: int(moment.timestamp() * 1000),
}


def stamped(moment: datetime, timestamp_type: str, **changes: Any) -> dict[str, Any]:
    return document(moment, ingested_at=STORED[timestamp_type](moment), **changes)


def run_info(end: datetime = T) -> RunInfo:
    return RunInfo(dag_id="retrain_it", run_id=f"forms__{uuid.uuid4().hex[:8]}", run_end=end.isoformat())


@pytest.mark.parametrize("timestamp_type", list(STORED))
def test_each_form_windows_exactly_and_reads_back_utc(config_factory, timestamp_type):
    config = config_factory({"source": {"timestamp_type": timestamp_type}})
    insert(config, [stamped(T + timedelta(minutes=m), timestamp_type, Vintage=100 + m) for m in OFFSETS])
    source, contract = config.source, config.contract

    window = mongo.read_window(source, contract, T - timedelta(minutes=60), T)
    after = mongo.read_window(source, contract, T, T + timedelta(hours=1))
    everything = mongo.read_window(source, contract, None, T + timedelta(days=1))

    assert window["Vintage"].tolist() == [70.0, 100.0]  # (start, end]: the start excluded, the end included
    assert after["Vintage"].tolist() == [130.0, 160.0]
    assert len(everything) == len(OFFSETS)
    assert window["ingested_at"].tolist() == [T - timedelta(minutes=30), T]
    assert str(window["ingested_at"].dt.tz) == "UTC"
    assert mongo.latest_timestamp(source) == T + timedelta(minutes=60)
    assert mongo.stamped_after(source, T)[0] == 2
    assert mongo.off_form(source)[0] == 0


@pytest.mark.parametrize("timestamp_type", list(STORED))
def test_the_sensor_counts_each_form_and_the_monitor_opens_its_window(config_factory, timestamp_type):
    config = config_factory({"source": {"timestamp_type": timestamp_type}, "monitoring": {"grace_seconds": 0}})
    insert(config, [stamped(T + timedelta(minutes=m), timestamp_type) for m in OFFSETS])
    source = config.source

    found = probe(source.conn_id, source.database, source.collection, source.timestamp_field, T, 2, 0, timestamp_type)
    window = monitor.open_window(config, run_info())

    assert (found.count, found.latest, found.problem) == (2, (T + timedelta(minutes=60)).isoformat(), None)
    assert window["watermark"] == (T + timedelta(minutes=60)).isoformat()  # the newest document
    assert window["timestamp_type"] == timestamp_type


def test_iso_strings_in_another_layout_are_reported(config_factory):
    config = config_factory({"source": {"timestamp_type": "iso_string"}})
    odd = document(T - timedelta(minutes=5), ingested_at=(T - timedelta(minutes=5)).isoformat())  # +00:00, no ms
    insert(config, [stamped(T + timedelta(minutes=m), "iso_string") for m in (-10, 0)] + [odd])

    count, ids, expected = mongo.off_form(config.source)

    assert (count, ids) == (1, [str(odd["_id"])])
    assert expected == "ISO strings like '2024-06-01T12:00:00.123Z'"


def test_timestamps_of_another_bson_type_are_reported(config_factory):
    config = config_factory()  # declares BSON dates
    misfits = [stamped(T, "iso_string"), stamped(T, "epoch_seconds")]
    insert(config, [stamped(T - timedelta(minutes=m), "date") for m in (1, 2)] + misfits)

    count, ids, expected = mongo.off_form(config.source, None, T)

    assert (count, sorted(ids), expected) == (2, sorted(str(doc["_id"]) for doc in misfits), "date")
    assert mongo.stored_types(config.source) == {"date": 2, "string": 1, "number": 1}


def test_the_probe_names_the_stored_form_when_none_has_the_declared_one(config_factory):
    config = config_factory()  # declares BSON dates
    insert(config, [stamped(T, "epoch_millis")])
    source = config.source

    found = probe(source.conn_id, source.database, source.collection, source.timestamp_field, T, 1, 0)

    assert found.count == 0
    assert "set source.timestamp_type to 'epoch_millis'" in found.problem


@pytest.mark.parametrize(
    ("id_type", "ids"),
    [
        ("int", [101, 102, 103]),
        ("string", ["policy-1", "policy-2", "policy-3"]),
        ("objectid", [ObjectId(), ObjectId(), ObjectId()]),
        ("auto", [7, "policy-8", ObjectId()]),
    ],
)
def test_ids_of_each_type_round_trip_into_the_quarantine_report(config_factory, id_type, ids):
    config = config_factory({"source": {"id_type": id_type}, "contract": {"max_quarantine_share": 1.0}})
    good = [document(T - timedelta(minutes=i), _id=ids[i]) for i in (0, 1)]
    bad = document(T - timedelta(minutes=2), _id=ids[2], Age="forty")
    insert(config, [*good, bad])
    frame = mongo.read_window(config.source, config.contract, None, T)

    _, report = validated(config, run_info(), Window(frame, None, T), for_training=False)
    quarantined = storage.read_parquet(config.storage, report.quarantine_uri)

    assert sorted(frame["_id"]) == sorted(str(i) for i in ids)
    assert quarantined["_id"].tolist() == [str(ids[2])]
    assert quarantined[QUARANTINE_REASON].tolist() == ["Age: missing or not a number"]
    assert f"e.g. _id {ids[2]}" in report.problems[0]


def test_ids_of_an_undeclared_type_fail_naming_the_fix(config_factory):
    config = config_factory()  # declares ObjectIds
    insert(config, [document(T, _id=41), document(T, _id=ObjectId())])

    with pytest.raises(ValueError, match=r"_id: 1 of 2 documents .* not a objectid \(e\.g\. 41\).* 'auto'"):
        mongo.read_window(config.source, config.contract, None, T)


def test_an_empty_window_names_the_field_its_form_the_bounds_and_the_fix(config_factory):
    config = config_factory({"source": {"lookback_hours": 1}})  # declares BSON dates
    insert(config, [stamped(T - timedelta(minutes=m), "iso_string") for m in (1, 2, 3)])

    with pytest.raises(DataContractError) as raised:
        extract(config, run_info(T))

    message = str(raised.value)
    source = config.source
    assert f"{source.database}.{source.collection} has none with 'ingested_at'" in message
    assert "(declared source.timestamp_type 'date')" in message
    assert f"in ({(T - timedelta(hours=1)).isoformat()}, {T.isoformat()}]" in message
    assert "stores that field 3 as a string: set source.timestamp_type to 'iso_string'" in message


def test_an_empty_window_before_the_data_says_to_pick_a_date_inside_it(config_factory):
    config: PipelineConfig = config_factory()
    insert(config, [document(T)])

    with pytest.raises(DataContractError, match="stamped outside the window: pick a logical date inside the data"):
        extract(config, run_info(T - timedelta(days=365)))
