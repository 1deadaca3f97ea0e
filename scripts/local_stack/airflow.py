"""Airflow on the local stack: the metadata DB of `airflow dags test` (<state>/airflow), and the opt-in
group (`up --airflow`) of the four processes of `airflow standalone` and of the compose stack: the API
server (REST API, UI, the tasks' execution API), the scheduler, the dag-processor and the triggerer.
Two topologies (`--topology`):

* ``local``: the LocalExecutor on SQLite (tasks reach the DB only through the execution API; SQLite
  runs in WAL mode).
* ``celery``: docker-compose.yaml's: the CeleryExecutor on PostgreSQL (metadata DB and result backend,
  scripts/local_stack/postgres.py) and Redis (broker, scripts/local_stack/redis.py), and two Celery
  workers consuming WORKER_QUEUES, each in a directory of its own with its own AIRFLOW_HOME copy and
  TMPDIR, so nothing passes between tasks but MongoDB, S3, MLflow, XCom and the DAG folder. Only the task
  logs are shared, as compose's logs volume is. A task instance's ``hostname`` names its worker.

The group has its own AIRFLOW_HOME and DB (<state>/airflow-server): a scheduler examines every running
run of an unpaused DAG, so on the `dags test` DB it would also execute the tasks of a concurrent
`dags test` run. Its environment is fixed at start, so the group restarts when the stack's addresses
changed. stack.env tells REST clients where it is; <state>/airflow.env is its full environment.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
import time
from datetime import datetime
from importlib.metadata import version
from pathlib import Path
from urllib.parse import quote

from include.retraining.core.graph import WORKER_QUEUES

from . import postgres, redis
from .supervisor import (
    BIN,
    HOST,
    REPO,
    http_get,
    log_tail,
    pick_ports,
    running,
    spawn,
    stop,
    wait_ready,
    write_env_file,
)

USER = "admin"
ADMIN_ONLY = ("AIRFLOW_CONN_MONGO_ADMIN", "SEED_MONGO_CONN_ID")
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
# name -> (arguments after `airflow`, its key in /api/v2/monitor/health, its ports.json key, what it does)
COMPONENTS = {
    "airflow-api-server": (
        lambda ports: ["api-server", "--host", HOST, "--port", str(ports["airflow"]), "--workers", "1"],
        None, "airflow", "UI + REST API, user " + USER,
    ),
    "airflow-scheduler": (lambda ports: ["scheduler"], "scheduler", "airflow-worker-logs", "runs the DAGs"),
    "airflow-dag-processor": (lambda ports: ["dag-processor"], "dag_processor", None, f"parses {REPO / 'dags'}"),
    "airflow-triggerer": (lambda ports: ["triggerer"], "triggerer", "airflow-trigger-logs", "runs the triggers"),
}  # fmt: skip
TOPOLOGIES = ("local", "celery")
DEFAULT_TOPOLOGY = "celery"  # the e2e tests of the group pass on it; local: lighter, for a quick look
WORKERS = ("airflow-worker-1", "airflow-worker-2")  # the celery topology's
BACKENDS = (postgres, redis)  # the celery topology's metadata DB and broker, started before the components
WORKER_CONCURRENCY = "2"  # task slots per worker: two workers of two on a machine of a few cores
HEARTBEAT_TIMEOUT = "120"  # seconds until a dead worker's task is failed and retried elsewhere, as in compose


def members(topology: str) -> list[str]:
    """The processes of a topology's group, in the order they start."""
    return [*(backend.NAME for backend in BACKENDS), *COMPONENTS, *WORKERS] if topology == "celery" else [*COMPONENTS]


ALL = members("celery")  # what `down --airflow` stops, whichever topology runs


def topology(state: Path) -> str:
    """The topology the group was last started with, else the default."""
    path = home(state) / ".topology"
    return path.read_text().strip() if path.exists() else DEFAULT_TOPOLOGY


def models_dir(state: Path) -> Path | None:
    """The models folder the group was last started with (None: the DAG factory's, include/models)."""
    path = home(state) / ".models-dir"
    return Path(path.read_text().strip()) if path.exists() and path.read_text().strip() else None


