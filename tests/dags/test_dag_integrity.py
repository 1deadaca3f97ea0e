"""Every DAG parses cleanly, declares ownership and retries, and stays cheap at parse time; the DAG
factory makes one DAG set (retrain, drift monitor, rollback, score) per model config, and a broken config
takes only its own model's DAGs out."""

from __future__ import annotations

import ast
import inspect
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from include.retraining.airflow.models import KINDS, MODELS_DIR_ENV, dag_id
from include.retraining.core.config import DEFAULT_CONFIG

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted((ROOT / "dags").glob("*.py"))
RETRAIN, MONITOR, ROLLBACK, SCORE = (dag_id(kind, "vehicle_insurance") for kind in KINDS)
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


def write_model(folder: Path, model: str, **changes) -> Path:
    """The example model under another id, reading a collection of its own, with ``changes`` on top."""
    config = json.loads(DEFAULT_CONFIG.read_text())
    config["source"]["collection"] = model
    path = folder / f"{model}.json"
    path.write_text(json.dumps(config | changes))
    return path


@pytest.fixture(scope="module")
def three_models(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    shutil.copy(DEFAULT_CONFIG, folder)
    write_model(folder, "wine", start_date="2014-01-01", mlflow={"experiment": "wine"})
    write_model(folder, "diabetes", gate={"floor": 0.5})
    return folder


def bag(monkeypatch, models_dir: Path):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv(MODELS_DIR_ENV, str(models_dir))
    return DagBag(dag_folder=str(ROOT / "dags"))


def test_one_dag_set_per_model_config(monkeypatch, three_models):
    dags = bag(monkeypatch, three_models)

    assert dags.import_errors == {}
    models = ("vehicle_insurance", "wine", "diabetes")
    assert set(dags.dag_ids) == {dag_id(kind, model) for kind in KINDS for model in models}
    for model in models:
        monitor = dags.dags[dag_id("drift_monitor", model)]
        assert monitor.task_dict["trigger_retrain"].trigger_dag_id == dag_id("retrain", model)
        retrain = dags.dags[dag_id("retrain", model)]
        assert model in retrain.tags
        assert f"in {model}.json" in retrain.params.get_param("min_improvement").description  # its own file
    # the start date comes from the model config; without one, the documented early default
    assert dags.dags["retrain_wine"].start_date == datetime(2014, 1, 1, tzinfo=UTC)
    assert dags.dags["rollback_wine"].start_date == datetime(2014, 1, 1, tzinfo=UTC)
    assert dags.dags["retrain_diabetes"].start_date == datetime(2000, 1, 1, tzinfo=UTC)


BROKEN_GATE = {"primary_metric": "auc"}  # not a metric: a ConfigError naming gate.primary_metric


def broken_folder(folder: Path) -> Path:
    shutil.copy(DEFAULT_CONFIG, folder)
    write_model(folder, "wine")
    write_model(folder, "broken", gate=BROKEN_GATE)
    return folder


def test_a_broken_config_is_an_import_error_for_its_own_model_only(monkeypatch, tmp_path):
    dags = bag(monkeypatch, broken_folder(tmp_path))

    assert set(dags.dag_ids) == {dag_id(kind, model) for kind in KINDS for model in ("vehicle_insurance", "wine")}
    assert [Path(file).name for file in dags.import_errors] == ["model_configs.py"]
    error = next(iter(dags.import_errors.values()))
    assert "retrain_broken, drift_monitor_broken, rollback_broken, score_broken not loaded" in error
    assert "broken.json: invalid configuration: gate.primary_metric 'auc' is not a metric of objective binary" in error
    assert "wine" not in error


def test_a_file_name_that_makes_no_dag_id_is_reported(monkeypatch, tmp_path):
    shutil.copy(DEFAULT_CONFIG, tmp_path / "churn model.json")

    dags = bag(monkeypatch, tmp_path)

    assert dags.dag_ids == []
    error = next(iter(dags.import_errors.values()))
    assert "churn model.json: the file name is the model id in the DAG ids" in error
    assert "churn_model.json" in error


def test_in_the_metadata_db_a_broken_config_leaves_the_other_models_dags_active(tmp_path):
    """What the dag-processor records (`dags reserialize` runs the same sync): an import error marks every
    DAG of its file stale, which is why the broken model is reported from a file of its own."""
    home = tmp_path / "airflow"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "PYTHONPATH": str(ROOT),
        MODELS_DIR_ENV: str(broken_folder(tmp_path)),
    }
    home.mkdir()
    for command in (["db", "migrate"], ["dags", "reserialize"]):
        airflow = str(Path(sys.executable).parent / "airflow")
        result = subprocess.run([airflow, *command], env=env, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr[-3000:]
    with sqlite3.connect(home / "airflow.db") as db:
        dags = db.execute("select dag_id, is_stale, has_import_errors from dag").fetchall()
        errors = db.execute("select filename, stacktrace from import_error").fetchall()

    healthy = {dag_id(kind, model) for kind in KINDS for model in ("vehicle_insurance", "wine")}
    assert {row[0] for row in dags} == healthy
    assert all(not stale and not failed for _, stale, failed in dags), dags
    assert [filename for filename, _ in errors] == ["model_configs.py"]
    assert "retrain_broken, drift_monitor_broken, rollback_broken, score_broken not loaded" in errors[0][1]


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == {RETRAIN, MONITOR, ROLLBACK, SCORE}  # the example model's DAGs


def test_every_dag_has_tags_owner_and_retries(dagbag):
    for name, dag in dagbag.dags.items():
        assert dag.tags, f"{name} has no tags"
        assert dag.doc_md, f"{name} has no doc_md"
        for task in dag.tasks:
            assert task.owner not in ("", "airflow"), f"{name}.{task.task_id} has no real owner"
            assert task.retries >= 1, f"{name}.{task.task_id} has no retries"


def test_retrain_model_shape(dagbag):
    dag = dagbag.dags[RETRAIN]
    expected = {
        "resolve_config",
        "extract",
        "validate",
        "detect_drift",
        "alert_on_drift",
        "decide",
        "retrain_or_skip",
        "skip",
        "train",
        "evaluate",
        "refit",
        "register",
        "promote",
        "notify",
    }
    assert set(dag.task_ids) == expected
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert dag.task_dict["retrain_or_skip"].downstream_task_ids == {"train", "skip"}
    assert dag.task_dict["train"].pool == "training"
    assert dag.task_dict["refit"].pool == "training"
    heavy = {task.task_id for task in dag.tasks if task.queue == "heavy"}
    assert heavy == {"extract", "detect_drift", "train", "evaluate", "refit"}, "the heavy queue's tasks"
    assert {task.queue for task in dag.tasks if task.task_id not in heavy} == {"default"}
    assert set(dag.params) >= {"force_retrain", "lookback_hours", "false_alarm_rate", "min_improvement"}


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_parses_without_heavy_imports_or_network(dag_file, three_models):
    # Airflow puts the plugins folder on sys.path; the repo root makes `include` importable
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'plugins'}", MODELS_DIR_ENV: str(three_models)}
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
    dag = dagbag.dags[MONITOR]
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
    assert dag.task_dict["trigger_retrain"].trigger_dag_id == RETRAIN  # its own model's retrain
    assert dag.task_dict["open_window"].upstream_task_ids == {"resolve_config"}


