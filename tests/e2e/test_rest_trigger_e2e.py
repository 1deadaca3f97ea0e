"""Trigger the example model's retrain DAG as the UI does: Params posted as ``conf`` to the REST API of a real Airflow.

The Airflow group of the local stack (API server, scheduler with the LocalExecutor, dag-processor,
triggerer) runs the DAG for real. The test logs in through the simple auth manager, points the
``retrain_config`` Variable at a collection and model of its own, seeds that collection, triggers a run
with Params and waits for it; invalid Params must be refused before any run exists.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from include.demo.sample_data import generate_documents
from include.retraining.adapters import registry
from include.retraining.airflow.runtime import env_config
from scripts.airflow_api import AirflowAPIError, AirflowClient, RunTimeout
from scripts.airflow_group import isolated_overrides, seed_source

pytestmark = pytest.mark.e2e

DAG_ID = "retrain_vehicle_insurance"
RUN_TIMEOUT = 360.0
PARAMS = {"force_retrain": True, "max_iter": 50, "lookback_hours": 720}


@pytest.fixture(scope="module")
def airflow(airflow_group, stack_environ):
    client = airflow_group.start(unpause=[DAG_ID])
    # Only the retrain DAG may run: the drift monitors are @continuous and would trigger retrains of its own.
    paused_here = [d["dag_id"] for d in client.list_dags() if d["dag_id"] != DAG_ID and not d["is_paused"]]
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
    docs = generate_documents(4000, start=end - timedelta(days=29), end=end, seed=11)
    seed_source(config, docs)

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