def worker_home(state: Path, worker: str) -> Path:
    return state / worker


def worker_command(number: int) -> list[str]:
    """`airflow celery worker` as compose's, one of several on this machine: its own Celery name."""
    return ["celery", "worker", "--celery-hostname", f"worker-{number}@%h", "--queues", ",".join(WORKER_QUEUES)]


def worker_hostname() -> str:
    """[core] hostname_callable of the workers: the name a task instance records as its ``hostname``."""
    return os.environ["LOCAL_STACK_WORKER"]


def env(state: Path, ports: dict[str, int]) -> dict[str, str]:
    """For `airflow dags test`, the library and the tests: stack.env's Airflow part."""
    return {
        "AIRFLOW_HOME": str(state / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{state / 'airflow' / 'airflow.db'}",
        "PYTHONPATH": str(REPO),  # `import include.retraining` from anywhere
    }


# --- `airflow db migrate` takes about 8 s even with nothing to do: a stamp records this version did it ---


# A PostgreSQL ``cluster``'s stamp is valid only if newer than the cluster (a recreated one is empty).


def migrate(
    state: Path, home: Path, env: dict[str, str], name: str, cluster: Path | None = None
) -> subprocess.Popen | None:
    stamp = _stamp(home, cluster)
    if stamp.exists() and stamp.read_text() == _airflow_version():
        if cluster is None and (home / "airflow.db").exists():
            return None
        if cluster is not None and stamp.stat().st_mtime >= (cluster / "PG_VERSION").stat().st_mtime:
            return None
    return spawn(state, name, [str(BIN / "airflow"), "db", "migrate"], env, home, record=False)


def migrated(state: Path, home: Path, process: subprocess.Popen | None, name: str, cluster: Path | None = None) -> bool:
    if process and process.wait(timeout=300) != 0:
        print(f"{name}: `airflow db migrate` failed; {log_tail(state, name)}")
        return False
    if process:
        _stamp(home, cluster).write_text(_airflow_version())
    print(f"{name}: {'migrated' if process else 'already migrated'} {cluster or home / 'airflow.db'}")
    return True


def _stamp(home: Path, cluster: Path | None) -> Path:
    return home / (".migrated" if cluster is None else ".migrated-postgres")


def _airflow_version() -> str:
    return f"apache-airflow=={version('apache-airflow')}"


# --- the group ---------------------------------------------------------------------------------------


def home(state: Path) -> Path:
    return state / "airflow-server"


def password(state: Path) -> str:
    """The user's password in the simple auth manager's file, written before its first start (it keeps a
    password it finds there), so the tasks' ``airflow_api`` connection can carry it."""
    path = home(state) / "simple_auth_manager_passwords.json.generated"
    if not path.exists() or not path.read_text().strip():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps({USER: secrets.token_urlsafe(12)}) + "\n")
    return json.loads(path.read_text())[USER]


def client_env(state: Path, ports: dict[str, int]) -> dict[str, str]:
    """What a REST client needs (scripts/airflow_api.py reads it); in stack.env while the group runs."""
    return {
        "AIRFLOW_API_URL": f"http://{HOST}:{ports['airflow']}",
        "AIRFLOW_API_USER": USER,
        "AIRFLOW_API_PASSWORD_FILE": str(home(state) / "simple_auth_manager_passwords.json.generated"),
    }


def _secret(name: str, state: Path) -> str:
    """Generated once (mode 0600), so restarts keep tokens and sessions valid."""
    path = home(state) / name
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()


def _executor_env(state: Path, ports: dict[str, int], topology: str) -> dict[str, str]:
    if topology == "local":
        return {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home(state) / 'airflow.db'}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",  # the LocalExecutor forks this many workers up front (default 32)
        }
    return {  # the names and values of docker-compose.yaml's x-airflow-common
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres.uri(state, ports[postgres.NAME]),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(len(WORKERS) * int(WORKER_CONCURRENCY)),
        "AIRFLOW__CELERY__BROKER_URL": redis.broker_url(ports[redis.NAME]),
        # the driver named: SQLAlchemy 2.1 takes psycopg 3 for a bare postgresql://, which is not installed
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + postgres.uri(state, ports[postgres.NAME]),
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": WORKER_CONCURRENCY,
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": HEARTBEAT_TIMEOUT,
    }


