"""Run the local stack without Docker: MongoDB (SecantusDB), S3 (moto), MLflow and an SMTP sink.

    python scripts/local_stack.py up            # start what is not running, wait until ready, write stack.env
    python scripts/local_stack.py up --airflow [--unpause retrain_model,drift_monitor]
                                                # ... plus a full Airflow: API server + UI, scheduler,
                                                # dag-processor, triggerer (opt-in; see "the Airflow group")
    python scripts/local_stack.py status        # one line per service; exit 1 if any is dead or not started
    python scripts/local_stack.py down [--purge]  # stop everything; --purge also deletes the state dir
    python scripts/local_stack.py down --airflow  # stop only the Airflow group

Everything lives under one state dir (`<repo>/.local`, or `$LOCAL_STACK_DIR` for an independent second
stack): ports.json, pids/<svc>.pid, logs/<svc>.log, the data of each service and stack.env, which
`source` turns into the environment the DAGs, the library and the tests read.

The Airflow group runs on its own metadata DB and AIRFLOW_HOME (<state>/airflow-server), apart from the
one `airflow dags test` uses (<state>/airflow): a scheduler examines every running run of an unpaused
DAG, so on a shared DB it would also execute the tasks of a concurrent `dags test` run (twice, and with
the scheduler's environment instead of the test's), and all processes would contend for one SQLite
file. stack.env tells clients where the group's REST API is (AIRFLOW_API_URL, AIRFLOW_API_USER,
AIRFLOW_API_PASSWORD_FILE); <state>/airflow.env is the group's full environment, for the `airflow` CLI.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import secrets
import shlex
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The interpreter running this script is the project's venv; its bin/ holds moto_server, mlflow, airflow.
BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
BUCKET = "mlops-artifacts"
AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
PROC = Path("/proc")
MARKER = ".local_stack"  # written into the state dir; `down --purge` refuses to delete a dir without it


def state_dir() -> Path:
    return Path(os.environ.get("LOCAL_STACK_DIR") or REPO / ".local").resolve()


# --- readiness checks: each answers "does the service do its job yet?", never raises ----------------


def mongo_ready(port: int) -> bool:
    import pymongo  # imported lazily: `status` and `down` should not pay for it

    client = pymongo.MongoClient(f"mongodb://{HOST}:{port}/", serverSelectionTimeoutMS=500)
    try:
        return client.admin.command("ping").get("ok") == 1
    except pymongo.errors.PyMongoError:
        return False
    finally:
        client.close()


def http_get(url: str) -> tuple[int, bytes] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:  # an HTTP error status is still an answer
        return error.code, b""
    except (OSError, urllib.error.URLError):
        return None


def s3_ready(port: int) -> bool:
    return http_get(f"http://{HOST}:{port}/") is not None


def mlflow_ready(port: int) -> bool:
    return http_get(f"http://{HOST}:{port}/health") == (200, b"OK")


def smtp_ready(port: int) -> bool:
    try:
        with smtplib.SMTP(HOST, port, timeout=2) as smtp:
            return smtp.noop()[0] == 250
    except (OSError, smtplib.SMTPException):
        return False


# --- S3: moto keeps objects in memory only --------------------------------------------------------
# MLflow's database (kept on disk) points at artifacts in S3, so losing the bucket on `down` would leave
# registered models without files. `down` therefore copies every object to <dir>/s3 and a fresh start
# of moto puts them back. A crashed moto loses what was written since the last `down`.


def s3_client(port: int):
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=f"http://{HOST}:{port}",
        aws_access_key_id=AWS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS["AWS_SECRET_ACCESS_KEY"],
        region_name=AWS["AWS_DEFAULT_REGION"],
    )


def save_s3(state: Path, port: int) -> int:
    client, tmp = s3_client(port), state / "s3.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "objects").mkdir(parents=True)
    buckets = [bucket["Name"] for bucket in client.list_buckets()["Buckets"]]
    objects = []
    for bucket in buckets:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                file = f"{len(objects):08d}"  # keys may hold any character: never use them as file names
                response = client.get_object(Bucket=bucket, Key=item["Key"])
                with (tmp / "objects" / file).open("wb") as out:
                    shutil.copyfileobj(response["Body"], out)
                objects.append(
                    {"bucket": bucket, "key": item["Key"], "file": file}
                    | {"content_type": response.get("ContentType"), "metadata": response.get("Metadata", {})}
                )
    (tmp / "manifest.json").write_text(json.dumps({"buckets": buckets, "objects": objects}))
    shutil.rmtree(state / "s3", ignore_errors=True)
    tmp.rename(state / "s3")  # swap only a complete copy in
    return len(objects)


def restore_s3(state: Path, port: int) -> None:
    manifest_file = state / "s3" / "manifest.json"
    if not manifest_file.exists():
        return
    client, manifest = s3_client(port), json.loads(manifest_file.read_text())
    for bucket in manifest["buckets"]:
        client.create_bucket(Bucket=bucket)
    for item in manifest["objects"]:
        extra = {"ContentType": item["content_type"]} if item["content_type"] else {}
        with (state / "s3" / "objects" / item["file"]).open("rb") as body:
            client.put_object(Bucket=item["bucket"], Key=item["key"], Body=body, Metadata=item["metadata"], **extra)
    print(f"s3: restored {len(manifest['objects'])} objects from {state / 's3'}")


def prepare_s3(state: Path, port: int, fresh: bool) -> None:
    if fresh:
        restore_s3(state, port)
    s3_client(port).create_bucket(Bucket=BUCKET)  # moto answers 200 for a bucket it already has


# --- the services ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    name: str
    command: Callable[[Path, dict[str, int]], list[str]]
    ready: Callable[[int], bool]
    describe: Callable[[Path, int], str]
    timeout: float = 30.0
    env: Callable[[dict[str, int]], dict[str, str]] = lambda ports: {}
    # runs once ready; `fresh` says whether this `up` started the process
    after_ready: Callable[[Path, int, bool], None] = lambda state, port, fresh: None


SERVICES = (
    Service(
        "s3",
        lambda state, ports: [str(BIN / "moto_server"), "-H", HOST, "-p", str(ports["s3"])],
        s3_ready,
        lambda state, port: f"http://{HOST}:{port}  bucket {BUCKET}",
        after_ready=prepare_s3,
    ),
    Service(
        "mongo",
        lambda state, ports: [
            *(str(BIN / "python"), "-m", "secantus", "--host", HOST, "--port", str(ports["mongo"])),
            *("--storage-path", str(state / "mongo")),
        ],
        mongo_ready,
        lambda state, port: f"mongodb://{HOST}:{port}/",
    ),
    Service(
        "smtp",
        # aiosmtpd's Mailbox handler writes each message as one file into a Maildir (<dir>/mail/new/).
        lambda state, ports: [
            *(str(BIN / "python"), "-m", "aiosmtpd", "-n", "-l", f"{HOST}:{ports['smtp']}"),
            *("-c", "aiosmtpd.handlers.Mailbox", str(state / "mail")),
        ],
        smtp_ready,
        lambda state, port: f"smtp://{HOST}:{port}  mail in {state / 'mail' / 'new'}",
    ),
    Service(
        "mlflow",
        lambda state, ports: [
            *(str(BIN / "mlflow"), "server", "--host", HOST, "--port", str(ports["mlflow"])),
            *("--backend-store-uri", f"sqlite:///{state / 'mlflow' / 'mlflow.db'}"),
            *("--artifacts-destination", f"s3://{BUCKET}/mlflow", "--serve-artifacts", "--workers", "1"),
        ],
        mlflow_ready,
        lambda state, port: f"http://{HOST}:{port}",
        timeout=90.0,  # about 10-20 s cold (creates its tables), longer on a busy machine
        # Without this the server forks a job runner with 7 workers (2.4 GB RSS instead of about 0.5 GB).
        env=lambda ports: {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
    ),
)


def stack_env(state: Path, ports: dict[str, int]) -> dict[str, str]:
    """What clients need: exported by stack.env and given to every child process."""
    s3_url, mongo, smtp = f"http://{HOST}:{ports['s3']}", ports["mongo"], ports["smtp"]
    mlflow_url = f"http://{HOST}:{ports['mlflow']}"

    def conn(**fields) -> str:
        return json.dumps(fields, separators=(",", ":"))

    smtp_extra = {"disable_ssl": True, "disable_tls": True, "from_email": "retrain-bot@example.com"}
    return {
        "MONGO_URI": f"mongodb://{HOST}:{mongo}/",
        "MONGO_DB": "insurance",
        "MONGO_COLLECTION": "vehicle_insurance",
        "MLFLOW_TRACKING_URI": mlflow_url,
        "AWS_ENDPOINT_URL_S3": s3_url,
        # MLflow hands out pre-signed URLs on this address, so clients must reach it too.
        "MLFLOW_S3_ENDPOINT_URL": s3_url,
        "S3_BUCKET": BUCKET,
        **AWS,
        "MAIL_SINK_DIR": str(state / "mail"),
        "SMTP_HOST": HOST,
        "SMTP_PORT": str(smtp),
        "AIRFLOW_HOME": str(state / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{state / 'airflow' / 'airflow.db'}",
        "PYTHONPATH": str(REPO),  # `import include.retraining` from anywhere
        "AIRFLOW_CONN_MONGO_DEFAULT": conn(
            conn_type="mongo", host=HOST, port=mongo, schema="insurance", extra={"srv": False}
        ),
        "AIRFLOW_CONN_AWS_DEFAULT": conn(
            conn_type="aws",
            login=AWS["AWS_ACCESS_KEY_ID"],
            password=AWS["AWS_SECRET_ACCESS_KEY"],
            extra={"endpoint_url": s3_url, "region_name": AWS["AWS_DEFAULT_REGION"]},
        ),
        "AIRFLOW_CONN_SMTP_DEFAULT": conn(
            conn_type="smtp", host=HOST, port=smtp, extra=smtp_extra | {"timeout": 30, "retry_limit": 3}
        ),
        "AIRFLOW_VAR_MLFLOW_TRACKING_URI": mlflow_url,
        "AIRFLOW_VAR_ARTIFACTS_BUCKET": BUCKET,
    }


def write_env_file(state: Path, env: dict[str, str], name: str = "stack.env") -> Path:
    path, tmp = state / name, state / f"{name}.tmp"
    lines = [f"# written by scripts/local_stack.py up; use: set -a && source {path} && set +a"]
    tmp.write_text("\n".join([*lines, *(f"export {k}={shlex.quote(v)}" for k, v in env.items())]) + "\n")
    tmp.replace(path)  # a reader never sees half a file
    return path


# --- ports -----------------------------------------------------------------------------------------


def load_ports(state: Path) -> dict[str, int]:
    path = state / "ports.json"
    return json.loads(path.read_text()) if path.exists() else {}


def bind(port: int) -> socket.socket | None:
    sock = socket.socket()
    # Same option the servers set, so a port in TIME_WAIT after a restart counts as free, as for them.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        return None
    return sock


def pick_ports(names: list[str], remembered: dict[str, int]) -> dict[str, int]:
    """Reuse each remembered port if it is still free, else let the kernel choose one."""
    held = {}
    try:  # keep every socket open until all are chosen, so two services cannot get the same port
        for name in names:
            held[name] = (remembered.get(name) and bind(remembered[name])) or bind(0)
        return {name: sock.getsockname()[1] for name, sock in held.items()}
    finally:
        for sock in held.values():
            sock.close()


# --- processes -------------------------------------------------------------------------------------


def pid_file(state: Path, name: str) -> Path:
    return state / "pids" / f"{name}.pid"


def read_pid(state: Path, name: str) -> int | None:
    try:
        return int(pid_file(state, name).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def proc_stat(pid: int) -> list[str] | None:
    """Fields after the command name in /proc/<pid>/stat: state, ppid, pgrp, ..."""
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def is_alive(pid: int | None, port: int | None) -> bool:
    if not pid:
        return False
    if not PROC.exists():  # e.g. macOS: signal 0 is the best we have
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    stat = proc_stat(pid)
    try:
        cmdline = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return False
    # A zombie is dead (the container's init may reap late); the port in the command line guards
    # against a recycled pid that now belongs to some other program.
    return stat is not None and stat[0] not in "ZX" and str(port).encode() in cmdline


def group_members(pgid: int) -> list[int]:
    """Live processes of a process group: mlflow's uvicorn worker can outlive its parent."""
    if not PROC.exists():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in PROC.iterdir():
        stat = proc_stat(int(entry.name)) if entry.name.isdigit() else None
        if stat and stat[0] not in "ZX" and int(stat[2]) == pgid:
            members.append(int(entry.name))
    return members


