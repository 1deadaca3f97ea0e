"""Airflow on the local stack: the metadata DB of `airflow dags test` (<state>/airflow), and the opt-in
group (`up --airflow`) of the four processes of `airflow standalone` and of the compose stack: the API
server (REST API, UI, the tasks' execution API), the scheduler with the LocalExecutor, the dag-processor
and the triggerer. Airflow 3 runs the LocalExecutor on SQLite (tasks reach the DB only through the
execution API; SQLite runs in WAL mode).

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

from .supervisor import BIN, HOST, REPO, http_get, log_tail, pick_ports, running, spawn, stop, wait_ready

USER = "admin"
ADMIN_ONLY = ("AIRFLOW_CONN_MONGO_ADMIN", "SEED_MONGO_CONN_ID")
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
# name -> (arguments after `airflow`, its key in /api/v2/monitor/health, its ports.json key, what it does)
COMPONENTS = {
    "airflow-api-server": (
        lambda ports: ["api-server", "--host", HOST, "--port", str(ports["airflow"]), "--workers", "1"],
        None, "airflow", "UI + REST API, user " + USER,
    ),
    "airflow-scheduler": (lambda ports: ["scheduler"], "scheduler", "airflow-worker-logs", "LocalExecutor"),
    "airflow-dag-processor": (lambda ports: ["dag-processor"], "dag_processor", None, f"parses {REPO / 'dags'}"),
    "airflow-triggerer": (lambda ports: ["triggerer"], "triggerer", "airflow-trigger-logs", "runs the triggers"),
}  # fmt: skip


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


def migrate(state: Path, home: Path, env: dict[str, str], name: str) -> subprocess.Popen | None:
    stamp = home / ".migrated"
    if (home / "airflow.db").exists() and stamp.exists() and stamp.read_text() == _airflow_version():
        return None
    return spawn(state, name, [str(BIN / "airflow"), "db", "migrate"], env, home, record=False)


def migrated(state: Path, home: Path, process: subprocess.Popen | None, name: str) -> bool:
    if process and process.wait(timeout=300) != 0:
        print(f"{name}: `airflow db migrate` failed; {log_tail(state, name)}")
        return False
    if process:
        (home / ".migrated").write_text(_airflow_version())
    print(f"{name}: {'migrated' if process else 'already migrated'} {home / 'airflow.db'}")
    return True


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


def group_env(state: Path, ports: dict[str, int], stack: dict[str, str]) -> dict[str, str]:
    """The stack env plus the group's own DB, the API server's address, auth and fast parsing."""
    api = f"http://{HOST}:{ports['airflow']}"
    # The MongoDB administrator's connection is for setup and seeding, never for the DAGs' tasks.
    stack = {name: value for name, value in stack.items() if name not in ADMIN_ONLY}
    return (
        stack
        | client_env(state, ports)
        | {
            "AIRFLOW_HOME": str(home(state)),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home(state) / 'airflow.db'}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",  # the LocalExecutor forks this many workers up front (default 32)
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
    )


def _fingerprint(env: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(env, sort_keys=True).encode()).hexdigest()


def stale(state: Path, ports: dict[str, int], stack: dict[str, str]) -> bool:
    """Does a component run with an env that no longer matches the stack's addresses?"""
    stamp = home(state) / ".started-with"
    if not any(running(state, name) for name in COMPONENTS):
        return False
    try:
        return stamp.read_text() != _fingerprint(group_env(state, ports, stack))
    except (OSError, KeyError):
        return True


def start(state: Path, ports: dict[str, int], stack: dict[str, str]) -> dict[str, float] | None:
    """Migrate the group's DB, apply airflow_settings.yaml to it (as the compose init does) and start the
    components that are not running; {name: start time}, or None if the DB could not be prepared."""
    home(state).mkdir(parents=True, exist_ok=True)
    if stale(state, ports, stack):
        print("airflow: the stack changed since the Airflow group started (its env is fixed then): restarting it")
        stop(state, list(COMPONENTS), grace=20)
    missing = [name for name in COMPONENTS if not running(state, name)]
    pick_ports(state, ports, [port for name in missing if (port := COMPONENTS[name][2])])
    env = group_env(state, ports, stack)
    # Not the caller's Airflow and retrain settings: e.g. a test's AIRFLOW_VAR_RETRAIN_CONFIG would
    # shadow the DB Variable for every run.
    process_env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "RETRAIN_"))} | env
    migration = migrate(state, home(state), process_env, "airflow-server-db")
    if not migrated(state, home(state), migration, "airflow-server-db"):
        return None
    if missing:  # connections, variables and pools (a task in a missing pool never runs)
        command = [sys.executable, str(REPO / "scripts" / "apply_settings.py")]
        if spawn(state, "airflow-settings", command, process_env, REPO, record=False).wait(timeout=300) != 0:
            print(f"airflow-settings: apply_settings.py failed; {log_tail(state, 'airflow-settings')}")
            return None
        print("airflow-settings: airflow_settings.yaml applied with the group's env")
    started = {}
    for name in missing:
        stop(state, [name], grace=5)  # leftovers of a dead component would hold its port
        started[name] = time.time()
        spawn(state, name, [str(BIN / "airflow"), *COMPONENTS[name][0](ports)], process_env, home(state))
    (home(state) / ".started-with").write_text(_fingerprint(env))
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
    return True


def describe(state: Path, name: str, ports: dict[str, int]) -> str:
    address = f"http://{HOST}:{ports['airflow']}  " if name == "airflow-api-server" else ""
    return address + COMPONENTS[name][3]


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
