"""The production topology on the local stack (#19): `up --airflow --topology celery` runs docker-compose.yaml's
CeleryExecutor on PostgreSQL (metadata DB, result backend) and Redis (broker), with two Celery workers, each
in a home of its own. A retrain posted to the REST API runs to success with every task executed on a worker,
not in the scheduler's home, and the stages that hold a dataset or a model on the heavy queue.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta

import pytest

from include.demo.sample_data import generate_documents
from include.retraining.adapters import registry
from include.retraining.airflow.runtime import env_config
from include.retraining.core.graph import HEAVY_QUEUE
from scripts.airflow_api import AirflowClient, RunTimeout
from scripts.airflow_group import isolated_overrides, seed_source
from scripts.local_stack import airflow as local_airflow
from scripts.local_stack.supervisor import running
from tests.static.test_compose import environment

pytestmark = pytest.mark.e2e

DAG_ID = "retrain_vehicle_insurance"
RUN_TIMEOUT = 900.0  # two worker processes besides the group on 2 shared cores
PARAMS = {"force_retrain": True, "max_iter": 50, "lookback_hours": 720}
HEAVY_STAGES = {"extract", "detect_drift", "train", "evaluate", "refit"}


@pytest.fixture(scope="module")
def celery(airflow_group, stack_environ):
    client = airflow_group.start(unpause=[DAG_ID], topology="celery")
    paused_here = [d["dag_id"] for d in client.list_dags() if d["dag_id"] != DAG_ID and not d["is_paused"]]
    for dag_id in paused_here:  # the @continuous monitors would trigger retrains of their own
        client.pause(dag_id)
    name, overrides = isolated_overrides("e2e_celery")
    airflow_group.quiet_dag(client, DAG_ID)
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
        if local_airflow.DEFAULT_TOPOLOGY != "celery":
            print(airflow_group.stop())  # so that the next test's start brings back the default topology


def test_the_group_runs_compose_executor_on_postgres_and_redis(celery):
    env, compose = celery["group"].env, environment("airflow-scheduler")

    assert env["AIRFLOW__CORE__EXECUTOR"] == compose["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://airflow:")
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://127.0.0.1:")
    health = celery["client"].request("GET", "/api/v2/monitor/health")
    assert health["metadatabase"]["status"] == "healthy"


def test_both_workers_answer_a_celery_ping_each_in_a_home_of_its_own(celery):
    """Each worker process runs in its own dir, wrote its own airflow.cfg there and keeps its temporary files
    in its own TMPDIR (Celery rewrites its process title over /proc/<pid>/environ, so the files are the proof)."""
    group = celery["group"]
    scheduler_home = os.readlink(f"/proc/{running(group.state, 'airflow-scheduler')}/cwd")

    assert local_airflow.workers_answering(os.environ | group.env) == set(local_airflow.WORKERS)
    for worker in local_airflow.WORKERS:
        home = group.state / worker
        assert os.readlink(f"/proc/{running(group.state, worker)}/cwd") == str(home) != scheduler_home
        assert (home / "airflow.cfg").is_file()
        assert list((home / "tmp").glob("pymp-*")), f"{worker} keeps no temporary files in its TMPDIR"
        env = local_airflow.worker_env(group.state, group.env, worker)
        shared = {name for name, value in env.items() if scheduler_home in value}
        assert shared == {"AIRFLOW__LOGGING__BASE_LOG_FOLDER"}, "only the task logs are shared, as in compose"


def test_a_retrain_runs_on_the_workers_with_the_heavy_stages_on_the_heavy_queue(celery):
    client: AirflowClient = celery["client"]
    config = celery["config"]
    end = datetime.now(UTC)
    seed_source(config, generate_documents(4000, start=end - timedelta(days=29), end=end, seed=19))

    began = time.monotonic()
    run_id = client.trigger(DAG_ID, PARAMS, note=f"e2e {celery['name']}")["dag_run_id"]
    try:
        finished = client.wait_for_run(DAG_ID, run_id, timeout=RUN_TIMEOUT)
    except RunTimeout as timeout:
        pytest.fail(celery["group"].explain(client, DAG_ID, run_id, str(timeout)))
    if finished["state"] != "success":
        pytest.fail(celery["group"].explain(client, DAG_ID, run_id, f"{run_id}: {finished['state']}"))

    ran = [ti for ti in client.task_instances(DAG_ID, run_id) if ti["state"] == "success"]
    workers = {ti["task_id"]: ti["hostname"] for ti in ran}
    print(f"{run_id}: success in {time.monotonic() - began:.0f} s; tasks by worker: {workers}")
    assert set(workers.values()) <= set(local_airflow.WORKERS), "a task ran outside the Celery workers"
    heavy = {ti["task_id"] for ti in ran if ti["queue"] == HEAVY_QUEUE}
    assert heavy == HEAVY_STAGES
    assert {ti["queue"] for ti in ran if ti["task_id"] not in heavy} == {"default"}
    champion = registry.champion(config.mlflow, config.model_name)
    assert champion is not None, f"no champion for {config.model_name}"
    assert registry.version_tags(config.mlflow, config.model_name, champion.version)["airflow_run_id"] == run_id
