"""The drift history chart end to end: drift checks written to the stack's MongoDB as the stages write them,
the chart drawn from the model's newest ones, logged to its MLflow run and read back."""

from __future__ import annotations

import struct
import time
from datetime import UTC, datetime, timedelta

import pytest

from include.retraining.adapters import mongo, registry
from include.retraining.core.records import ColumnDrift, Decision, DriftResult, RunInfo, Snapshot, ValidationReport
from include.retraining.stages.outcome import (
    HISTORY_CHART,
    history_chart,
    log_history_chart,
    mail_drift_alert,
    notify,
)
from scripts.local_stack import smtp as mail_sink

pytestmark = pytest.mark.integration
START = datetime(2026, 9, 1, 2, tzinfo=UTC)


def write_check(config, day: int, champion: str, model_name: str | None = None) -> None:
    drifted = day == 2
    performance = {
        "status": "no_drift",
        "metric": "roc_auc",
        "reference_value": 0.85,
        "current_value": 0.84,
        "lower": 0.82,
        "upper": 0.86,
        "labeled_rows": 300,
        "reason": "",
    }
    document = {
        "checked_at": START + timedelta(days=day),
        "model_name": model_name or config.model_name,
        "dag_id": f"drift_monitor_{config.model_name}",
        "run_id": f"check_{day}",
        "status": "drift" if drifted else "no_drift",
        "columns": [
            {
                "column": "Age",
                "method": "K-S p_value",
                "score": 1e-9 if drifted else 0.5,
                "threshold": 0.01,
                "drifted": drifted,
            }
        ],
        "champion_version": champion,
        "performance": performance if day % 2 else None,
    }
    checks = (config.source.conn_id, config.monitoring_database, config.monitoring.collection)
    mongo.record_once(*checks, {k: document[k] for k in ("model_name", "dag_id", "run_id")}, document)


def test_the_chart_of_stored_checks_is_logged_to_the_models_mlflow_run(pipeline_config):
    config = pipeline_config
    assert history_chart(config) is None  # no check yet: nothing to draw
    for day, champion in enumerate(["1", "1", "1", "2", "2"]):
        write_check(config, day, champion)
    write_check(config, 9, "7", model_name="another_model")  # same collection, another model: not in its history

    monitoring = (config.source.conn_id, config.monitoring_database, config.monitoring.collection)
    newest = mongo.drift_history(*monitoring, config.model_name, 3)
    assert [check["run_id"] for check in newest] == ["check_2", "check_3", "check_4"]  # bounded, oldest first
    assert newest[0]["checked_at"] == START + timedelta(days=2)  # tz-aware, comparable with the registry's times

    chart = history_chart(config)
    assert chart.startswith(b"\x89PNG\r\n\x1a\n")
    assert struct.unpack(">II", chart[16:24]) == (1100, 750)

    run = RunInfo(dag_id=f"retrain_{config.model_name}", run_id="history_run", run_end=START.isoformat())
    mlflow_run_id = registry.pipeline_run(config, run)
    uri = log_history_chart(config, mlflow_run_id)
    assert uri == f"runs:/{mlflow_run_id}/{HISTORY_CHART}"
    stored = registry.read_artifact(config.mlflow, uri)
    assert stored == chart  # the same checks draw the same picture


def test_registered_versions_come_back_oldest_first_with_their_times(pipeline_config):
    config = pipeline_config
    client = registry.client(config.mlflow)
    client.create_registered_model(config.model_name)
    run = RunInfo(dag_id="test", run_id="versions_run", run_end=START.isoformat())
    mlflow_run_id = registry.pipeline_run(config, run)
    for _ in range(3):
        client.create_model_version(config.model_name, f"runs:/{mlflow_run_id}/model", mlflow_run_id)
    versions = registry.registered_versions(config.mlflow, config.model_name, 2)
    assert [v.version for v in versions] == ["2", "3"]
    assert versions[0].created_at <= versions[1].created_at <= datetime.now(UTC)


def drifted(mlflow_run_id: str | None = None) -> DriftResult:
    return DriftResult(
        status="drift",
        drift_share=1.0,
        drifted_columns=1,
        columns=(ColumnDrift("Age", "K-S p_value", 1e-9, 0.01, True),),
        threshold=1.0,
        rows_current=500,
        rows_reference=1_000,
        current_uri="s3://bucket/current.parquet",
        reference_uri="s3://bucket/reference.parquet",
        champion_version="2",
        report_uri=None,
        mlflow_run_id=mlflow_run_id,
    )


def test_notify_logs_the_chart_on_the_runs_mlflow_run(pipeline_config):
    config = pipeline_config
    for day, champion in enumerate(["1", "2"]):
        write_check(config, day, champion)
    run = RunInfo(dag_id=f"retrain_{config.model_name}", run_id="notify_run", run_end=START.isoformat())
    mlflow_run_id = registry.pipeline_run(config, run)
    snapshot = Snapshot("s3://bucket/validated.parquet", 500, "ab" * 32, None, run.run_end, ("_id",))
    decision = Decision(retrain=False, reason="a test of the chart")

    notify(
        config, run, ValidationReport(snapshot, 500, 0, None, ()), drifted(mlflow_run_id), decision, None, None, None
    )

    assert registry.read_artifact(config.mlflow, f"runs:/{mlflow_run_id}/{HISTORY_CHART}") == history_chart(config)


def test_the_drift_alert_mail_carries_the_chart(stack_env, pipeline_config):
    config = pipeline_config
    for day, champion in enumerate(["1", "1", "2"]):
        write_check(config, day, champion)
    run = RunInfo(dag_id=f"drift_monitor_{config.model_name}", run_id="alert_run", run_end=START.isoformat())
    drift = drifted()

    assert mail_drift_alert(config, run, drift, START.isoformat())["sent"]

    [recipient] = config.notify.recipients
    deadline = time.monotonic() + 15
    while not (received := mail_sink.delivered_to(recipient, stack_env["MAIL_SINK_DIR"])):
        assert time.monotonic() < deadline, f"no mail to {recipient}"
        time.sleep(0.2)
    [attachment] = list(received[0].iter_attachments())
    assert (attachment.get_filename(), attachment.get_content_type()) == ("drift_history.png", "image/png")
    assert attachment.get_payload(decode=True) == history_chart(config)