def test_promote_and_rollback_emit_the_champion_asset_the_score_dag_runs_on_or_nightly(dagbag):
    promote = dagbag.dags[RETRAIN].task_dict["promote"]
    score = dagbag.dags[SCORE]
    emitted = [asset.name for asset in promote.outlets]

    assert emitted == ["champion_vehicle_insurance"]
    assert [task.task_id for task in dagbag.dags[RETRAIN].tasks if task.outlets] == ["promote"]
    assert [asset.name for asset in dagbag.dags[ROLLBACK].task_dict["rollback"].outlets] == emitted
    assert type(score.timetable).__name__ == "AssetOrTimeSchedule"
    assert score.timetable.asset_condition.name == emitted[0]
    assert score.timetable.timetable.expression == "0 4 * * *"
    assert set(score.task_ids) == {"resolve_config", "score"}


@pytest.mark.parametrize("dag_file", DAG_FILES, ids=lambda p: p.name)
def test_every_task_body_is_one_stage_call(dag_file):
    """The DAG declares, the library decides: the stage tasks come from the task adapter
    (``stage_tasks``); a TaskFlow task a DAG file defines itself is one ``return run_stage(...)`` or a
    branch returning a routing expression; the logic lives in include/retraining."""
    offenders = []
    for node in ast.walk(ast.parse(dag_file.read_text())):
        if not isinstance(node, ast.FunctionDef) or not any(_is_task_decorator(d) for d in node.decorator_list):
            continue
        body = [stmt for stmt in node.body if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant))]
        branch = any("branch" in ast.unparse(d) for d in node.decorator_list)
        one_call = len(body) == 1 and isinstance(body[0], ast.Return)
        calls_stage = one_call and any(call in ast.unparse(body[0]) for call in ("run_stage(", "resolve_run_config("))
        if not (calls_stage or (branch and one_call)):
            offenders.append(node.name)
    assert offenders == [], f"{dag_file.name}: tasks with more than one stage call: {offenders}"


