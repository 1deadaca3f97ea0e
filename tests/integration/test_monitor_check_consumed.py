"""A claimed drift_monitor trigger against real MongoDB and MLflow: the check is read from the monitoring
collection and consumed once; a retry of the consuming run proceeds, every other run is an ordinary one."""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from bson import ObjectId

from include.retraining.adapters import mongo
from include.retraining.core.records import DriftResult, RunInfo
from include.retraining.stages.data import drift_check_document
from include.retraining.stages.monitor import CONSUMED_BY, honoured_trigger, monitor_trigger

WINDOW_START, WINDOW_END = "2026-12-05T09:00:00+00:00", "2026-12-06T09:00:00+00:00"


def checks(config) -> tuple[str, str, str]:
    return config.source.conn_id, config.monitoring_database, config.monitoring.collection


def recorded_check(config) -> str:
    """What the monitor records when there is no champion yet (it triggers the first retrain), as it stores it."""
    monitor_run = RunInfo(dag_id=f"drift_monitor_{config.model_name}", run_id="monitor__1", run_end=WINDOW_END)
    result = DriftResult(
        status="no_reference",
        drift_share=0.0,
        drifted_columns=0,
        columns=(),
        threshold=0.3,
        rows_current=1_200,
        rows_reference=0,
        current_uri="s3://b/current.parquet",
        reference_uri=None,
        champion_version=None,
        report_uri=None,
        mlflow_run_id="monitor-mlflow-run",
    )
    document = drift_check_document(config, monitor_run, result) | {"window_start": WINDOW_START}
    return mongo.record_once(*checks(config), {"run_id": monitor_run.run_id}, document)


def retrain_run() -> RunInfo:
    return RunInfo(
        dag_id="retrain_vehicle_insurance",
        run_id=f"manual__{uuid.uuid4().hex[:8]}",
        run_end="2026-12-06T23:00:00+00:00",  # the trigger time: the monitor's window ends earlier
        reason="manual",
    )


def warnings(caplog) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]


def test_a_real_check_is_read_from_mongodb_and_consumed_by_the_run(pipeline_config, caplog):
    check_id, run = recorded_check(pipeline_config), retrain_run()
    stored = mongo.find_document(*checks(pipeline_config), check_id)

    honoured = honoured_trigger(pipeline_config, run, check_id)

    assert honoured.reason == "drift_monitor"
    assert honoured.run_end == WINDOW_END  # the window end comes from the stored check
    assert honoured.trigger == monitor_trigger(check_id, stored)
    assert honoured.monitor_check.check_id == check_id
    assert honoured.monitor_check.mlflow_run_id == "monitor-mlflow-run"
    assert mongo.field_of(*checks(pipeline_config), check_id, CONSUMED_BY) == run.run_id
    assert warnings(caplog) == []
    assert honoured_trigger(pipeline_config, run, check_id) == honoured  # a retry of the run finds its own mark


def test_a_consumed_check_makes_another_run_an_ordinary_one_with_one_warning(pipeline_config, caplog):
    check_id, first, replay = recorded_check(pipeline_config), retrain_run(), retrain_run()
    honoured_trigger(pipeline_config, first, check_id)

    assert honoured_trigger(pipeline_config, replay, check_id) == replay
    assert warnings(caplog) == [
        f"the conf claims a drift_monitor trigger, not honoured: drift check {check_id} was already consumed by run "
        f"{first.run_id}; this is an ordinary manual run"
    ]
    assert mongo.field_of(*checks(pipeline_config), check_id, CONSUMED_BY) == first.run_id


def test_two_runs_claiming_one_check_at_once_one_is_honoured(pipeline_config):
    check_id = recorded_check(pipeline_config)
    runs = [retrain_run() for _ in range(6)]

    with ThreadPoolExecutor(len(runs)) as pool:
        results = list(pool.map(lambda run: honoured_trigger(pipeline_config, run, check_id), runs))

    [winner] = [result for result in results if result.reason == "drift_monitor"]
    assert mongo.field_of(*checks(pipeline_config), check_id, CONSUMED_BY) == winner.run_id
    assert [result for result in results if result is not winner] == [
        run for run in runs if run.run_id != winner.run_id
    ]


@pytest.mark.parametrize("check_id", [str(ObjectId()), "made-up", None], ids=["unknown-id", "no-object-id", "none"])
def test_a_check_that_is_not_in_mongodb_is_not_honoured(pipeline_config, caplog, check_id):
    run = retrain_run()

    assert honoured_trigger(pipeline_config, run, check_id) == run
    [warning] = warnings(caplog)
    assert warning.endswith("; this is an ordinary manual run")
    assert (f"no drift check {check_id!r} exists" if check_id else "the conf names no check_id") in warning
