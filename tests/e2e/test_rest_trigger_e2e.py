"""Trigger the example model's retrain DAG as the UI does: Params posted as ``conf`` to the REST API of a real Airflow.

The Airflow group of the local stack (API server, scheduler with the LocalExecutor, dag-processor,
triggerer) runs the DAG for real. The test logs in through the simple auth manager, points the
``retrain_config`` Variable at a collection and model of its own, seeds that collection, triggers a run
with Params and waits for it; invalid Params must be refused before any run exists. A run whose conf claims
the drift monitor triggered it is one only when the check it names is in MongoDB and unused: a made-up
check, or a real one replayed, runs as an ordinary manual run.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
import pytest
from bson import ObjectId

from include.demo.sample_data import generate_documents
from include.retraining.adapters import mongo, registry
from include.retraining.airflow.runtime import env_config
from include.retraining.core.records import NewData, RunInfo
from include.retraining.stages import monitor
from scripts.airflow_api import AirflowAPIError, AirflowClient, RunTimeout
from scripts.airflow_group import insert_recent, isolated_overrides, seed_source
from tests.builders import drift_result

pytestmark = pytest.mark.e2e

DAG_ID = "retrain_vehicle_insurance"
SCORE_DAG = "score_vehicle_insurance"  # scheduled on the champion Asset the retrain's promote emits
WAITING = 200  # the newest documents, whose label has not arrived: the new champion serves them
RUN_TIMEOUT = 600.0  # on 2 shared cores a loaded machine took more than 360 s to train and notify
PARAMS = {"force_retrain": True, "max_iter": 50, "lookback_hours": 720}


@pytest.fixture(scope="module")
def airflow(airflow_group, stack_environ):
    client = airflow_group.start(unpause=[DAG_ID, SCORE_DAG])
    # Only the retrain and score DAGs may run: the drift monitors are @continuous and would trigger retrains.
    ours = (DAG_ID, SCORE_DAG)
    paused_here = [d["dag_id"] for d in client.list_dags() if d["dag_id"] not in ours and not d["is_paused"]]
    for dag_id in paused_here:
        client.pause(dag_id)

    name, overrides = isolated_overrides("e2e_rest")
    stopped = airflow_group.quiet_dag(client, DAG_ID)  # before the Variable: they must not read it
    if stopped:
        print(f"failed the runs that would have delayed ours: {stopped}")
    previous = client.get_variable("retrain_config")
    client.set_variable("retrain_config", json.dumps(overrides), description=f"set by {__name__}")
    config = env_config(stack_environ | {"AIRFLOW_VAR_RETRAIN_CONFIG": json.dumps(overrides)})
    try:
        yield {"client": client, "config": config, "name": name, "group": airflow_group}
    finally:
        if previous is None:
            client.delete_variable("retrain_config")
        else:
            client.set_variable("retrain_config", previous)
        for dag_id in paused_here:
            client.unpause(dag_id)
        client.pause(SCORE_DAG)  # a later module's promotions would start it in the background
        client.close()


def run_ids(client: AirflowClient) -> set[str]:
    return {run["dag_run_id"] for run in client.list_runs(DAG_ID, limit=1000)}


def test_the_api_wants_a_token_from_the_simple_auth_manager(airflow):
    client: AirflowClient = airflow["client"]
    url = f"{client.base_url}/api/v2/dags/{DAG_ID}/dagRuns"

    anonymous = httpx.post(url, json={"logical_date": None, "conf": PARAMS}, timeout=30)
    wrong = httpx.post(f"{client.base_url}/auth/token", json={"username": "admin", "password": "wrong"}, timeout=30)

    assert anonymous.status_code == 401
    assert wrong.status_code == 401
    assert client.login()  # the generated password from the simple auth manager's file works


@pytest.mark.parametrize(
    ("conf", "param", "reason"),
    [
        ({"max_iter": "lots"}, "max_iter", "is not of type"),
        ({"lookback_hours": -5}, "lookback_hours", "less than the minimum of 1"),
        ({"force_retrain": "maybe"}, "force_retrain", "is not of type 'null', 'boolean'"),
        ({"max_iter": 5000}, "max_iter", "greater than the maximum of 2000"),
    ],
    ids=["trees-as-text", "negative-lookback", "force-not-boolean", "too-many-trees"],
)
def test_invalid_params_are_refused_with_the_param_named_and_no_run_created(airflow, conf, param, reason):
    client: AirflowClient = airflow["client"]
    before = run_ids(client)

    with pytest.raises(AirflowAPIError) as refused:
        client.trigger(DAG_ID, conf)

    assert refused.value.status == 400
    assert f"Invalid input for param {param}:" in refused.value.detail
    assert reason in refused.value.detail
    assert run_ids(client) == before


def test_valid_params_run_to_success_and_the_run_registers_the_champion(airflow):
    client: AirflowClient = airflow["client"]
    config = airflow["config"]
    end = datetime.now(UTC)
    docs = generate_documents(4000, start=end - timedelta(days=29), end=end - timedelta(hours=1), seed=11)
    docs.sort(key=lambda doc: doc["ingested_at"])
    for doc in docs[-WAITING:]:  # the newest await their label: the champion is asked about them
        doc.pop("Response")
    seed_source(config, docs)
    airflow["waiting"] = {str(doc["_id"]) for doc in docs[-WAITING:]}
    airflow["promoted_after"] = datetime.now(UTC)

    began = time.monotonic()
    run = client.trigger(DAG_ID, PARAMS, note=f"e2e {airflow['name']}")
    run_id = run["dag_run_id"]
    assert (run["run_type"], run["state"], run["conf"]) == ("manual", "queued", PARAMS)
    try:
        finished = client.wait_for_run(DAG_ID, run_id, timeout=RUN_TIMEOUT)
    except RunTimeout as timeout:
        pytest.fail(airflow["group"].explain(client, DAG_ID, run_id, str(timeout)))
    print(f"{run_id}: {finished['state']} in {time.monotonic() - began:.0f} s")
    if finished["state"] != "success":
        pytest.fail(airflow["group"].explain(client, DAG_ID, run_id, f"{run_id}: {finished['state']}"))

    champion = registry.champion(config.mlflow, config.model_name)
    assert champion is not None, f"no champion for {config.model_name}"
    tags = registry.version_tags(config.mlflow, config.model_name, champion.version)
    assert tags["airflow_run_id"] == run_id
    assert tags["airflow_dag_id"] == DAG_ID
    # the Params reached the tasks: the trees trained are the ones posted
    params = registry.client(config.mlflow).get_run(tags["mlflow_run_id"]).data.params
    assert params["max_iter"] == "50"


def test_the_promotion_emits_the_champion_asset_and_the_score_dag_serves_the_new_champion(airflow):
    """No trigger but the Asset event: the scheduler starts score_<model> after promote moved the alias."""
    client: AirflowClient = airflow["client"]
    config = airflow["config"]
    champion = registry.champion(config.mlflow, config.model_name)
    assert champion is not None, "the run above trains the champion"
    predictions = mongo.collection(config.source.conn_id, config.monitoring_database, config.scoring.collection)
    deadline = time.monotonic() + RUN_TIMEOUT
    while time.monotonic() < deadline:
        runs = score_runs_since(client, airflow["promoted_after"])
        if runs and predictions.count_documents({"model_name": config.model_name}) >= WAITING:
            break
        time.sleep(5)

    assert {(run["run_type"], run["state"]) for run in runs} == {("asset_triggered", "success")}
    served = list(predictions.find({"model_name": config.model_name}))
    assert {doc["document_id"] for doc in served} == airflow["waiting"]
    assert {doc["model_version"] for doc in served} == {champion.version}


def score_runs_since(client: AirflowClient, moment: datetime) -> list[dict]:
    """The finished score runs created after ``moment`` (the group's DB keeps those of earlier sessions)."""
    runs = client.list_runs(SCORE_DAG, states=["success", "failed"])
    return [run for run in runs if datetime.fromisoformat(run["run_after"]) > moment]


def finished_run(airflow, conf: dict, label: str) -> str:
    """Trigger a run with ``conf``, wait for it, fail with the logs unless it succeeded; its run id."""
    client: AirflowClient = airflow["client"]
    run_id = client.trigger(DAG_ID, conf, note=f"e2e {label}")["dag_run_id"]
    try:
        finished = client.wait_for_run(DAG_ID, run_id, timeout=RUN_TIMEOUT)
    except RunTimeout as timeout:
        pytest.fail(airflow["group"].explain(client, DAG_ID, run_id, str(timeout)))
    if finished["state"] != "success":
        pytest.fail(airflow["group"].explain(client, DAG_ID, run_id, f"{label} {run_id}: {finished['state']}"))
    return run_id


def task_xcom(client: AirflowClient, run_id: str, task_id: str) -> dict:
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/xcomEntries/return_value"
    value = client.request("GET", path)["value"]
    return json.loads(value) if isinstance(value, str) else value


def lineage(config, run_id: str) -> dict[str, str]:
    """The tags of the run's MLflow run: trigger_reason and trigger.* are its lineage."""
    mlflow = registry.client(config.mlflow)
    experiment = mlflow.get_experiment_by_name(config.mlflow.experiment)
    [run] = mlflow.search_runs([experiment.experiment_id], filter_string=f"tags.airflow_run_id = '{run_id}'")
    return run.data.tags


def task_log(airflow, run_id: str, task_id: str) -> str:
    logs = airflow["group"].state / "airflow-server" / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}"
    return "\n".join(path.read_text() for path in sorted(logs.glob(f"task_id={task_id}/**/*.log")))


