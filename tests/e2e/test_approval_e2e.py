"""Approval before promotion through the REST API of a real Airflow (the local stack's full group).

Three models whose files require approval (``gate.approval: required``: the file decides the DAG's shape,
so each gets a file of its own in the group's models folder for the test's duration; its data and
experiment come from its ``retrain_config_<model>`` Variable). Their forced retrains run
concurrently; each parks in ``approve`` (state awaiting_input) after registering a challenger the gate
passed. One is approved through the HITL endpoint and its version becomes champion; one is rejected; one
gets no answer before its response timeout (0.01 h, set by the Variable over the file's 1 h: the run's
config, not the file's, sets it) and the scheduler's sweep answers Reject. The last two move nothing:
promote runs and records why, on the version and in the summary mail; a cleared promote reads the
recorded answer again without asking twice.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from include.demo.sample_data import generate_documents
from include.retraining.adapters import registry
from include.retraining.airflow.models import models_dir
from include.retraining.airflow.runtime import env_config, model_variable
from include.retraining.core.config import DEFAULT_CONFIG, deep_merge
from scripts.airflow_api import AirflowClient, RunTimeout
from scripts.airflow_group import isolated_overrides, seed_source
from scripts.local_stack.smtp import delivered

pytestmark = pytest.mark.e2e

PARAMS = {"force_retrain": True, "max_iter": 50, "lookback_hours": 720}
RUN_TIMEOUT = 2400.0  # three retrains at once on 2 shared cores: each parked after 570-1070 s here
FILE_TIMEOUT_HOURS = 1.0  # in each model's file; the timeout model's Variable sets 0.01 h (36 s)
ANSWERS = {"approve": "Approve", "reject": "Reject", "timeout": None}
READING_SECONDS = 20


def model_file() -> dict:
    """The example model, requiring approval."""
    example = json.loads(DEFAULT_CONFIG.read_text())
    return deep_merge(example, {"gate": {"approval": "required", "approval_timeout_hours": FILE_TIMEOUT_HOURS}})


@pytest.fixture(scope="module")
def airflow(airflow_group, stack_environ):
    client = airflow_group.start()
    folder = models_dir(airflow_group.env)
    models, files = {}, []
    try:
        for case in ANSWERS:
            extra = {"gate": {"approval_timeout_hours": 0.01}} if case == "timeout" else {}
            name, overrides = isolated_overrides(f"e2e_{case}", **extra)
            path = folder / f"{name}.json"
            path.write_text(json.dumps(model_file()))
            files.append(path)
            client.set_variable(model_variable(name), json.dumps(overrides), description=f"set by {__name__}")
            variable = f"AIRFLOW_VAR_{model_variable(name).upper()}"
            config = env_config(stack_environ | {variable: json.dumps(overrides)}, model=name)
            models[case] = {"name": name, "dag_id": f"retrain_{name}", "config": config}
        for model in models.values():
            client.unpause(appeared(client, model["dag_id"])["dag_id"])
            # unpausing a catchup=False DAG makes its latest scheduled run, which would wait for approval first
            airflow_group.quiet_dag(client, model["dag_id"])
        yield {"client": client, "models": models, "group": airflow_group}
    finally:
        for path in files:
            path.unlink(missing_ok=True)
            client.delete_variable(model_variable(path.stem))
        client.close()


def appeared(client: AirflowClient, dag_id: str, timeout: float = 300) -> dict:
    """The DAG once the group's dag-processor parsed the new model file."""
    deadline = time.monotonic() + timeout
    while (dag := client.get_dag(dag_id)) is None:
        if time.monotonic() > deadline:
            pytest.fail(f"{dag_id} did not appear in {timeout:.0f} s")
        time.sleep(3)
    return dag


def answered_run(airflow, case: str) -> dict:
    """Trigger the model's retrain, answer its approval request (or let it time out), wait for the end."""
    client: AirflowClient = airflow["client"]
    model = airflow["models"][case]
    dag_id = model["dag_id"]
    run_id = client.trigger(dag_id, PARAMS, note=f"e2e approval {case}")["dag_run_id"]
    began = time.monotonic()
    try:
        client.wait_for_task(dag_id, run_id, "approve", ["awaiting_input"], timeout=RUN_TIMEOUT)
        asked = client.hitl_detail(dag_id, run_id, "approve")
        parked = time.monotonic() - began
        if ANSWERS[case]:
            # as a person would, not within a second of the park: Airflow 3.3.2 then takes the parked try's late
            # executor event for the resumed one and marks it up_for_retry (the retry asks again)
            time.sleep(READING_SECONDS)
            client.respond(dag_id, run_id, "approve", [ANSWERS[case]])
        finished = client.wait_for_run(dag_id, run_id, timeout=RUN_TIMEOUT)
    except RunTimeout as timeout:
        pytest.fail(airflow["group"].explain(client, dag_id, run_id, f"{case}: {timeout}"))
    took = time.monotonic() - began
    print(f"{case}: {run_id} asked after {parked:.0f} s, {finished['state']} after {took:.0f} s", flush=True)
    if finished["state"] != "success":
        pytest.fail(airflow["group"].explain(client, dag_id, run_id, f"{case} {run_id}: {finished['state']}"))
    return {"run_id": run_id, "asked": asked, "answered": client.hitl_detail(dag_id, run_id, "approve")}


