"""`airflow dags test retrain_vehicle_insurance` as a subprocess, against the real local stack.

One isolated model/collection per session; the runs build on each other in order:
fresh registry -> drift -> no drift -> bad data. Every assertion reads a real system: MLflow's
registry, MongoDB's monitoring collection, S3 and the SMTP sink.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from include.demo.demo import RETRAIN, dags_test
from include.demo.sample_data import generate_documents
from include.retraining.adapters import mongo, registry, storage
from include.retraining.airflow.runtime import env_config
from scripts.airflow_group import isolated_overrides, seed_source
from scripts.local_stack.smtp import delivered_to

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    missing = [n for n in ("MLFLOW_TRACKING_URI", "AIRFLOW_CONN_MONGO_DEFAULT", "MAIL_SINK_DIR") if n not in os.environ]
    assert not missing, f"{missing} not set: run `make up` and source .local/stack.env (make test does both)"
    name, overrides = isolated_overrides("e2e")
    env = {
        **os.environ,
        "AIRFLOW_VAR_RETRAIN_CONFIG": json.dumps(overrides),
        "AIRFLOW_VAR_ALERT_RECIPIENTS": f"{name}@example.com",  # summary and failure mails
        "RETRAIN_TASK_RETRIES": "0",  # a failing task should fail now, not sleep through retries
    }
    config = env_config(env)
    logs = tmp_path_factory.mktemp("dag-logs")
    return {"config": config, "env": env, "logs": logs, "name": name}


def seed(config, rows: int, *, days: float, seed: int, end: datetime | None = None, **knobs) -> None:
    end = end or datetime.now(UTC)
    docs = generate_documents(rows, start=end - timedelta(days=days), end=end, seed=seed, **knobs)
    seed_source(config, docs)


def run(e2e, label: str, conf: dict | None = None, **env: str) -> str:
    log = e2e["logs"] / f"{label}.log"
    _, state = dags_test(RETRAIN, log, conf, env=e2e["env"] | env)
    if state not in ("success", "failed"):
        pytest.fail(f"{label}: no final state in {log}:\n" + "\n".join(log.read_text().splitlines()[-80:]))
    return state


def versions(config) -> list[str]:
    found = registry.client(config.mlflow).search_model_versions(f"name = '{config.model_name}'")
    return sorted((v.version for v in found), key=int)


def latest_check(config) -> dict:
    [check] = mongo.latest_documents(
        config.source.conn_id, config.source.database, config.monitoring.collection, sort_field="checked_at"
    )
    return check


def test_1_fresh_registry_trains_registers_and_promotes_version_1(e2e):
    config = e2e["config"]
    # up to a day ago: v1 is refit on every row, so the drifted day of run 2 must come after them
    seed(config, 6000, days=30, seed=1, end=datetime.now(UTC) - timedelta(days=1))

    assert run(e2e, "run-1-fresh") == "success"

    assert versions(config) == ["1"]
    champion = registry.champion(config.mlflow, config.model_name)
    assert champion.version == "1"
    assert storage.exists(config.storage, champion.snapshot_uri)
    tags = registry.version_tags(config.mlflow, config.model_name, "1")
    assert tags["airflow_dag_id"] == RETRAIN
    assert tags["drift_status"] == "no_reference"
    assert latest_check(config)["status"] == "no_reference"
    [mail] = delivered_to(f"{e2e['name']}@example.com")
    assert "version 1 is the new champion" in mail["Subject"]


def test_2_drift_is_detected_archived_and_gates_the_promotion(e2e):
    config = e2e["config"]
    seed(config, 4000, days=1, seed=2, covariate_drift=1.0, concept_drift=1.0)

    assert run(e2e, "run-2-drift", {"lookback_hours": 24}) == "success"

    check = latest_check(config)
    assert check["status"] == "drift"
    drifted = {c["column"] for c in check["columns"] if c["drifted"]}
    assert {"Age", "Annual_Premium", "Vehicle_Age"} <= drifted
    report = registry.read_artifact(config.mlflow, check["report_uri"]).decode()
    assert "<html" in report.lower()
    assert "Annual_Premium" in report
    logged = registry.client(config.mlflow).list_artifacts(check["mlflow_run_id"], "drift")
    assert {a.path for a in logged} >= {"drift/report.html", "drift/result.json"}

    [alert] = [m for m in delivered_to(f"{e2e['name']}@example.com") if m["Subject"].startswith("[drift]")]
    assert config.model_name in alert["Subject"]
    body = alert.get_body(("html",)).get_content()
    assert "<td>Age</td>" in body
    assert "K-S p_value" in body
    # Evidently's report (about 4 MB) is linked, not attached
    assert "drift-report.html" not in [a.get_filename() for a in alert.iter_attachments()]
    report_url = registry.artifact_url(config.mlflow, check["report_uri"])
    text = alert.get_body(("plain",)).get_content()
    assert f"Report:     {report_url}" in text
    [age] = [line for line in text.splitlines() if line.startswith("- Age: ")]
    assert "; mean " in age  # how far it moved, next to its p-value

    assert versions(config) == ["1", "2"]
    tags = registry.version_tags(config.mlflow, config.model_name, "2")
    assert tags["previous_champion"] == "1"
    assert tags["drift_status"] == "drift"
    challenger = registry.client(config.mlflow).get_model_version_by_alias(config.model_name, "challenger")
    assert challenger.version == "2"
    expected_champion = "2" if tags["gate_passed"] == "true" else "1"
    assert registry.champion(config.mlflow, config.model_name).version == expected_champion
    # the new concept makes the old champion much worse: the gate must have passed here
    assert expected_champion == "2", tags["gate_reason"]


def test_3_no_new_drift_takes_the_skip_path(e2e):
    config = e2e["config"]
    # more of what v2 was fitted on (it was refit on every row of run 2), stamped after those rows
    after_v2 = datetime.fromisoformat(registry.champion(config.mlflow, config.model_name).training_end)
    start, end = after_v2 + timedelta(milliseconds=1), datetime.now(UTC)
    seed_source(config, generate_documents(1000, start=start, end=end, seed=4, covariate_drift=1.0, concept_drift=1.0))

    assert run(e2e, "run-3-no-drift", {"lookback_hours": 24}) == "success"

    assert versions(config) == ["1", "2"]
    check = latest_check(config)
    assert (check["status"], check["rows_current"]) == ("no_drift", 1000)
    assert "no retrain needed" in delivered_to(f"{e2e['name']}@example.com")[-1]["Subject"]


def test_4_bad_data_fails_the_run_without_registering_or_moving_the_champion(e2e):
    config = e2e["config"]
    champion_before = registry.champion(config.mlflow, config.model_name).version
    seed(config, 1000, days=0.02, seed=3, malformed_share=0.5)

    conf = {"lookback_hours": 1, "force_retrain": True}
    # with the production retries: a contract violation must not wait for them
    assert run(e2e, "run-4-bad-data", conf, RETRAIN_TASK_RETRIES="2") == "failed"

    log = (e2e["logs"] / "run-4-bad-data.log").read_text()
    assert "AirflowFailException: DataContractError (not retried): " in log
    assert "break the data contract" in log
    assert "Failed at validate (try 1): DataContractError" in log  # the failure callback's run note
    assert "up_for_retry" not in log

    assert versions(config) == ["1", "2"]
    assert registry.champion(config.mlflow, config.model_name).version == champion_before
    failure = delivered_to(f"{e2e['name']}@example.com")[-1]
    assert "validate failed" in failure["Subject"]
    assert "contract" in failure.get_body(("html",)).get_content()