def group_env(
    state: Path, ports: dict[str, int], stack: dict[str, str], topology: str = "local", models: Path | None = None
) -> dict[str, str]:
    """The stack env plus the group's own DB and executor, the API server's address, auth and fast parsing;
    ``models``: the folder of model files its DAGs and tasks read (RETRAIN_MODELS_DIR), if not include/models."""
    api = f"http://{HOST}:{ports['airflow']}"
    # The MongoDB administrator's connection is for setup and seeding, never for the DAGs' tasks.
    stack = {name: value for name, value in stack.items() if name not in ADMIN_ONLY}
    return (
        stack
        | client_env(state, ports)
        | {
            "AIRFLOW_HOME": str(home(state)),
            **_executor_env(state, ports, topology),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
            "AIRFLOW__API__HOST": HOST,
            "AIRFLOW__API__PORT": str(ports["airflow"]),
            "AIRFLOW__API__BASE_URL": api,
            "AIRFLOW__API__WORKERS": "1",
            # Signs the JWTs of the REST API and of the tasks' execution API: one value for every component.
            "AIRFLOW__API_AUTH__JWT_SECRET": _secret("jwt_secret", state),
            "AIRFLOW__API__SECRET_KEY": _secret("api_secret_key", state),
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",  # user:role
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": client_env(state, ports)["AIRFLOW_API_PASSWORD_FILE"],
            # DAG edits show up within seconds (defaults: new files after 300 s, re-parse every 30 s).
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            # the REST API for the tasks' run notes (include/retraining/adapters/airflow_api.py)
            "AIRFLOW_CONN_AIRFLOW_API": f"http://{USER}:{quote(password(state), safe='')}@{HOST}:{ports['airflow']}",
            "DRIFT_MONITOR_POKE_SECONDS": "5",  # for watching the loop work: poll MongoDB every 5 s, not 60 s
            # Free ports instead of the fixed 8793/8794, so two stacks can run side by side.
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(ports["airflow-worker-logs"]),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ports["airflow-trigger-logs"]),
        }
        | ({"RETRAIN_MODELS_DIR": str(models)} if models else {})
    )


def worker_env(state: Path, group: dict[str, str], worker: str) -> dict[str, str]:
    """A worker's: the group's env without any path into the API server's home (its password file), its own
    AIRFLOW_HOME and TMPDIR, and the task logs where the API server reads them (compose's shared volume)."""
    server = str(home(state))
    own = {name: value for name, value in group.items() if server not in value}
    return own | {
        "AIRFLOW_HOME": str(worker_home(state, worker)),
        "TMPDIR": str(worker_home(state, worker) / "tmp"),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home(state) / "logs"),
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": f"{__name__}.worker_hostname",
        "LOCAL_STACK_WORKER": worker,
    }


def _fingerprint(env: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(env, sort_keys=True).encode()).hexdigest()


def stale(state: Path, ports: dict[str, int], stack: dict[str, str], wanted: str | None = None) -> bool:
    """Does a component run with an env that no longer matches the stack's addresses, or on another
    topology than ``wanted`` (None: the one it runs on)?"""
    stamp = home(state) / ".started-with"
    if not any(running(state, name) for name in ALL):
        return False
    try:
        env = group_env(state, ports, stack, wanted or topology(state), models_dir(state))
        return stamp.read_text() != _fingerprint(env)
    except (OSError, KeyError):
        return True


def stop_group(state: Path) -> list[str]:
    """Stop the components and workers, then the DB and broker they use; the names that were running."""
    stopped = stop(state, [name for name in ALL if name not in {backend.NAME for backend in BACKENDS}], grace=20)
    return stopped + stop(state, [backend.NAME for backend in BACKENDS], grace=20)


