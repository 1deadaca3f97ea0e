"""The drift monitor's watermark in real MongoDB: initialisation, compare-and-set, restarts, windows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from include.demo.sample_data import generate_documents
from include.retraining.adapters import mongo
from include.retraining.core.records import DriftResult, NewData, RunInfo
from include.retraining.stages import monitor
from include.retraining.stages.data import stored_check
from tests.integration.conftest import ADMIN_CONN_ID

pytestmark = pytest.mark.integration
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def advance(config, start: str, end: str, check_id: str | None) -> None:
    drift = DriftResult.from_dict({**CHECK, "check_id": check_id})
    monitor.advance_watermark(config, run_info(), NewData(count=1, watermark=start, latest=end), drift)


CHECK = {
    "status": "no_drift",
    "drift_share": 0.0,
    "drifted_columns": 0,
    "columns": [],
    "threshold": 0.3,
    "rows_current": 1,
    "rows_reference": 1,
    "current_uri": "s3://b/c",
    "reference_uri": "s3://b/r",
    "champion_version": "1",
    "report_uri": None,
    "mlflow_run_id": None,
}


def run_info(run_id: str = "monitor-run-1") -> RunInfo:
    return RunInfo(dag_id="drift_monitor_vehicle_insurance", run_id=run_id, run_end=datetime.now(UTC).isoformat())


def seed(config, rows: int, start: datetime, end: datetime, **knobs) -> None:
    source = config.source
    docs = generate_documents(rows, start=start, end=end, seed=rows, **knobs)
    mongo.insert_documents(docs, database=source.database, collection=source.collection, conn_id=ADMIN_CONN_ID)


def stored_watermark(config) -> datetime | None:
    return mongo.read_watermark(config.source, config.monitoring.state_collection, monitor.watermark_key(config))


def test_first_window_starts_at_the_newest_existing_document(pipeline_config):
    seed(pipeline_config, 200, T0, T0 + timedelta(days=1))
    newest = mongo.latest_timestamp(pipeline_config.source)

    window = monitor.open_window(pipeline_config, run_info())

    assert datetime.fromisoformat(window["watermark"]) == newest
    assert stored_watermark(pipeline_config) == newest
    assert window["min_documents"] == pipeline_config.monitoring.min_new_documents
    # a restart (a new run) reads the stored watermark instead of re-initialising it
    seed(pipeline_config, 10, T0 + timedelta(days=2), T0 + timedelta(days=3))
    assert monitor.open_window(pipeline_config, run_info("monitor-run-2"))["watermark"] == window["watermark"]


def test_empty_collection_starts_at_the_epoch(pipeline_config):
    assert monitor.open_window(pipeline_config, run_info())["watermark"] == monitor.EPOCH.isoformat()


def test_advance_is_compare_and_set_and_idempotent_for_a_retry(pipeline_config):
    seed(pipeline_config, 50, T0, T0 + timedelta(hours=1))
    start = monitor.open_window(pipeline_config, run_info())["watermark"]
    latest = (datetime.fromisoformat(start) + timedelta(hours=5)).isoformat()

    advance(pipeline_config, start, latest, "check-1")
    advance(pipeline_config, start, latest, "check-1")  # a retried task: no-op

    assert stored_watermark(pipeline_config) == datetime.fromisoformat(latest)
    elsewhere = (datetime.fromisoformat(start) + timedelta(hours=9)).isoformat()
    with pytest.raises(RuntimeError, match="another run moved it"):
        advance(pipeline_config, start, elsewhere, "check-2")
    assert stored_watermark(pipeline_config) == datetime.fromisoformat(latest)


def test_consecutive_windows_neither_skip_nor_recount(pipeline_config):
    """Three batches, two windows: every document lands in exactly one window."""
    seed(pipeline_config, 100, T0, T0 + timedelta(hours=1))
    first = monitor.open_window(pipeline_config, run_info())["watermark"]
    seed(pipeline_config, 300, T0 + timedelta(hours=2), T0 + timedelta(hours=3))
    middle = mongo.latest_timestamp(pipeline_config.source).isoformat()
    advance(pipeline_config, first, middle, None)
    seed(pipeline_config, 200, T0 + timedelta(hours=4), T0 + timedelta(hours=5))
    last = mongo.latest_timestamp(pipeline_config.source).isoformat()

    source, contract = pipeline_config.source, pipeline_config.contract
    window_1 = mongo.read_window(source, contract, datetime.fromisoformat(first), datetime.fromisoformat(middle))
    window_2 = mongo.read_window(source, contract, datetime.fromisoformat(middle), datetime.fromisoformat(last))

    assert len(window_1) == 300
    assert len(window_2) == 200
    assert set(window_1["_id"]).isdisjoint(window_2["_id"])


def test_check_window_compares_new_documents_with_the_champion(pipeline_config):
    """No champion yet: the check says so and records it; the retrain DAG will train the first one."""
    seed(pipeline_config, 800, T0, T0 + timedelta(hours=1))
    new_data = NewData(count=800, watermark=T0.isoformat(), latest=(T0 + timedelta(hours=1)).isoformat())
    result = monitor.check_drift(pipeline_config, run_info(), new_data)

    assert result.status == "no_reference"
    assert result.rows_current == 800
    conf = monitor.retrain_conf(run_info(), new_data, result)
    assert conf["reason"] == "drift_monitor"
    assert conf["window_end"] == new_data.latest
    checks = (
        pipeline_config.source.conn_id,
        pipeline_config.monitoring_database,
        pipeline_config.monitoring.collection,
    )
    assert stored_check(mongo.find_document(*checks, conf["check_id"])) == result  # the retrain reads it by its id
    assert conf["check_id"] == result.check_id
