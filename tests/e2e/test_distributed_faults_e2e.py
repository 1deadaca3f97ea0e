"""Faults of a distributed run on the production topology (#19): two models' retrains at once on the Celery
group (PostgreSQL, Redis, two workers with nothing shared but the services), and, while they run:

1. the scheduler is stopped and started again (as a redeploy or a crashed scheduler pod would);
2. the worker running model A's ``train`` is SIGKILLed (no shutdown code runs, as when a node is lost) and
   its home directory, TMPDIR included, is deleted; it stays down until both runs are over.

The scheduler fails the orphaned try once its heartbeat stops (``TASK_INSTANCE_HEARTBEAT_TIMEOUT``, 120 s as
in compose) and the retry runs on the surviving worker, which then finishes every stage of both runs from
the services alone. Each model's registry and aliases are written by its own run only. Every task ran on a
worker, the stages that hold a dataset or a model on the heavy queue.

One scenario, several verdicts: each test below reads the same two finished runs.
"""

from __future__ import annotations

import json
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from include.demo.sample_data import generate_documents
from include.retraining.adapters import registry
from include.retraining.airflow.models import models_dir
from include.retraining.airflow.runtime import env_config, model_variable
from include.retraining.core.config import DEFAULT_CONFIG
from include.retraining.core.graph import HEAVY_QUEUE
from scripts.airflow_api import AirflowClient, RunTimeout
from scripts.airflow_group import isolated_overrides, seed_source
from scripts.local_stack import airflow as local_airflow
from scripts.local_stack.supervisor import running, stop

pytestmark = pytest.mark.e2e

PARAMS = {"force_retrain": True}  # everything else at the model file's defaults
ROWS = {"killed": 20000, "bystander": 4000}  # the killed model's train must last long enough to be caught
RUN_TIMEOUT = 2400.0  # two retrains, a lost try, a 120 s heartbeat timeout and a retry on 2 shared cores
SCHEDULER = "airflow-scheduler"
HEAVY_STAGES = {"extract", "detect_drift", "train", "evaluate", "refit"}  # each holds a dataset or a model


@pytest.fixture(scope="module")
def models(airflow_group, stack_environ):
    """Two model files in the group's models folder for the module's duration, each with its own data."""
    client = airflow_group.start(topology="celery")
    folder = models_dir(airflow_group.env)
    found, files = {}, []
    end = datetime.now(UTC)
    try:
        for seed, role in enumerate(ROWS):
            name, overrides = isolated_overrides(f"e2e_{role}")
            path = folder / f"{name}.json"
            path.write_text(DEFAULT_CONFIG.read_text())
            files.append(path)
            client.set_variable(model_variable(name), json.dumps(overrides), description=f"set by {__name__}")
            variable = f"AIRFLOW_VAR_{model_variable(name).upper()}"
            config = env_config(stack_environ | {variable: json.dumps(overrides)}, model=name)
            docs = generate_documents(ROWS[role], start=end - timedelta(days=29), end=end, seed=70 + seed)
            seed_source(config, docs)
            found[role] = {"name": name, "dag_id": f"retrain_{name}", "config": config}
        for model in found.values():
            appeared(client, model["dag_id"])
            client.unpause(model["dag_id"])
            airflow_group.quiet_dag(client, model["dag_id"])  # the scheduled run that unpausing makes
        yield {"client": client, "group": airflow_group, "models": found}
    finally:
        for path in files:
            path.unlink(missing_ok=True)
            client.delete_variable(model_variable(path.stem))
        client.close()
        airflow_group.start()  # brings back the killed worker for the next module


def appeared(client: AirflowClient, dag_id: str, timeout: float = 300) -> None:
    """Wait until the dag-processor has parsed the new model file."""
    deadline = time.monotonic() + timeout
    while client.get_dag(dag_id) is None:
        if time.monotonic() > deadline:
            pytest.fail(f"{dag_id} did not appear in {timeout:.0f} s")
        time.sleep(3)