def owns_group(pid: int, port: int | None) -> bool:
    """Is the group led by `pid` still ours? Not if the pid now belongs to an unrelated live program."""
    stat = proc_stat(pid) if PROC.exists() else None
    return stat is None or stat[0] in "ZX" or is_alive(pid, port)


def signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def stop_groups(pgids: list[int], grace: float = 10.0) -> None:
    """SIGTERM every group, wait up to `grace` seconds for all to exit, then SIGKILL what is left."""
    pgids = [pgid for pgid in pgids if group_members(pgid)]
    for pgid in pgids:
        signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(group_members(pgid) for pgid in pgids):
        time.sleep(0.1)
    for pgid in pgids:
        if group_members(pgid):
            signal_group(pgid, signal.SIGKILL)


def spawn(command: list[str], log: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(command)}\n".encode())
        out.flush()
        # A new session: the service outlives this script, ignores the terminal's Ctrl-C, and forms
        # a process group that `down` can signal as a whole.
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=env, cwd=cwd, start_new_session=True,
        )  # fmt: skip


def log_tail(log: Path, lines: int = 40) -> str:
    if not log.exists():
        return "(no log)"
    with log.open("rb") as file:
        file.seek(max(0, log.stat().st_size - 64_000))  # logs grow forever; read only their end
        return "\n".join(file.read().decode(errors="replace").splitlines()[-lines:])