def _is_task_decorator(decorator: ast.expr) -> bool:
    return ast.unparse(decorator).startswith("task")


# the edges a DAG draws besides its graph's data edges: its branches, and the operators it declares itself
CONTROL_EDGES = {
    RETRAIN: {
        ("decide", "retrain_or_skip"),
        ("retrain_or_skip", "train"),
        ("retrain_or_skip", "skip"),
        ("skip", "notify"),
    },
    MONITOR: {
        ("open_window", "wait_for_new_data"),
        ("route", "send_drift_alert"),
        ("route", "retrain_conf"),
        ("route", "record_no_drift"),
        ("retrain_conf", "trigger_retrain"),
        ("trigger_retrain", "advance_watermark"),
        ("record_no_drift", "advance_watermark"),
    },
    ROLLBACK: set(),
    SCORE: set(),
}


@pytest.mark.parametrize("dag_id", [RETRAIN, MONITOR, ROLLBACK, SCORE])
def test_each_dag_draws_the_data_edges_of_its_stage_graph_and_only_its_branches_besides(dagbag, dag_id):
    """Every record a stage takes is handed to its task by the task that makes it, so Airflow's graph shows
    what feeds what; nothing is pulled behind the graph's back."""
    from include.retraining.core.graph import MONITOR as MONITOR_GRAPH
    from include.retraining.core.graph import RETRAIN as RETRAIN_GRAPH
    from include.retraining.core.graph import ROLLBACK as ROLLBACK_GRAPH
    from include.retraining.core.graph import SCORE as SCORE_GRAPH

    graph = {RETRAIN: RETRAIN_GRAPH, MONITOR: MONITOR_GRAPH, ROLLBACK: ROLLBACK_GRAPH, SCORE: SCORE_GRAPH}[dag_id]
    dag = dagbag.dags[dag_id]
    edges = {(task.task_id, down) for task in dag.tasks for down in task.downstream_task_ids}

    assert graph.edges() <= edges, f"data edges the DAG does not draw: {sorted(graph.edges() - edges)}"
    assert edges - graph.edges() == CONTROL_EDGES[dag_id]
    for stage in graph.stages:
        task = dag.task_dict[stage.name]
        assert task.pool == (stage.pool or "default_pool")
        assert task.queue == (stage.queue or "default")
        assert (task.trigger_rule == "none_failed_min_one_success") == stage.join
        # no **kwargs: Airflow hands a callable that has them the whole task context besides its records
        assert list(inspect.signature(task.python_callable).parameters) == ["config", *stage.takes]


def test_a_task_handed_a_record_from_another_task_than_its_maker_fails_the_parse():
    from airflow.sdk import DAG

    from include.retraining.airflow.task import stage_tasks
    from include.retraining.core.graph import RETRAIN as RETRAIN_GRAPH

    with DAG("wired_wrong", schedule=None):
        tasks = stage_tasks(RETRAIN_GRAPH, "vehicle_insurance")
        config = tasks.resolve_config()
        validation = tasks.validate(config, tasks.extract(config))
        drift = tasks.detect_drift(config, validation)
        training = tasks.train(config, validation, drift)
        with pytest.raises(ValueError, match=r"task refit is handed training from evaluate \(not train\)"):
            tasks.refit(config, tasks.evaluate(config, training), training)  # the records swapped
        with pytest.raises(TypeError, match=r"task evaluate is handed \(config, training\).*missing"):
            tasks.evaluate(config)
