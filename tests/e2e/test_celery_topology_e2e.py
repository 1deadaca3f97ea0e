"""The production topology on the local stack (#19): `up --airflow --topology celery` runs docker-compose.yaml's
CeleryExecutor on PostgreSQL (metadata DB, result backend) and Redis (broker), with two Celery workers, each
in a home of its own. Runs on it, and their faults: test_distributed_faults_e2e.py.
"""

from __future__ import annotations

import os

import pytest

from scripts.local_stack import airflow as local_airflow
from scripts.local_stack.supervisor import running
from tests.static.test_compose import environment

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def celery(airflow_group):
    client = airflow_group.start(topology="celery")
    try:
        yield {"client": client, "group": airflow_group}
    finally:
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