def wait_for(what: str, check, timeout: float = RUN_TIMEOUT, poll: float = 0.5):
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"not seen within {timeout:.0f} s: {what}")
        time.sleep(poll)
    return found


def task(client: AirflowClient, dag_id: str, run_id: str, task_id: str) -> dict:
    [ti] = [ti for ti in client.task_instances(dag_id, run_id) if ti["task_id"] == task_id]
    return ti


def restart_scheduler(group) -> dict:
    """Stop the scheduler as a redeploy does (SIGTERM) and start it again; only it is missing, so only it starts."""
    before = running(group.state, SCHEDULER)
    assert stop(group.state, [SCHEDULER], grace=30) == [SCHEDULER]
    time.sleep(5)  # the runs go on without a scheduler for a moment
    group.start()
    return {"before": before, "after": running(group.state, SCHEDULER)}


def kill_train_worker(client: AirflowClient, group, dag_id: str, run_id: str) -> dict:
    """SIGKILL the worker running the first try of ``train`` and delete its home, TMPDIR included."""

    def started() -> dict | None:
        ti = task(client, dag_id, run_id, "train")
        if ti["state"] in ("success", "failed", "up_for_retry"):
            pytest.fail(f"{dag_id} train ended ({ti['state']}) before it could be killed")
        return ti if ti["state"] == "running" and ti["hostname"] else None

    ti = wait_for(f"{dag_id} train running on a worker", started, poll=0.2)
    worker = ti["hostname"]
    assert stop(group.state, [worker], crash=True) == [worker]
    killed_at = datetime.now(UTC)
    shutil.rmtree(local_airflow.worker_home(group.state, worker))
    return {"worker": worker, "try_number": ti["try_number"], "at": killed_at}


@pytest.fixture(scope="module")
def scenario(models):
    client, group = models["client"], models["group"]
    killed = models["models"]["killed"]
    with ThreadPoolExecutor(2) as pool:  # at once
        triggered = pool.map(
            lambda m: client.trigger(m["dag_id"], PARAMS, note="e2e distributed faults"), models["models"].values()
        )
    runs = {role: run["dag_run_id"] for role, run in zip(models["models"], triggered, strict=True)}
    began = time.monotonic()
    wait_for(
        "both runs running with a task started",
        lambda: all(
            any(ti["state"] in ("running", "success") for ti in client.task_instances(m["dag_id"], runs[role]))
            for role, m in models["models"].items()
        ),
    )
    restarted = restart_scheduler(group)
    lost = kill_train_worker(client, group, killed["dag_id"], runs["killed"])
    print(f"scheduler restarted after {time.monotonic() - began:.0f} s; {lost['worker']} killed in train", flush=True)
    finished = {}
    for role, model in models["models"].items():
        try:
            finished[role] = client.wait_for_run(model["dag_id"], runs[role], timeout=RUN_TIMEOUT)
        except RunTimeout as timeout:
            pytest.fail(group.explain(client, model["dag_id"], runs[role], f"{role}: {timeout}"))
        print(f"{role}: {runs[role]} {finished[role]['state']} after {time.monotonic() - began:.0f} s", flush=True)
    return {**models, "runs": runs, "finished": finished, "restarted": restarted, "lost": lost}


def tries(client: AirflowClient, dag_id: str, run_id: str, task_id: str) -> list[dict]:
    path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/tries"
    return client.request("GET", path)["task_instances"]


def xcoms(client: AirflowClient, dag_id: str, run_id: str) -> dict[str, str]:
    """Every task's return value, as the JSON text the next task receives."""
    found = {}
    for ti in client.task_instances(dag_id, run_id):
        path = (
            f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{ti['task_id']}"
            "/xcomEntries/return_value"
        )
        if (entry := client.request("GET", path, if_missing=None)) is not None:
            found[ti["task_id"]] = json.dumps(entry["value"])
    return found