def _start_backends(state: Path, ports: dict[str, int], names: list[str], env: dict[str, str]) -> bool:
    for backend in BACKENDS:
        if backend.NAME in names:
            stop(state, [backend.NAME], grace=5)  # leftovers of a dead one would hold its port or its data
            spawn(state, backend.NAME, backend.command(state, ports), env, state)
    for backend in BACKENDS:
        port = ports[backend.NAME]
        if not wait_ready(state, backend.NAME, lambda: backend.ready(state, port), backend.TIMEOUT):  # noqa: B023
            return False
        how = "started" if backend.NAME in names else "already running"
        print(f"{backend.NAME}: {how}  {describe(state, backend.NAME, ports)}")
    return True


def start(
    state: Path, ports: dict[str, int], stack: dict[str, str], wanted: str | None = None, models: Path | None = None
) -> dict[str, float] | None:
    """Start the ``wanted`` topology (None: the running group's, else the default) with the models folder
    ``models`` (None: include/models): its DB and broker, migrate the DB, apply airflow_settings.yaml to it (as
    the compose init does) and start the processes that are not running; {name: start time}, or None if the
    DB could not be prepared."""
    home(state).mkdir(parents=True, exist_ok=True)
    chosen = wanted or (topology(state) if any(running(state, name) for name in ALL) else DEFAULT_TOPOLOGY)
    models = models.resolve() if models else None
    moved = models != models_dir(state) and any(running(state, name) for name in ALL)
    if moved or stale(state, ports, stack, chosen):
        print(f"airflow: the stack, topology or models folder changed since the group started: restarting ({chosen})")
        stop_group(state)
    (home(state) / ".topology").write_text(chosen)
    (home(state) / ".models-dir").write_text(str(models or ""))
    missing = [name for name in members(chosen) if not running(state, name)]
    names = {
        **{name: spec[2] for name, spec in COMPONENTS.items()},
        **{backend.NAME: backend.NAME for backend in BACKENDS},
    }
    pick_ports(state, ports, [port for name in missing if (port := names.get(name))])
    env = group_env(state, ports, stack, chosen, models)
    # Not the caller's Airflow and retrain settings: e.g. a test's AIRFLOW_VAR_RETRAIN_CONFIG would
    # shadow the DB Variable for every run.
    process_env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "RETRAIN_"))} | env
    cluster = state / "postgres" if chosen == "celery" else None
    if cluster and not _start_backends(state, ports, missing, process_env):
        return None
    migration = migrate(state, home(state), process_env, "airflow-server-db", cluster)
    if not migrated(state, home(state), migration, "airflow-server-db", cluster):
        return None
    if missing:  # connections, variables and pools (a task in a missing pool never runs)
        command = [sys.executable, str(REPO / "scripts" / "apply_settings.py")]
        if spawn(state, "airflow-settings", command, process_env, REPO, record=False).wait(timeout=300) != 0:
            print(f"airflow-settings: apply_settings.py failed; {log_tail(state, 'airflow-settings')}")
            return None
        print("airflow-settings: airflow_settings.yaml applied with the group's env")
    started = {}
    for name in [name for name in missing if name in COMPONENTS]:
        stop(state, [name], grace=5)  # leftovers of a dead component would hold its port
        started[name] = time.time()
        spawn(state, name, [str(BIN / "airflow"), *COMPONENTS[name][0](ports)], process_env, home(state))
    for number, name in enumerate(WORKERS, start=1):
        if name in missing:
            stop(state, [name], grace=5)
            started[name] = time.time()
            (worker_home(state, name) / "tmp").mkdir(parents=True, exist_ok=True)
            command = [str(BIN / "airflow"), *worker_command(number), "--skip-serve-logs"]
            spawn(state, name, command, worker_env(state, process_env, name), worker_home(state, name))
    (home(state) / ".started-with").write_text(_fingerprint(env))
    write_env_file(state, env, "airflow.env")
    return started