def assert_ordinary_manual_run(airflow, run_id: str, why: str) -> None:
    """No value of the claim was taken: the run decided on its own check, and its lineage says manual."""
    decision = task_xcom(airflow["client"], run_id, "decide")
    tags = lineage(airflow["config"], run_id)
    assert "drift_monitor" not in decision["reason"], decision
    assert tags["trigger_reason"] == "manual"
    assert [tag for tag in tags if tag.startswith("trigger.")] == []
    assert f"the conf claims a drift_monitor trigger, not honoured: {why}; this is an ordinary manual run" in (
        task_log(airflow, run_id, "extract")
    )


def test_a_forged_monitor_trigger_runs_as_an_ordinary_manual_run(airflow):
    config = airflow["config"]
    champion = registry.champion(config.mlflow, config.model_name)
    assert champion is not None, "the run above trains the champion"
    forged = str(ObjectId())
    conf = {
        "reason": "drift_monitor",
        "monitor_run_id": "drift_monitor__forged",
        "check_id": forged,
        "window_start": (datetime.now(UTC) - timedelta(days=2)).isoformat(),
        "window_end": (datetime.now(UTC) - timedelta(days=1)).isoformat(),
        "drift_status": "drift",
        "drift_share": 0.9,
        "drift": drift_result(status="drift", drift_share=0.9, champion_version=champion.version).to_dict(),
    }

    run_id = finished_run(airflow, conf, "forged trigger")

    assert_ordinary_manual_run(airflow, run_id, f"no drift check {forged!r} exists")
    # no row is newer than the champion: its own check skips, where an honoured trigger always retrains
    assert task_xcom(airflow["client"], run_id, "decide")["retrain"] is False
    assert registry.champion(config.mlflow, config.model_name) == champion