def test_both_runs_succeed_through_a_scheduler_restart_and_a_lost_worker(scenario):
    client = scenario["client"]
    for role, model in scenario["models"].items():
        run_id = scenario["runs"][role]
        if scenario["finished"][role]["state"] != "success":
            pytest.fail(scenario["group"].explain(client, model["dag_id"], run_id, f"{role}: not a success"))
    restarted = scenario["restarted"]
    assert restarted["after"] is not None, "the scheduler did not come back"
    assert restarted["after"] != restarted["before"], "the scheduler was not restarted"


def test_every_task_ran_on_a_worker_with_the_heavy_stages_on_the_heavy_queue(scenario):
    client = scenario["client"]
    for role, model in scenario["models"].items():
        ran = [ti for ti in client.task_instances(model["dag_id"], scenario["runs"][role]) if ti["state"] == "success"]
        assert {ti["hostname"] for ti in ran} <= set(local_airflow.WORKERS), f"{role}: a task ran outside the workers"
        assert {ti["task_id"] for ti in ran if ti["queue"] == HEAVY_QUEUE} == HEAVY_STAGES, role
        assert {ti["queue"] for ti in ran if ti["task_id"] not in HEAVY_STAGES} == {"default"}, role


def test_the_killed_train_is_retried_on_the_other_worker_and_registers_one_version(scenario):
    client, model = scenario["client"], scenario["models"]["killed"]
    run_id, lost = scenario["runs"]["killed"], scenario["lost"]
    history = {ti["try_number"]: ti for ti in tries(client, model["dag_id"], run_id, "train")}
    [survivor] = set(local_airflow.WORKERS) - {lost["worker"]}
    assert history[lost["try_number"]]["hostname"] == lost["worker"]
    assert history[lost["try_number"]]["state"] != "success"
    last = history[max(history)]
    assert (last["state"], last["hostname"]) == ("success", survivor), history

    config = model["config"]
    versions = registry.client(config.mlflow).search_model_versions(f"name = '{config.model_name}'")
    assert [v.tags.get("airflow_run_id") for v in versions] == [run_id], "exactly one version, from this run"
    assert registry.champion(config.mlflow, config.model_name).version == versions[0].version


def test_the_survivor_finishes_every_stage_without_the_lost_workers_files(scenario):
    """After the lost worker's home was deleted, every later task of both runs ran on the survivor; and no
    task handed the next one a local path: each XCom names only the services."""
    client, group, lost = scenario["client"], scenario["group"], scenario["lost"]
    for role, model in scenario["models"].items():
        run_id = scenario["runs"][role]
        after_loss = [
            ti
            for ti in client.task_instances(model["dag_id"], run_id)
            if ti["state"] != "skipped"  # a skipped task ran nowhere
            and ti["start_date"]
            and datetime.fromisoformat(ti["start_date"]) > lost["at"]
        ]
        assert after_loss, f"{role}: no task started after the loss"
        assert {ti["hostname"] for ti in after_loss} <= set(local_airflow.WORKERS) - {lost["worker"]}, role
        for task_id, value in xcoms(client, model["dag_id"], run_id).items():
            for local in (str(group.state), "/tmp/", "file:"):
                assert local not in value, f"{role} {task_id} hands on a local path: {value}"


def test_each_registry_and_alias_is_touched_only_by_its_own_run(scenario):
    runs = scenario["runs"]
    for role, model in scenario["models"].items():
        config = model["config"]
        found = registry.client(config.mlflow).search_model_versions(f"name = '{config.model_name}'")
        assert {v.tags.get("airflow_run_id") for v in found} == {runs[role]}, role
        champion = registry.champion(config.mlflow, config.model_name)
        assert registry.version_tags(config.mlflow, config.model_name, champion.version)["airflow_run_id"] == runs[role]