def _ready(name: str, port: int, since: float) -> bool:
    """The API server answers with a healthy metadatabase; the others also heartbeat (since their start)."""
    answer = http_get(f"http://{HOST}:{port}/api/v2/monitor/health")
    try:
        health = json.loads(answer[1]) if answer and answer[0] == 200 else {}
    except ValueError:
        return False
    key = COMPONENTS[name][1]
    if health.get("metadatabase", {}).get("status") != "healthy" or key is None:
        return health.get("metadatabase", {}).get("status") == "healthy"
    entry = health.get(key) or {}
    beat = entry.get(f"latest_{key}_heartbeat")
    return entry.get("status") == "healthy" and bool(beat) and datetime.fromisoformat(beat).timestamp() >= since


def await_ready(state: Path, ports: dict[str, int], started: dict[str, float]) -> bool:
    for name in COMPONENTS:
        since = started.get(name, 0.0)
        timeout = 180.0 if name == "airflow-api-server" else 120.0  # the API server imports the most
        if not wait_ready(state, name, lambda: _ready(name, ports["airflow"], since), timeout):  # noqa: B023
            return False
        how = f"started ({time.time() - since:.1f} s)" if since else "already running"
        print(f"{name}: {how}  {describe(state, name, ports)}")
    if topology(state) != "celery":
        return True
    since = min((started[name] for name in WORKERS if name in started), default=0.0)
    env = os.environ | read_env(state)
    if not all(wait_ready(state, name, lambda: name in workers_answering(env), 180.0) for name in WORKERS):  # noqa: B023
        return False
    for name in WORKERS:
        how = f"started ({time.time() - since:.1f} s)" if name in started else "already running"
        print(f"{name}: {how}  {describe(state, name, ports)}")
    return True


def read_env(state: Path) -> dict[str, str]:
    """The group's processes' environment, as the last start fixed it."""
    from ..airflow_api import read_env_file

    return read_env_file(state / "airflow.env")


def workers_answering(env: dict[str, str]) -> set[str]:
    """The local workers that answer a Celery ping through the broker (compose's worker health check)."""
    app = "airflow.providers.celery.executors.celery_executor.app"
    ping = [str(BIN / "celery"), "--app", app, "inspect", "ping", "--timeout", "5"]
    try:
        result = subprocess.run(ping, env=env, capture_output=True, text=True, timeout=90, check=False)
    except subprocess.TimeoutExpired:
        return set()
    return {name for number, name in enumerate(WORKERS, start=1) if f"worker-{number}@" in result.stdout}


def describe(state: Path, name: str, ports: dict[str, int]) -> str:
    backend = next((backend for backend in BACKENDS if name == backend.NAME), None)
    if backend:
        return backend.describe(state, ports[name])
    if name in WORKERS:
        return f"Celery worker, queues {','.join(WORKER_QUEUES)}, AIRFLOW_HOME {worker_home(state, name)}"
    address = f"http://{HOST}:{ports['airflow']}  " if name == "airflow-api-server" else ""
    executor = {"local": "LocalExecutor", "celery": "CeleryExecutor"}.get(topology(state))
    return address + COMPONENTS[name][3] + (f" ({executor})" if name == "airflow-scheduler" else "")


def unpause(state: Path, ports: dict[str, int], dag_ids: list[str], timeout: float = 120.0) -> None:
    """Once the dag-processor has parsed them, through the REST API."""
    from ..airflow_api import AirflowClient

    with AirflowClient(f"http://{HOST}:{ports['airflow']}", USER, password(state)) as client:
        deadline = time.monotonic() + timeout
        while not all(map(client.get_dag, dag_ids)) and time.monotonic() < deadline:
            time.sleep(1)
        for dag_id in dag_ids:
            if client.get_dag(dag_id):
                client.unpause(dag_id)
                print(f"airflow: {dag_id} unpaused")
            else:
                print(
                    f"airflow: no DAG {dag_id!r} after {timeout:.0f} s; see {state / 'logs'}/airflow-dag-processor.log"
                )