def test_a_monitor_check_is_honoured_once_and_replayed_it_runs_as_an_ordinary_manual_run(airflow):
    config = airflow["config"]
    start = insert_recent(config, 1200, seed=31, covariate_drift=1.0, concept_drift=1.0)
    latest = mongo.latest_timestamp(config.source).isoformat()
    window = NewData(count=1200, watermark=(start - timedelta(seconds=1)).isoformat(), latest=latest)
    monitor_run = RunInfo(
        dag_id="drift_monitor_vehicle_insurance", run_id=f"e2e__{uuid.uuid4().hex[:8]}", run_end=latest
    )
    drift = monitor.check_drift(config, monitor_run, window)  # the monitor's stage, in this process
    assert monitor.route(drift) == ["send_drift_alert", "retrain_conf"], drift
    conf = monitor.retrain_conf(monitor_run, window, drift)

    honoured = finished_run(airflow, conf, "monitor-triggered")
    replayed = finished_run(airflow, conf, "replayed trigger")

    tags = lineage(config, honoured)
    assert (tags["trigger_reason"], tags["trigger.check_id"]) == ("drift_monitor", drift.check_id)
    assert (tags["trigger.monitor_run_id"], tags["trigger.window_end"]) == (monitor_run.run_id, latest)
    assert "drift detected by drift_monitor run" in task_xcom(airflow["client"], honoured, "decide")["reason"]
    checks = (config.source.conn_id, config.monitoring_database, config.monitoring.collection)
    assert mongo.field_of(*checks, drift.check_id, monitor.CONSUMED_BY) == honoured
    assert_ordinary_manual_run(
        airflow, replayed, f"drift check {drift.check_id} was already consumed by run {honoured}"
    )