@pytest.fixture(scope="module")
def runs(airflow):
    end = datetime.now(UTC)
    for seed, model in enumerate(airflow["models"].values()):
        seed_source(model["config"], generate_documents(4000, start=end - timedelta(days=29), end=end, seed=40 + seed))
    with ThreadPoolExecutor(len(ANSWERS)) as pool:
        futures = {case: pool.submit(answered_run, airflow, case) for case in ANSWERS}
        return {case: future.result() for case, future in futures.items()}


def xcom(airflow, case: str, run_id: str, task_id: str) -> dict:
    dag_id = airflow["models"][case]["dag_id"]
    path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/xcomEntries/return_value"
    value = airflow["client"].request("GET", path)["value"]
    return json.loads(value) if isinstance(value, str) else value


def version_of(airflow, case: str, run_id: str) -> tuple[str, dict, str]:
    """The version the run registered, its tags and its description."""
    config = airflow["models"][case]["config"]
    version = xcom(airflow, case, run_id, "register")["version"]
    found = registry.client(config.mlflow).get_model_version(config.model_name, version)
    return version, dict(found.tags), found.description or ""


def summary_mail(airflow, case: str) -> str:
    name = airflow["models"][case]["config"].model_name
    [mail] = [m for m in delivered() if m["Subject"].strip().startswith(f"[retrain] {name}:")]  # a long one is folded
    return mail.get_body(("html",)).get_content()


def test_the_request_shows_the_gates_evidence_and_links_and_defaults_to_reject(airflow, runs):
    asked = runs["approve"]["asked"]
    config = airflow["models"]["approve"]["config"]
    version, _, _ = version_of(airflow, "approve", runs["approve"]["run_id"])

    assert asked["subject"] == f"Promote {config.model_name} version {version} to champion?"
    assert (asked["options"], asked["defaults"]) == (["Approve", "Reject"], ["Reject"])
    assert f"| **{config.gate.primary_metric}** (primary) |" in asked["body"]
    assert "No champion to compare with" in asked["body"]  # the model's first run: no champion, no drift reference
    assert "Drift: no_reference, 0 of 0 columns drifted." in asked["body"]
    assert (
        f"[Model version in MLflow]({registry.version_url(config.mlflow, config.model_name, version)})"
        in (asked["body"])
    )
    assert "No answer within 1 h counts as Reject." in asked["body"]


def test_approved_the_challenger_becomes_champion(airflow, runs):
    config = airflow["models"]["approve"]["config"]
    version, tags, _ = version_of(airflow, "approve", runs["approve"]["run_id"])
    champion = registry.champion(config.mlflow, config.model_name)

    assert runs["approve"]["answered"]["responded_by_user"]["name"] == "admin"
    assert champion is not None
    assert champion.version == version
    assert tags["approval"] == "approved"
    assert tags["approval_reason"].startswith("approved by admin at ")


@pytest.mark.parametrize(
    ("case", "outcome", "reason"),
    [("reject", "rejected", "rejected by admin at "), ("timeout", "timed_out", "no answer within 0.01 h")],
)
def test_rejected_or_unanswered_the_champion_stays_and_version_and_mail_say_why(airflow, runs, case, outcome, reason):
    config = airflow["models"][case]["config"]
    run_id = runs[case]["run_id"]
    version, tags, description = version_of(airflow, case, run_id)
    promotion = xcom(airflow, case, run_id, "promote")

    assert registry.champion(config.mlflow, config.model_name) is None  # the model's first run: still none
    assert (tags["approval"], tags["approval_reason"][: len(reason)]) == (outcome, reason)
    assert f"Approval: {reason}" in description
    assert promotion["promoted"] is False
    assert f"version {version} not approved: {reason}" in promotion["reason"]
    assert f"not approved: {reason}" in summary_mail(airflow, case)


def test_a_cleared_promote_reads_the_recorded_answer_without_asking_again(airflow, runs):
    client: AirflowClient = airflow["client"]
    model = airflow["models"]["reject"]
    run_id = runs["reject"]["run_id"]
    before = {ti["task_id"]: ti["try_number"] for ti in client.task_instances(model["dag_id"], run_id)}

    client.clear_task(model["dag_id"], run_id, "promote")
    finished = client.wait_for_run(model["dag_id"], run_id, timeout=RUN_TIMEOUT)

    after = {ti["task_id"]: ti["try_number"] for ti in client.task_instances(model["dag_id"], run_id)}
    assert finished["state"] == "success"
    assert after["promote"] == before["promote"] + 1
    assert after["approve"] == before["approve"]  # not asked twice
    answer = ("chosen_options", "responded_by_user", "responded_at")
    again = client.hitl_detail(model["dag_id"], run_id, "approve")
    assert [again[key] for key in answer] == [runs["reject"]["answered"][key] for key in answer]
    assert xcom(airflow, "reject", run_id, "promote")["promoted"] is False
    assert registry.champion(model["config"].mlflow, model["config"].model_name) is None