def wait_ready(service: Service, pid: int, port: int) -> str | None:
    """None once ready, else why not."""
    deadline = time.monotonic() + service.timeout
    while time.monotonic() < deadline:
        if service.ready(port):
            return None
        if not is_alive(pid, port):  # it died: waiting longer cannot help
            return None if service.ready(port) else "exited before it was ready"
        time.sleep(0.2)
    return f"not ready within {service.timeout:.0f} s"


# --- airflow metadata DB ---------------------------------------------------------------------------
# `airflow db migrate` takes about 8 s even when there is nothing to do, so a stamp file records that
# this Airflow version already migrated this database.


def migration_stamp(home: Path) -> tuple[Path, str]:
    return home / ".migrated", f"apache-airflow=={version('apache-airflow')}"


def start_migration(state: Path, home: Path, env: dict[str, str], name: str) -> subprocess.Popen | None:
    stamp, expected = migration_stamp(home)
    if (home / "airflow.db").exists() and stamp.exists() and stamp.read_text() == expected:
        return None
    log = state / "logs" / f"{name}.log"
    return spawn([str(BIN / "airflow"), "db", "migrate"], log, env, home)


def finish_migration(state: Path, home: Path, migration: subprocess.Popen | None, name: str) -> bool:
    if migration is None:
        print(f"{name}: already migrated")
        return True
    if migration.wait(timeout=300) != 0:
        log = state / "logs" / f"{name}.log"
        print(f"{name}: `airflow db migrate` failed; last 40 lines of {log}:\n{log_tail(log)}")
        return False
    stamp, expected = migration_stamp(home)
    stamp.write_text(expected)
    print(f"{name}: migrated {home / 'airflow.db'}")
    return True


