"""The local stack's full Airflow group (`python -m scripts.local_stack up --airflow`), driven from Python:
by the e2e tests (tests/e2e/conftest.py wraps it in fixtures) and by the monitor bench (bench/monitor.py).

The group (API server, scheduler, dag-processor, triggerer; with the celery topology also PostgreSQL, Redis
and two Celery workers) runs on the main stack's state dir with its own metadata DB. ``start`` is idempotent
(a running group is reused, on its topology unless one is asked for); ``stop`` stops it again. Its processes'
environment is fixed when it starts, so a caller isolates its data through the Airflow Variable
``retrain_config`` (set over the REST API, see ``isolated_overrides``), never through ``AIRFLOW_VAR_*``.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scripts.airflow_api import AirflowClient, read_env_file
from scripts.local_stack.airflow import ALL, members, topology
from scripts.local_stack.supervisor import running, state_dir

ROOT = Path(__file__).resolve().parents[1]
ADMIN_CONN_ID = "mongo_admin"  # AIRFLOW_CONN_MONGO_ADMIN in stack.env
SENSOR_TASK = "wait_for_new_data"  # the drift monitor's deferrable sensor
UNFINISHED = ("deferred", "running", "queued", "scheduled", "up_for_reschedule", None)


class AirflowGroupError(RuntimeError):
    """The group did not start; the message carries the command's output and the components' logs."""


def isolated_overrides(prefix: str, **extra: dict) -> tuple[str, dict]:
    """A unique name and the ``retrain_config`` overrides that give a caller its own collection, model,
    experiment, S3 prefix and drift-check collection on the shared stack."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    overrides = {
        "model_name": name,
        "source": {"collection": name},
        "monitoring": {"collection": f"{name}_drift_checks"},
        "mlflow": {"experiment": name},
        "storage": {"prefix": f"e2e/{name}"},
    }
    for section, values in extra.items():
        overrides[section] = overrides.get(section, {}) | values
    return name, overrides


def seed_source(config, docs: list[dict]) -> int:
    """As the MongoDB administrator (the pipeline's user may only read the source): the setup step for
    this config (its indexes, the pipeline role's privileges on its collections), then the documents."""
    from include.retraining.adapters import mongo, mongo_setup

    mongo_setup.setup(config, ADMIN_CONN_ID)
    source = config.source
    return mongo.insert_documents(docs, database=source.database, collection=source.collection, conn_id=ADMIN_CONN_ID)


def insert_recent(config, rows: int, seed: int, **knobs) -> datetime:
    """``rows`` sample documents (``knobs``: the generator's drift knobs) stamped in the last seconds: newer
    than any watermark already set, and none in the future (the sensor counts up to now, so documents
    stamped ahead would be split across two windows). Returns the oldest stamp."""
    from include.demo.sample_data import generate_documents

    end = datetime.now(UTC) - timedelta(milliseconds=500)
    start = end - timedelta(seconds=2)
    docs = generate_documents(rows, start=start, end=end, seed=seed, **knobs)
    random.Random(seed).shuffle(docs)  # like concurrent writers: a sensor poll during the insert sees the newest stamp
    seed_source(config, docs)
    return start


def tail(path: Path, lines: int = 80) -> str:
    with path.open("rb") as file:
        file.seek(max(0, path.stat().st_size - 200_000))
        return "\n".join(file.read().decode(errors="replace").splitlines()[-lines:])


