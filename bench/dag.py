"""The whole retrain DAG of the example model: ``airflow dags test`` of this tree and of a baseline commit,
against the same stack and the same collection, and this tree's stage functions called from one process.

- ``dags_test``: ``airflow dags test retrain_vehicle_insurance <the data's last day> -c '{"force_retrain": true}'`` (the
  baseline's id where it predates the DAG factory: ``retrain_model``); per-task seconds are
  read from the run's task instances; the peak RSS is the process's (``dags test`` runs every task in it).
- ``in_process``: the same stages in DAG order, each in a forked child (its own peak RSS) of one driver
  process: the DAG's wall time over their sum is the orchestration overhead.
- ``baseline``: the baseline commit (default ``eb49517``, before issue 11) checked out into a temporary
  ``git worktree`` and run with this venv, its own Airflow metadata DB and its own model name.

Each version first trains a first champion on the 10k window (``warm_up_10k``, not in the medians; the
new tree's without the refit, so its holdout stays new to it), so every measured run
re-scores a champion as a real retrain does; then ``repeat`` interleaved rounds, each against that
champion again (its alias is moved back before each round): a round whose gate passes refits on the
whole window, and the next round would otherwise find no row new to its champion to judge one on.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from bench import datasets
from bench.datasets import collection_name
from bench.measure import in_child, median, run_command
from include.retraining.core.graph import RETRAIN

RETRAIN_DAG_ID = "BENCH_RETRAIN_DAG_ID"  # env key: the retrain DAG id of a version's tree
CHAMPION = "champion"  # the registry alias, in both trees

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".local" / "bench"
STAGES = tuple(name for name in RETRAIN.names if name != "skip")  # a forced run takes the retrain path


def baseline_tree(ref: str) -> Path:
    """A detached ``git worktree`` of ``ref`` under .local/bench (reused while it exists)."""
    sha = subprocess.run(["git", "rev-parse", ref], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    tree = WORK / f"baseline-{sha[:12]}"
    if not (tree / "dags").is_dir():
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(tree), sha], cwd=ROOT, check=True, capture_output=True
        )
    return tree


def remove_baseline_tree(tree: Path) -> None:
    subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False, capture_output=True)


def version_env(label: str, version: str, tree: Path) -> dict[str, str]:
    """The stack's environment, with this version's code, metadata DB, model name and experiment."""
    home = WORK / f"airflow-{version}"
    if not (home / "airflow.db").exists():
        home.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(os.environ["AIRFLOW_HOME"]) / "airflow.db", home / "airflow.db")
    name = f"bench_{label}_{version}"
    # the baseline predates the least-privilege pipeline user (#10): it creates its indexes itself
    rights = {"AIRFLOW_CONN_MONGO_DEFAULT": os.environ["AIRFLOW_CONN_MONGO_ADMIN"]} if version == "baseline" else {}
    deployment = {"model_name": name, "source": {"collection": collection_name(label)}, "mlflow": {"experiment": name}}
    return (
        os.environ
        | {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(tree / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(tree / "plugins"),
            "PYTHONPATH": str(tree),
            "AIRFLOW_VAR_RETRAIN_CONFIG": json.dumps(deployment),
            "GIT_SHA": version,
            RETRAIN_DAG_ID: retrain_dag_id(tree),
        }
        | rights
    )


def retrain_dag_id(tree: Path) -> str:
    """The example model's retrain DAG in ``tree``: one per model since the DAG factory, one in all before."""
    return "retrain_model" if (tree / "dags" / "retrain_model.py").exists() else "retrain_vehicle_insurance"


def dags_test(env: dict[str, str], log_name: str) -> dict[str, float]:
    airflow = str(Path(sys.executable).parent / "airflow")
    logical_date = datasets.END.isoformat()  # the bench data's last day: its window holds every document
    command = [airflow, "dags", "test", env[RETRAIN_DAG_ID], logical_date, "-c", json.dumps({"force_retrain": True})]
    seconds, peak, output = run_command(command, env=env, cwd=env["PYTHONPATH"])
    (WORK / "logs").mkdir(parents=True, exist_ok=True)
    (WORK / "logs" / f"{log_name}-{time.strftime('%Y%m%dT%H%M%S')}.log").write_text(output)
    return {"seconds": seconds, "peak_rss_mb": peak} | task_seconds(
        Path(env["AIRFLOW_HOME"]) / "airflow.db", env[RETRAIN_DAG_ID]
    )


def task_seconds(database: Path, dag_id: str) -> dict[str, float]:
    """Seconds of each task of the newest run of ``dag_id``, from its task instances."""
    with sqlite3.connect(database) as db:
        (run_id,) = db.execute(
            "select run_id from dag_run where dag_id = ? order by id desc limit 1", (dag_id,)
        ).fetchone()
        rows = db.execute(
            "select task_id, start_date, end_date, state from task_instance where dag_id = ? and run_id = ?",
            (dag_id, run_id),
        ).fetchall()
    failed = [task for task, _, _, state in rows if state not in ("success", "skipped")]
    if failed:
        raise RuntimeError(f"{dag_id} run {run_id}: tasks not successful: {failed}")
    parse = datetime.fromisoformat
    return {
        f"task.{task}": (parse(end) - parse(start)).total_seconds() for task, start, end, _ in rows if end and start
    }