# --- the Airflow group (opt-in: `up --airflow`) ----------------------------------------------------
# The four processes of `airflow standalone` and of the compose stack: the API server (REST API, UI, and
# the execution API that tasks talk to), the scheduler with the LocalExecutor (tasks run as its
# subprocesses), the dag-processor and the triggerer. Airflow 3 supports the LocalExecutor on SQLite:
# tasks no longer open the metadata DB (they go through the execution API) and Airflow runs SQLite in
# WAL mode. The group keeps its own AIRFLOW_HOME and DB (see the module docstring for why).

AIRFLOW_USER = "admin"
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
SETTINGS = REPO / "airflow_settings.yaml"  # the pools come from here, as in the compose stack
DAGS = REPO / "dags"


@dataclass(frozen=True)
class Component:
    name: str  # of its pid and log files
    args: Callable[[dict[str, int]], list[str]]  # after `airflow`
    describe: Callable[[Path, dict[str, int]], str]
    health: str | None = None  # its key in /api/v2/monitor/health, whose heartbeat says it works
    port: str | None = None  # the ports.json key of the port it serves


COMPONENTS = (
    Component(
        "airflow-api-server",
        lambda ports: ["api-server", "--host", HOST, "--port", str(ports["airflow"]), "--workers", "1"],
        lambda state, ports: f"http://{HOST}:{ports['airflow']}  UI + REST API, user {AIRFLOW_USER}",
        port="airflow",
    ),
    Component(
        "airflow-scheduler",
        lambda ports: ["scheduler"],
        lambda state, ports: f"LocalExecutor, task logs in {airflow_home(state) / 'logs'}",
        health="scheduler",
        port="airflow-worker-logs",  # it serves the task logs of running tasks to the UI
    ),
    Component(
        "airflow-dag-processor",
        lambda ports: ["dag-processor"],
        lambda state, ports: f"parses {DAGS}",
        health="dag_processor",
    ),
    Component(
        "airflow-triggerer",
        lambda ports: ["triggerer"],
        lambda state, ports: "runs the deferred tasks' triggers",
        health="triggerer",
        port="airflow-trigger-logs",
    ),
)


def airflow_home(state: Path) -> Path:
    return state / "airflow-server"


def password_file(state: Path) -> Path:
    """The simple auth manager writes a generated password per user into it on first start."""
    return airflow_home(state) / "simple_auth_manager_passwords.json.generated"


