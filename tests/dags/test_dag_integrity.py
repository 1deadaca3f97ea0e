"""Every DAG parses cleanly, declares ownership and retries, and stays cheap at parse time."""

from __future__ import annotations

import ast
import inspect
import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
HEAVY_MODULES = ("pandas", "sklearn", "evidently", "mlflow", "pymongo", "pymongoarrow", "boto3", "pyarrow")

# Imports one DAG file with sockets disabled and reports what it pulled in. Airflow's SDK and file
# processor are imported first: the dag-processor has them loaded before it parses any file.
PROBE = """
import json, socket, sys, importlib.util
import airflow.sdk
import airflow.dag_processing.processor
def refuse(*args, **kwargs):
    raise RuntimeError("network access at DAG parse time")
socket.socket.connect = refuse
socket.create_connection = refuse
before = set(sys.modules)
spec = importlib.util.spec_from_file_location("dag_under_test", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps(sorted(set(sys.modules) - before)))
"""


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) >= {"retrain_model"}


def test_every_dag_has_tags_owner_and_retries(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id} has no tags"
        assert dag.doc_md, f"{dag_id} has no doc_md"
        for task in dag.tasks:
            assert task.owner not in ("", "airflow"), f"{dag_id}.{task.task_id} has no real owner"
            assert task.retries >= 1, f"{dag_id}.{task.task_id} has no retries"


def test_retrain_model_shape(dagbag):
    dag = dagbag.dags["retrain_model"]
    expected = {
        "extract",
        "validate",
        "detect_drift",
        "alert_on_drift",
        "decide",
        "retrain_or_skip",
        "skip",
        "train",
        "evaluate",
        "register",
        "promote",
        "notify",
    }
    assert set(dag.task_ids) == expected
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert dag.task_dict["retrain_or_skip"].downstream_task_ids == {"train", "skip"}
    assert dag.task_dict["train"].pool == "training"
    assert set(dag.params) >= {"force_retrain", "lookback_hours", "drift_share_threshold", "min_improvement"}


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_parses_without_heavy_imports_or_network(dag_file):
    # Airflow puts the plugins folder on sys.path; the repo root makes `include` importable
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'plugins'}"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(dag_file)], capture_output=True, text=True, env=env, check=False
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    heavy = sorted(
        {name for name in loaded for prefix in HEAVY_MODULES if name == prefix or name.startswith(prefix + ".")}
    )
    assert heavy == [], f"{dag_file.name} imports {heavy} at parse time; import them inside the tasks"


def test_drift_monitor_shape(dagbag):
    dag = dagbag.dags["drift_monitor"]
    assert dag.max_active_runs == 1
    assert type(dag.timetable).__name__ == "ContinuousTimetable"
    # without a start_date the continuous timetable re-proposes its first logical date forever
    assert dag.start_date is not None
    sensor = dag.task_dict["wait_for_new_data"]
    assert sensor.deferrable
    assert {"watermark", "min_documents", "timestamp_field"} <= set(sensor.template_fields)
    assert dag.task_dict["route"].downstream_task_ids == {"send_drift_alert", "retrain_conf", "record_no_drift"}
    # the watermark waits for the window to be handled, but not for the alert mail
    advance = dag.task_dict["advance_watermark"]
    assert {"trigger_retrain", "record_no_drift"} <= advance.upstream_task_ids
    assert "send_drift_alert" not in advance.upstream_task_ids
    assert dag.task_dict["trigger_retrain"].trigger_dag_id == "retrain_model"


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_every_task_body_is_one_stage_call(dag_file):
    """The DAG declares, the library decides: a TaskFlow task is one ``return run_stage(...)`` (a branch
    may instead return a routing expression); the logic lives in include/retraining/stages."""
    offenders = []
    for node in ast.walk(ast.parse(dag_file.read_text())):
        if not isinstance(node, ast.FunctionDef) or not any(_is_task_decorator(d) for d in node.decorator_list):
            continue
        body = [stmt for stmt in node.body if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant))]
        branch = any("branch" in ast.unparse(d) for d in node.decorator_list)
        one_call = len(body) == 1 and isinstance(body[0], ast.Return)
        calls_stage = one_call and "run_stage(" in ast.unparse(body[0])
        if not (calls_stage or (branch and one_call)):
            offenders.append(node.name)
    assert offenders == [], f"{dag_file.name}: tasks with more than one stage call: {offenders}"


def _is_task_decorator(decorator: ast.expr) -> bool:
    return ast.unparse(decorator).startswith("task")


def test_retrain_model_draws_the_lifecycle_chain_and_the_branch_only(dagbag):
    """Records a task was not handed are pulled by run_stage, so the graph has the chain, not the data web."""
    dag = dagbag.dags["retrain_model"]
    edges = {(task.task_id, down) for task in dag.tasks for down in task.downstream_task_ids}
    chain = ["extract", "validate", "detect_drift", "decide", "retrain_or_skip", "train", "evaluate", "register"]
    expected = set(itertools.pairwise([*chain, "promote"])) | {
        ("promote", "notify"),
        ("retrain_or_skip", "skip"),
        ("skip", "notify"),
        ("detect_drift", "alert_on_drift"),
    }
    assert edges == expected


def test_every_record_a_retrain_task_pulls_comes_from_a_task_upstream_of_it(dagbag):
    """What run_stage pulls (PRODUCERS) has run before the task: the data dependencies the graph leaves out
    still hold through the chain."""
    from include.retraining import stages
    from include.retraining.airflow.task import PRODUCERS

    dag = dagbag.dags["retrain_model"]
    for task in dag.tasks:
        if not hasattr(stages, task.task_id):
            continue  # the branch
        upstream = {t.task_id for t in task.get_flat_relatives(upstream=True)}
        needed = [p for p in inspect.signature(getattr(stages, task.task_id)).parameters if p in PRODUCERS]
        missing = [f"{p} (from {PRODUCERS[p]})" for p in needed if PRODUCERS[p] not in upstream]
        assert missing == [], f"{task.task_id} pulls records from tasks not upstream of it: {missing}"
