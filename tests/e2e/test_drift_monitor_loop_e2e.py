"""The monitoring loop with the real Airflow components: insert documents, and nothing else.

A champion is trained first (REST trigger). Then `drift_monitor` runs on its own (`@continuous`):
(a) stationary documents arrive -> the sensor fires, no drift, no alert, the watermark advances and the
next run re-arms; (b) drifted documents arrive -> an alert mail naming the drifted columns, a
`retrain_vehicle_insurance` run created by the monitor that completes, and a new model version tagged with the
monitor's reason. Every wait is bounded; a timeout prints the component and task logs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest

from include.demo.sample_data import generate_documents
from include.retraining.adapters import mongo, registry
from include.retraining.airflow.runtime import env_config
from include.retraining.stages import monitor
from scripts.airflow_group import insert_recent, isolated_overrides, seed_source
from scripts.local_stack.smtp import delivered

pytestmark = pytest.mark.e2e

MONITOR, RETRAIN = "drift_monitor_vehicle_insurance", "retrain_vehicle_insurance"
NEW_DOCUMENTS = 1200  # above the test's min_new_documents (1000) and Evidently's small-sample regime
STEP_TIMEOUT = 420.0


@pytest.fixture(scope="module")
def loop(airflow_group, stack_environ):
    client = airflow_group.start(unpause=[RETRAIN])
    client.pause(MONITOR)  # armed only once the champion exists and the Variable points at our data
    others = [d["dag_id"] for d in client.list_dags() if d["dag_id"] not in (RETRAIN, MONITOR) and not d["is_paused"]]
    for dag_id in others:
        client.pause(dag_id)
    airflow_group.quiet_dag(client, RETRAIN)
    airflow_group.end_monitor_runs(client, MONITOR)

    _, overrides = isolated_overrides(
        "e2e_loop",
        # each step inserts its documents at once (no late writer): no grace period to wait out here;
        # tests/integration/test_monitor_windows.py covers late writers
        monitoring={"min_new_documents": 1000, "grace_seconds": 0},
        training={"hyperparameters": {"max_iter": 60}},
    )
    previous = client.get_variable("retrain_config")
    client.set_variable("retrain_config", json.dumps(overrides), description=f"set by {__name__}")
    config = env_config(stack_environ | {"AIRFLOW_VAR_RETRAIN_CONFIG": json.dumps(overrides)})
    try:
        yield {"client": client, "config": config, "group": airflow_group}
    finally:
        client.pause(MONITOR)
        airflow_group.end_monitor_runs(client, MONITOR)
        if previous is None:
            client.delete_variable("retrain_config")
        else:
            client.set_variable("retrain_config", previous)
        for dag_id in others:
            client.unpause(dag_id)


def wait_for(what: str, probe: Callable[[], object], loop: dict, timeout: float = STEP_TIMEOUT) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := probe():
            return found
        time.sleep(2)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}\n{loop['group'].logs(MONITOR)}")


def watermark(config) -> datetime | None:
    return mongo.read_watermark(config.source, config.monitoring.state_collection, monitor.watermark_key(config))


def monitor_checks(config) -> list[dict]:
    checks = mongo.latest_documents(
        config.source.conn_id, config.source.database, config.monitoring.collection, sort_field="checked_at", limit=50
    )
    return [c for c in checks if c["dag_id"] == MONITOR]


def drift_alerts(model_name: str) -> list[EmailMessage]:
    return [message for message in delivered() if str(message["Subject"]).startswith(f"[drift] {model_name}:")]


def test_a_champion_exists_to_compare_with(loop):
    client, config = loop["client"], loop["config"]
    end = datetime.now(UTC) - timedelta(minutes=5)
    docs = generate_documents(5000, start=end - timedelta(days=30), end=end, seed=11)
    seed_source(config, docs)

    run = client.trigger(RETRAIN, {"force_retrain": True}, note="champion for the loop e2e")
    finished = client.wait_for_run(RETRAIN, run["dag_run_id"], timeout=STEP_TIMEOUT)

    assert finished["state"] == "success", loop["group"].explain(client, RETRAIN, run["dag_run_id"], "no champion")
    assert registry.champion(config.mlflow, config.model_name).version == "1"


def test_a_stationary_window_is_checked_recorded_and_the_loop_rearms(loop):
    client, config = loop["client"], loop["config"]
    client.unpause(MONITOR)
    first = wait_for(
        "the monitor to arm its sensor", lambda: loop["group"].armed_monitor_run(client, MONITOR, set()), loop
    )
    initial = watermark(config)
    assert initial is not None  # open_window initialised it to the newest existing document

    insert_recent(config, NEW_DOCUMENTS, seed=21)

    check = wait_for("a drift check by the monitor", lambda: monitor_checks(config), loop)[0]
    assert check["status"] == "no_drift", check
    assert check["rows_current"] == NEW_DOCUMENTS
    moved = wait_for("the watermark to advance", lambda: (w := watermark(config)) != initial and w, loop)
    assert moved == mongo.latest_timestamp(config.source)
    finished = client.wait_for_run(MONITOR, first["dag_run_id"], timeout=120)
    assert finished["state"] == "success"
    assert drift_alerts(config.model_name) == []
    wait_for(
        "the next monitor run to re-arm",
        lambda: loop["group"].armed_monitor_run(client, MONITOR, {first["dag_run_id"]}),
        loop,
    )


def test_a_drifted_window_alerts_and_retrains_with_no_other_action(loop):
    client, config = loop["client"], loop["config"]
    retrains_before = {r["dag_run_id"] for r in client.list_runs(RETRAIN, limit=1000)}

    inserted = time.monotonic()
    insert_recent(config, NEW_DOCUMENTS, seed=31, covariate_drift=1.0, concept_drift=1.0)

    [alert] = wait_for("the drift alert mail", lambda: drift_alerts(config.model_name), loop)
    alert_seconds = time.monotonic() - inserted
    text = alert.get_body(("html",)).get_content()
    assert "Age" in text
    assert "Annual_Premium" in text
    assert "drift-report.html" not in [a.get_filename() for a in alert.iter_attachments()]  # linked: 4 MB
    assert "Report:     http" in alert.get_body(("plain",)).get_content()

    def monitor_retrain():
        runs = [r for r in client.list_runs(RETRAIN, limit=1000) if r["dag_run_id"] not in retrains_before]
        return next((r for r in runs if (r.get("conf") or {}).get("reason") == "drift_monitor"), None)

    retrain = wait_for("the retrain run triggered by the monitor", monitor_retrain, loop)
    finished = client.wait_for_run(RETRAIN, retrain["dag_run_id"], timeout=STEP_TIMEOUT)
    assert finished["state"] == "success", loop["group"].explain(client, RETRAIN, retrain["dag_run_id"], "retrain")
    version_seconds = time.monotonic() - inserted

    found = registry.client(config.mlflow).search_model_versions(f"name = '{config.model_name}'")
    newest = max(found, key=lambda v: int(v.version))
    assert newest.version == "2"
    assert newest.tags["trigger_reason"] == "drift_monitor"
    assert newest.tags["trigger.monitor_run_id"] == retrain["conf"]["monitor_run_id"]
    assert newest.tags["airflow_run_id"] == retrain["dag_run_id"]
    print(f"\ninsert -> drift alert: {alert_seconds:.0f} s; insert -> model version 2: {version_seconds:.0f} s")