def kept_secret(home: Path, name: str) -> str:
    """Generated once and kept in the group's home (mode 0600), so restarts keep tokens and sessions valid."""
    path = home / name
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32) + "\n")
    return path.read_text().strip()


def airflow_client_env(state: Path, ports: dict[str, int]) -> dict[str, str]:
    """What a REST client needs (scripts/airflow_api.py reads these); goes into stack.env."""
    return {
        "AIRFLOW_API_URL": f"http://{HOST}:{ports['airflow']}",
        "AIRFLOW_API_USER": AIRFLOW_USER,
        "AIRFLOW_API_PASSWORD_FILE": str(password_file(state)),
    }


def airflow_env(state: Path, ports: dict[str, int]) -> dict[str, str]:
    """The group's additions to the stack env: its own DB, the API server's address, auth, fast parsing."""
    home, api = airflow_home(state), f"http://{HOST}:{ports['airflow']}"
    return {
        **airflow_client_env(state, ports),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # The LocalExecutor forks this many workers up front (default 32); a retrain runs 1-2 tasks at once.
        "AIRFLOW__CORE__PARALLELISM": "4",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{api}/execution/",
        "AIRFLOW__API__HOST": HOST,
        "AIRFLOW__API__PORT": str(ports["airflow"]),
        "AIRFLOW__API__BASE_URL": api,
        "AIRFLOW__API__WORKERS": "1",
        # Signs the JWTs of the REST API and of the tasks' execution API: one value for every component.
        "AIRFLOW__API_AUTH__JWT_SECRET": kept_secret(home, "jwt_secret"),
        "AIRFLOW__API__SECRET_KEY": kept_secret(home, "api_secret_key"),
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{AIRFLOW_USER}:admin",  # user:role
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file(state)),
        # DAG edits show up within seconds (defaults: new files after 300 s, re-parse every 30 s).
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        # The local stack is for watching the loop work: the monitor's sensor polls MongoDB every 5 s, not 60 s.
        "DRIFT_MONITOR_POKE_SECONDS": "5",
        # Free ports instead of the fixed 8793/8794, so two stacks can run side by side.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(ports["airflow-worker-logs"]),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(ports["airflow-trigger-logs"]),
    }