class AirflowGroup:
    """Start and stop the group, talk to it, and explain a failure with its logs."""

    def __init__(self, state: Path | None = None):
        self.state = state or state_dir()
        self.env: dict[str, str] = {}

    def running(self) -> bool:
        """Is every process of its topology alive (so ``start`` would only reuse it)?"""
        return all(running(self.state, name) for name in members(topology(self.state)))

    def start(
        self, unpause: Iterable[str] = (), topology: str | None = None, models_dir: Path | None = None
    ) -> AirflowClient:
        """`local_stack up --airflow [--topology ...] [--models-dir ...]` (reuses a running group of that topology
        and models folder), unpause ``unpause``; a logged-in client."""
        command = [sys.executable, "-m", "scripts.local_stack", "up", "--airflow"]
        if topology:
            command += ["--topology", topology]
        if models_dir:
            command += ["--models-dir", str(models_dir)]
        if dag_ids := ",".join(unpause):
            command += ["--unpause", dag_ids]
        began = time.monotonic()
        result = self._local_stack(command, timeout=600)
        if result.returncode != 0:
            raise AirflowGroupError(
                f"`{' '.join(command[1:])}` failed:\n{result.stdout}\n{result.stderr}\n{self.logs()}"
            )
        print(f"airflow group up in {time.monotonic() - began:.0f} s", flush=True)
        self.env = read_env_file(self.state / "airflow.env")
        client = AirflowClient.from_env(self.env)
        client.login()
        return client

    def stop(self) -> str:
        """`local_stack down --airflow`: the group only, the services keep running; its output."""
        result = self._local_stack([sys.executable, "-m", "scripts.local_stack", "down", "--airflow"], timeout=120)
        return result.stdout + result.stderr

    def _local_stack(self, command: list[str], timeout: float) -> subprocess.CompletedProcess:
        env = os.environ | {"LOCAL_STACK_DIR": str(self.state)}
        return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False)

    def logs(self, dag_id: str | None = None, run_id: str | None = None, lines: int = 80) -> str:
        """The last lines of each component's log and of the task logs of one run (or of the newest ones)."""
        parts = []
        for name in ALL:
            log = self.state / "logs" / f"{name}.log"
            if name not in members(topology(self.state)) and not log.exists():
                continue
            parts.append(f"==== {log}\n{tail(log, lines) if log.exists() else '(no log)'}")
        task_logs = self.state / "airflow-server" / "logs"
        pattern = f"dag_id={dag_id or '*'}/run_id={run_id or '*'}/task_id=*/**/*.log"
        found = sorted(task_logs.glob(pattern), key=lambda path: path.stat().st_mtime)
        for log in found[-12:]:  # a retrain run has about a dozen tasks
            parts.append(f"==== {log}\n{tail(log, lines)}")
        parsing = sorted((task_logs / "dag_processor").glob("**/*.log"), key=lambda path: path.stat().st_mtime)
        for log in parsing[-2:]:  # import errors show up here
            parts.append(f"==== {log}\n{tail(log, 30)}")
        return "\n".join(parts)

    def explain(self, client: AirflowClient, dag_id: str, run_id: str, headline: str) -> str:
        """For a failure message: the headline, the state of each task, the logs."""
        try:
            tasks = ", ".join(f"{ti['task_id']}={ti['state']}" for ti in client.task_instances(dag_id, run_id))
        except Exception as error:  # the report must not hide the failure it explains
            tasks = f"(could not list the task instances: {error})"
        return f"{headline}\ntasks: {tasks}\n{self.logs(dag_id, run_id)}"

    @staticmethod
    def quiet_dag(client: AirflowClient, dag_id: str, timeout: float = 60.0) -> list[str]:
        """Fail every queued or running run of ``dag_id``, so that a caller's own run does not queue behind it
        (``max_active_runs=1``): the latest scheduled run, which the scheduler creates as soon as a
        ``catchup=False`` DAG is unpaused, or a leftover of an interrupted session. First waits until the
        scheduler has created that run (the DAG's next run lies in the future). Returns the failed run ids."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            next_run = (client.get_dag(dag_id) or {}).get("next_dagrun_run_after")
            if not next_run or datetime.fromisoformat(next_run) > datetime.now(UTC):
                break
            time.sleep(1)
        failed = []
        for run in client.list_runs(dag_id, states=("queued", "running")):
            client.set_run_state(dag_id, run["dag_run_id"], "failed", note="stopped to run our own")
            failed.append(run["dag_run_id"])
        return failed

    @staticmethod
    def end_monitor_runs(client: AirflowClient, dag_id: str) -> None:
        """Let the running runs of a ``@continuous`` monitor finish by skipping their unfinished tasks.

        Not by failing the run through the API: for a ``@continuous`` DAG that leaves the scheduler
        stuck on "run already exists" (Airflow 3.3.2), while a run that finishes by itself re-arms it.
        """
        for run in client.list_runs(dag_id, states=("running",)):
            for ti in client.task_instances(dag_id, run["dag_run_id"]):
                if ti["state"] in UNFINISHED:
                    client.set_task_state(
                        dag_id, run["dag_run_id"], ti["task_id"], "skipped", note="ended from outside"
                    )
            client.wait_for_run(dag_id, run["dag_run_id"], timeout=120)

    @staticmethod
    def armed_monitor_run(client: AirflowClient, dag_id: str, after: set[str]) -> dict | None:
        """A run of the monitor ``dag_id`` not in ``after`` whose sensor is deferred (waiting in the triggerer)."""
        for run in client.list_runs(dag_id, states=("running",)):
            if run["dag_run_id"] in after:
                continue
            states = {ti["task_id"]: ti["state"] for ti in client.task_instances(dag_id, run["dag_run_id"])}
            if states.get(SENSOR_TASK) == "deferred":
                return run
        return None