def in_process(env: dict[str, str]) -> dict[str, float]:
    """This tree's stage functions in DAG order, each in a forked child of this process."""
    os.environ["AIRFLOW_VAR_RETRAIN_CONFIG"] = env["AIRFLOW_VAR_RETRAIN_CONFIG"]
    imports_started = time.perf_counter()
    preimport()  # paid once, as in one process; the children inherit the loaded modules (not clients)
    records: dict[str, object] = {}  # by stage, as the DAG's tasks hand them on
    figures: dict[str, float] = {"imports_s": time.perf_counter() - imports_started}
    run = {"run_id": f"bench_in_process_{time.time_ns()}", "run_end": datasets.END.isoformat()}
    started = time.perf_counter()
    for stage in STAGES:
        stage_started = time.perf_counter()
        records[stage], peak, base = in_child(call_stage, stage, RETRAIN.inputs(stage, records), run)
        figures[f"task.{stage}"] = time.perf_counter() - stage_started
        figures[f"task.{stage}.peak_rss_mb"] = peak
        figures[f"task.{stage}.rss_growth_mb"] = peak - base
    figures["seconds"] = time.perf_counter() - started
    figures["peak_rss_mb"] = max(v for k, v in figures.items() if k.endswith("peak_rss_mb"))
    return figures


def preimport() -> None:
    import evidently.presets  # noqa: F401
    import mlflow.sklearn  # noqa: F401
    import pymongoarrow.api  # noqa: F401
    import sklearn.ensemble  # noqa: F401
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook  # noqa: F401
    from airflow.providers.mongo.hooks.mongo import MongoHook  # noqa: F401

    from include.retraining import stages  # noqa: F401


def call_stage(stage: str, records: dict, run: dict) -> object:
    from include.retraining import stages
    from include.retraining.airflow.runtime import env_config
    from include.retraining.airflow.task import call_stage as adapter
    from include.retraining.core.records import RunInfo

    info = RunInfo(
        dag_id="retrain_vehicle_insurance", reason="manual", trigger={}, force_retrain=True, monitor_check=None, **run
    )
    return adapter(getattr(stages, stage), records, env_config, lambda: info)


def mlflow_client():
    from mlflow import MlflowClient

    return MlflowClient(os.environ["MLFLOW_TRACKING_URI"])


def drop_champion_alias(model_name: str) -> None:
    from mlflow.exceptions import MlflowException

    with contextlib.suppress(MlflowException):  # no such model yet (the first bench of this size)
        mlflow_client().delete_registered_model_alias(model_name, CHAMPION)


def champion_version(model_name: str) -> str:
    return mlflow_client().get_model_version_by_alias(model_name, CHAMPION).version


def move_champion_alias(model_name: str, version: str) -> None:
    mlflow_client().set_registered_model_alias(model_name, CHAMPION, version)


def bench_dag(label: str, repeat: int, baseline_ref: str) -> dict[str, float]:
    tree = baseline_tree(baseline_ref)
    envs = {"baseline": version_env(label, "baseline", tree), "new": version_env(label, "new", ROOT)}
    candidates = {
        "baseline.dags_test": lambda: dags_test(envs["baseline"], f"{label}-baseline"),
        "new.dags_test": lambda: dags_test(envs["new"], f"{label}-new"),
        "new.in_process": lambda: in_process(envs["new"]),
    }
    figures: dict[str, float] = {}
    champions = {}
    for version, env in envs.items():  # each version's first champion, cheaply: trained on the 10k window
        deployment = json.loads(env["AIRFLOW_VAR_RETRAIN_CONFIG"])
        deployment["source"]["collection"] = collection_name("10k")
        if version == "new":  # the baseline predates the refit (and would refuse the key)
            deployment["training"] = {"refit": False}
        warm_up = env | {"AIRFLOW_VAR_RETRAIN_CONFIG": json.dumps(deployment)}
        model_name = deployment["model_name"]
        drop_champion_alias(model_name)  # a first champion, as on a fresh registry
        warmed = dags_test(warm_up, f"{label}-{version}-warm-up")
        champions[version] = (model_name, champion_version(model_name))
        figures |= {f"dag.{label}.{version}.warm_up_10k.{k}": v for k, v in warmed.items() if "." not in k}
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in candidates}
    try:
        for _ in range(repeat):
            for name, candidate in candidates.items():
                move_champion_alias(*champions[name.split(".")[0]])
                runs[name].append(candidate())
                print(f"  dag {label} {name}: {runs[name][-1]['seconds']:.1f} s", flush=True)
    finally:  # the worktree is registered in the shared repository: leave none behind
        remove_baseline_tree(tree)
    for name, values in runs.items():
        for key in values[0]:
            pick = max if key.endswith("peak_rss_mb") else median
            figures[f"dag.{label}.{name}.{key}"] = pick([v[key] for v in values if key in v])
    base = figures[f"dag.{label}.baseline.dags_test.seconds"]
    figures[f"dag.{label}.new.dags_test.speedup"] = base / figures[f"dag.{label}.new.dags_test.seconds"]
    figures[f"dag.{label}.new.orchestration_overhead"] = (
        figures[f"dag.{label}.new.dags_test.seconds"] / figures[f"dag.{label}.new.in_process.seconds"]
    )
    return figures
