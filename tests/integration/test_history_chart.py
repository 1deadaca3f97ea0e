"""The drift history chart end to end: drift checks written to the stack's MongoDB as the stages write them,
the chart drawn from the model's newest ones, logged to its MLflow run and read back."""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta

import pytest

from include.retraining.adapters import mongo, registry
from include.retraining.core.records import RunInfo
from include.retraining.stages.outcome import HISTORY_CHART, history_chart, log_history_chart

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