def component_process_env(env: dict[str, str]) -> dict[str, str]:
    """The caller's environment minus its Airflow and retrain settings (e.g. a test's
    AIRFLOW_VAR_RETRAIN_CONFIG would shadow the DB Variable for every run), plus the group's env."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "RETRAIN_"))}
    return inherited | env


def fingerprint(env: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(env, sort_keys=True).encode()).hexdigest()


def start_time(pid: int) -> str | None:
    stat = proc_stat(pid)
    return stat[19] if stat else None  # field 22 of /proc/<pid>/stat, in clock ticks since boot


def component_pid(state: Path, name: str) -> int | None:
    """The pid if the process we started is alive. Airflow rewrites its command lines (setproctitle), so
    the pid file also holds the start time, which tells our process from a recycled pid."""
    try:
        pid_text, *started = pid_file(state, name).read_text().split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    if not PROC.exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid
    stat = proc_stat(pid)
    return pid if stat and stat[0] not in "ZX" and [stat[19]] == started else None


def owns_component(state: Path, name: str, pid: int) -> bool:
    stat = proc_stat(pid) if PROC.exists() else None
    return stat is None or stat[0] in "ZX" or component_pid(state, name) == pid


def process_groups_under(roots: list[int]) -> set[int]:
    """The groups of `roots` and of all their descendants: a task runs in a process group of its own."""
    if not PROC.exists():
        return set(roots)
    children: dict[int, list[int]] = {}
    groups: dict[int, int] = {}
    for entry in PROC.iterdir():
        stat = proc_stat(int(entry.name)) if entry.name.isdigit() else None
        if stat and stat[0] not in "ZX":
            children.setdefault(int(stat[1]), []).append(int(entry.name))
            groups[int(entry.name)] = int(stat[2])
    found, todo = set(roots), list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return set(roots) | {groups[pid] for pid in found if pid in groups}


def stop_airflow(state: Path, grace: float = 20.0) -> list[str]:
    """Stop every component (and the tasks they run); return the names of those that were running."""
    roots, running = [], []
    for component in COMPONENTS:
        pid = read_pid(state, component.name)
        if pid and owns_component(state, component.name, pid):
            roots.append(pid)
            if group_members(pid):
                running.append(component.name)
        pid_file(state, component.name).unlink(missing_ok=True)
    stop_groups(sorted(process_groups_under(roots)), grace)
    return running


def api_health(port: int) -> dict | None:
    answer = http_get(f"http://{HOST}:{port}/api/v2/monitor/health")
    if not answer or answer[0] != 200:
        return None
    try:
        return json.loads(answer[1])
    except ValueError:
        return None


def component_ready(component: Component, health: dict | None, since: float) -> bool:
    """The API server answers with a healthy metadatabase; the others heartbeat (since their start)."""
    if health is None or health.get("metadatabase", {}).get("status") != "healthy":
        return False
    if component.health is None:
        return True
    entry = health.get(component.health) or {}
    beat = entry.get(f"latest_{component.health}_heartbeat")
    return entry.get("status") == "healthy" and bool(beat) and datetime.fromisoformat(beat).timestamp() >= since


@dataclass
class AirflowStart:
    env: dict[str, str]  # the group's full environment (stack env + additions)
    started: dict[str, float]  # component name -> when this `up` started it


def start_airflow(state: Path, ports: dict[str, int], stack: dict[str, str]) -> AirflowStart | None:
    """Start the components that are not running (all of them if the stack's addresses changed since the
    group started: its env is fixed at start); returns None if its DB could not be migrated."""
    home = airflow_home(state)
    home.mkdir(parents=True, exist_ok=True)
    stamp = home / ".started-with"
    alive = {c.name for c in COMPONENTS if component_pid(state, c.name)}

    def plan() -> tuple[list[Component], dict[str, str]]:
        missing = [c for c in COMPONENTS if c.name not in alive]
        ports.update(pick_ports([c.port for c in missing if c.port], ports))
        return missing, stack | airflow_env(state, ports)

    missing, env = plan()
    if alive and (not stamp.exists() or stamp.read_text() != fingerprint(env)):
        print("airflow: the stack changed since the Airflow group started (its env is fixed then): restarting it")
        stop_airflow(state)
        alive = set()
        missing, env = plan()
    (state / "ports.json").write_text(json.dumps(ports, indent=2) + "\n")
    process_env = component_process_env(env)
    migration = start_migration(state, home, process_env, "airflow-server-db")
    if not finish_migration(state, home, migration, "airflow-server-db"):
        return None
    started = {}
    for component in missing:
        old = read_pid(state, component.name)
        if old and owns_component(state, component.name, old):
            stop_groups(sorted(process_groups_under([old])), grace=5)  # leftovers would hold its port
        log = state / "logs" / f"{component.name}.log"
        started[component.name] = time.time()
        process = spawn([str(BIN / "airflow"), *component.args(ports)], log, process_env, home)
        pid_file(state, component.name).write_text(f"{process.pid} {start_time(process.pid) or ''}\n")
    stamp.write_text(fingerprint(env))
    return AirflowStart(env, started)


def await_airflow(state: Path, ports: dict[str, int], group: AirflowStart) -> bool:
    for component in COMPONENTS:
        since = group.started.get(component.name)
        timeout = 180.0 if component.health is None else 120.0  # the API server imports the most
        began = time.monotonic()
        deadline = began + timeout
        while not component_ready(component, api_health(ports["airflow"]), since or 0.0):
            problem = None
            if component_pid(state, component.name) is None:
                problem = "exited before it was ready"
            elif time.monotonic() > deadline:
                problem = f"not ready within {timeout:.0f} s"
            if problem:
                log = state / "logs" / f"{component.name}.log"
                print(f"{component.name}: {problem}; last 40 lines of {log}:\n{log_tail(log)}")
                return False
            time.sleep(0.5)
        how = f"started ({time.time() - since:.1f} s)" if since else "already running"
        print(f"{component.name}: {how}  {component.describe(state, ports)}")
    return True


def airflow_client(state: Path, ports: dict[str, int]):
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from scripts.airflow_api import AirflowClient

    password = json.loads(password_file(state).read_text())[AIRFLOW_USER]
    return AirflowClient(f"http://{HOST}:{ports['airflow']}", AIRFLOW_USER, password)


def ensure_pools(client) -> None:
    """The pools of airflow_settings.yaml (e.g. `training`: a task in a missing pool is never scheduled)."""
    import yaml

    for pool in ((yaml.safe_load(SETTINGS.read_text()) or {}).get("airflow") or {}).get("pools") or []:
        name, slots = pool["pool_name"], int(pool["pool_slot"])
        outcome = client.ensure_pool(name, slots, pool.get("pool_description") or "")
        print(f"airflow: pool {name} ({slots} slots) {outcome}")


def unpause_dags(client, dag_ids: list[str], timeout: float = 120.0) -> None:
    """Wait until the dag-processor has parsed the requested DAGs (or every DAG file), then unpause them."""
    files = {path.name for path in DAGS.glob("*.py") if b"dag" in path.read_bytes().lower()}
    deadline = time.monotonic() + timeout
    while True:
        dags = {dag["dag_id"]: dag for dag in client.list_dags()}
        errors = {Path(error["filename"]).name: error["stack_trace"] for error in client.import_errors()}
        parsed = {Path(dag["fileloc"]).name for dag in dags.values()} | errors.keys()
        if set(dag_ids) <= dags.keys() or files <= parsed or time.monotonic() > deadline:
            break
        time.sleep(1)
    for dag_id in dag_ids:
        if dag_id in dags:
            client.unpause(dag_id)
            print(f"airflow: {dag_id} unpaused")
        else:
            print(f"airflow: no DAG {dag_id!r} to unpause (DAGs: {', '.join(sorted(dags)) or 'none'})")
    for name, trace in errors.items():
        print(f"airflow: import error in dags/{name}: {trace.strip().splitlines()[-1]}")


def airflow_stale(state: Path, ports: dict[str, int], stack: dict[str, str]) -> bool:
    """Is some component running with an env that no longer matches the stack's addresses?"""
    stamp = airflow_home(state) / ".started-with"
    if not any(component_pid(state, c.name) for c in COMPONENTS) or "airflow" not in ports:
        return False
    return not stamp.exists() or stamp.read_text() != fingerprint(stack | airflow_env(state, ports))


