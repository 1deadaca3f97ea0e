"""Shared by the e2e tests that drive the real Airflow group of the local stack
(`python -m scripts.local_stack up --airflow`).

The group (API server, scheduler, dag-processor, triggerer) runs on the main stack's state dir with its own
metadata DB, is started once (idempotent, reused if already running) and left running: `make down` stops it.
Its processes' environment is fixed when it starts, so a test isolates its data through the Airflow
Variable ``retrain_config`` (set over the REST API), never through ``AIRFLOW_VAR_*`` of the test process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scripts.airflow_api import AirflowClient, read_env_file

ROOT = Path(__file__).resolve().parents[2]
STATE = Path(os.environ.get("LOCAL_STACK_DIR") or ROOT / ".local").resolve()
ADMIN_CONN_ID = "mongo_admin"  # AIRFLOW_CONN_MONGO_ADMIN in stack.env
COMPONENTS = ("airflow-scheduler", "airflow-dag-processor", "airflow-triggerer", "airflow-api-server")


def isolated_overrides(prefix: str, **extra: dict) -> tuple[str, dict]:
    """A unique name and the ``retrain_config`` overrides that give a test its own collection, model,
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


def stack_env() -> dict[str, str]:
    """What `source .local/stack.env` exports (make test sources it before pytest)."""
    path = STATE / "stack.env"
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make up` first (make test does)")
    return read_env_file(path)


def tail(path: Path, lines: int = 80) -> str:
    with path.open("rb") as file:
        file.seek(max(0, path.stat().st_size - 200_000))
        return "\n".join(file.read().decode(errors="replace").splitlines()[-lines:])


class AirflowGroup:
    """Start the group, talk to it, and explain a failure with its logs."""

    def __init__(self, state: Path = STATE):
        self.state = state
        self.env: dict[str, str] = {}

    def start(self, unpause: Iterable[str] = ()) -> AirflowClient:
        """`local_stack up --airflow` (reuses a running group), unpause ``unpause``; a logged-in client."""
        command = [sys.executable, "-m", "scripts.local_stack", "up", "--airflow"]
        if dag_ids := ",".join(unpause):
            command += ["--unpause", dag_ids]
        began = time.monotonic()
        env = os.environ | {"LOCAL_STACK_DIR": str(self.state)}
        result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
        if result.returncode != 0:
            pytest.fail(f"`{' '.join(command[1:])}` failed:\n{result.stdout}\n{result.stderr}\n{self.logs()}")
        print(f"airflow group up in {time.monotonic() - began:.0f} s")
        self.env = read_env_file(self.state / "airflow.env")
        client = AirflowClient.from_env(self.env)
        client.login()
        return client

    def logs(self, dag_id: str | None = None, run_id: str | None = None, lines: int = 80) -> str:
        """The last lines of each component's log and of the task logs of one run (or of the newest ones)."""
        parts = []
        for name in COMPONENTS:
            log = self.state / "logs" / f"{name}.log"
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
        """For pytest.fail: the headline, the state of each task, the logs."""
        try:
            tasks = ", ".join(f"{ti['task_id']}={ti['state']}" for ti in client.task_instances(dag_id, run_id))
        except Exception as error:  # the report must not hide the failure it explains
            tasks = f"(could not list the task instances: {error})"
        return f"{headline}\ntasks: {tasks}\n{self.logs(dag_id, run_id)}"

    @staticmethod
    def quiet_dag(client: AirflowClient, dag_id: str, timeout: float = 60.0) -> list[str]:
        """Fail every queued or running run of ``dag_id``, so that a test's own run does not queue behind it
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
            client.set_run_state(dag_id, run["dag_run_id"], "failed", note="stopped by an e2e test to run its own")
            failed.append(run["dag_run_id"])
        return failed


@pytest.fixture(scope="session")
def stack_environ() -> Iterator[dict[str, str]]:
    """The stack's variables in os.environ for the library calls of the tests (seeding, MLflow checks)."""
    env = stack_env()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            if name not in os.environ:
                patch.setenv(name, value)
        yield env


@pytest.fixture(scope="session")
def airflow_group(stack_environ) -> AirflowGroup:
    """Not started yet: call ``.start(unpause=[...])`` from a module fixture (it is idempotent)."""
    return AirflowGroup()