# --- commands --------------------------------------------------------------------------------------


def prepare_dirs(state: Path) -> None:
    # Python's Maildir creates tmp/new/cur only when the mail dir itself is missing: make all three.
    for sub in ("pids", "logs", "airflow", "mlflow", "mail/tmp", "mail/new", "mail/cur"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    (state / MARKER).touch()


def start_missing(state: Path, ports: dict[str, int], env: dict[str, str]) -> dict[str, int]:
    """Start every service whose process is gone; return {name: pid} of all services."""
    pids, missing = {}, []
    for service in SERVICES:
        pid = read_pid(state, service.name)
        if is_alive(pid, ports.get(service.name)):
            pids[service.name] = pid
        else:
            missing.append(service)
            if pid and owns_group(pid, ports.get(service.name)):
                stop_groups([pid], grace=3)  # leftovers of a dead service would hold its port
    ports.update(pick_ports([service.name for service in missing], ports))
    (state / "ports.json").write_text(json.dumps(ports, indent=2) + "\n")
    env.update(stack_env(state, ports))
    for service in missing:
        log = state / "logs" / f"{service.name}.log"
        command = service.command(state, ports)
        process = spawn(command, log, os.environ | env | service.env(ports), state)
        pid_file(state, service.name).write_text(f"{process.pid}\n")
        pids[service.name] = process.pid
    return pids


def await_services(state: Path, ports: dict[str, int], pids: dict[str, int], fresh: set[str]) -> bool:
    for service in SERVICES:
        port, began = ports[service.name], time.monotonic()
        if problem := wait_ready(service, pids[service.name], port):
            log = state / "logs" / f"{service.name}.log"
            print(f"{service.name}: {problem}; last 40 lines of {log}:\n{log_tail(log)}")
            return False
        service.after_ready(state, port, service.name in fresh)
        how = "started" if service.name in fresh else "already running"
        print(f"{service.name}: {how} ({time.monotonic() - began:.1f} s)  {service.describe(state, port)}")
    return True


def up(state: Path, with_airflow: bool = False, unpause: tuple[str, ...] = ()) -> int:
    prepare_dirs(state)
    ports, env = load_ports(state), {}
    alive_before = {s.name for s in SERVICES if is_alive(read_pid(state, s.name), ports.get(s.name))}
    pids = start_missing(state, ports, env)
    migration = start_migration(state, state / "airflow", os.environ | env, "airflow-db")  # while services boot
    group = start_airflow(state, ports, env) if with_airflow else None  # its components boot meanwhile too
    ready = await_services(state, ports, pids, set(pids) - alive_before)
    migrated = finish_migration(state, state / "airflow", migration, "airflow-db")  # never leave it half done
    if not (ready and migrated):
        print("stack NOT ready; services that did start keep running (`down` stops them)")
        return 1
    if with_airflow and not (group and await_airflow(state, ports, group)):
        print("Airflow NOT ready; what did start keeps running (`down` stops it)")
        return 1
    if group:
        with airflow_client(state, ports) as client:
            ensure_pools(client)
            unpause_dags(client, list(unpause))
        write_env_file(state, group.env, "airflow.env")
    api_alive = component_pid(state, COMPONENTS[0].name) and "airflow" in ports
    path = write_env_file(state, env | (airflow_client_env(state, ports) if api_alive else {}))
    print(f"stack ready; use it with: set -a && source {path} && set +a")
    if group:
        password = json.loads(password_file(state).read_text())[AIRFLOW_USER]
        print(f"Airflow UI: http://{HOST}:{ports['airflow']}  user {AIRFLOW_USER}  password {password}")
        print(f"Airflow CLI on it: set -a && source {state / 'airflow.env'} && set +a")
    elif airflow_stale(state, ports, env):
        print("airflow: the Airflow group still runs with the stack's old addresses: `up --airflow` restarts it")
    return 0


def status(state: Path) -> int:
    ports, healthy = load_ports(state), True
    group = any(pid_file(state, c.name).exists() for c in COMPONENTS)
    width = max(len(name) for name in [s.name for s in SERVICES] + ([c.name for c in COMPONENTS] if group else []))
    for service in SERVICES:
        pid, port = read_pid(state, service.name), ports.get(service.name)
        if pid is None or port is None:
            healthy = False
            print(f"{service.name:<{width}} port {port or '-':<6} pid -        {'stopped' if port else 'not started'}")
            continue
        alive = is_alive(pid, port)
        healthy &= alive
        word = "alive" if alive else "DEAD"
        print(f"{service.name:<{width}} port {port:<6} pid {pid:<8} {word:<6} {service.describe(state, port)}")
    if not group:
        print("airflow: not started (opt-in: `up --airflow`, or make airflow)")
        return 0 if healthy else 1
    for component in COMPONENTS:
        pid, port = read_pid(state, component.name), ports.get(component.port) if component.port else None
        alive = component_pid(state, component.name) is not None
        healthy &= alive
        word = "alive" if alive else "DEAD"
        print(
            f"{component.name:<{width}} port {port or '-':<6} pid {pid or '-':<8} {word:<6} "
            f"{component.describe(state, ports)}"
        )
    return 0 if healthy else 1


def down(state: Path, purge: bool, only_airflow: bool = False) -> int:
    ports = load_ports(state)
    stopped = stop_airflow(state)  # first: its tasks use the services
    for name in stopped:
        print(f"{name}: stopped")
    if not stopped:
        print("airflow: not running")
    if only_airflow:
        if (state / "stack.env").exists():  # without the address of the stopped API server
            write_env_file(state, stack_env(state, ports))
        return 0
    pids = {s.name: read_pid(state, s.name) for s in SERVICES}
    if is_alive(pids["s3"], ports.get("s3")):
        try:
            print(f"s3: saved {save_s3(state, ports['s3'])} objects to {state / 's3'}")
        except Exception as error:  # a failed copy must not keep the stack running
            print(f"s3: could not save the bucket contents ({error}); the previous copy is kept")
    ours = {name: pid for name, pid in pids.items() if pid and owns_group(pid, ports.get(name))}
    running = {name for name, pid in ours.items() if group_members(pid)}
    stop_groups(list(ours.values()))
    for name in pids:
        pid_file(state, name).unlink(missing_ok=True)
        print(f"{name}: stopped" if name in running else f"{name}: not running")
    if purge and state.exists():
        if not (state / MARKER).exists():
            print(f"refusing to delete {state}: it has no {MARKER} marker, so it is not a stack dir")
            return 1
        shutil.rmtree(state)
        print(f"deleted {state}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="start what is not running, wait until ready, write stack.env")
    up_parser.add_argument(
        "--airflow", action="store_true", help="also run Airflow: API server + UI, scheduler, dag-processor, triggerer"
    )
    up_parser.add_argument(
        "--unpause", default="", metavar="DAG,DAG", help="with --airflow: unpause these DAGs once they are parsed"
    )
    commands.add_parser("status", help="show each service; exit 1 if any is dead or not started")
    down_parser = commands.add_parser("down", help="stop every service (data is kept)")
    down_parser.add_argument("--purge", action="store_true", help="also delete the state dir")
    down_parser.add_argument("--airflow", action="store_true", help="stop only the Airflow group")
    args = parser.parse_args(argv)
    state = state_dir()
    if args.command == "up":
        unpause = tuple(dag_id for dag_id in args.unpause.split(",") if dag_id)
        if unpause and not args.airflow:
            parser.error("--unpause needs --airflow")
        return up(state, args.airflow, unpause)
    if args.command == "status":
        return status(state)
    if args.airflow and args.purge:
        parser.error("--purge deletes everything: use it without --airflow")
    return down(state, args.purge, args.airflow)


if __name__ == "__main__":
    sys.exit(main())
