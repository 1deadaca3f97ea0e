"""Run the local stack without Docker: MongoDB (SecantusDB), S3 (moto), MLflow and an SMTP sink.

    python scripts/local_stack.py up            # start what is not running, wait until ready, write stack.env
    python scripts/local_stack.py status        # one line per service; exit 1 if any is dead or not started
    python scripts/local_stack.py down [--purge]  # stop everything; --purge also deletes the state dir

Everything lives under one state dir (`<repo>/.local`, or `$LOCAL_STACK_DIR` for an independent second
stack): ports.json, pids/<svc>.pid, logs/<svc>.log, the data of each service and stack.env, which
`source` turns into the environment the DAGs, the library and the tests read.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
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


def write_env_file(state: Path, env: dict[str, str]) -> Path:
    path, tmp = state / "stack.env", state / "stack.env.tmp"
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
        return int(pid_file(state, name).read_text())
    except (OSError, ValueError):
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


def migration_stamp(state: Path) -> tuple[Path, str]:
    return state / "airflow" / ".migrated", f"apache-airflow=={version('apache-airflow')}"


def start_migration(state: Path, env: dict[str, str]) -> subprocess.Popen | None:
    stamp, expected = migration_stamp(state)
    if (state / "airflow" / "airflow.db").exists() and stamp.exists() and stamp.read_text() == expected:
        return None
    log = state / "logs" / "airflow-db.log"
    return spawn([str(BIN / "airflow"), "db", "migrate"], log, env, state / "airflow")


def finish_migration(state: Path, migration: subprocess.Popen | None) -> bool:
    if migration is None:
        print("airflow-db: already migrated")
        return True
    if migration.wait(timeout=300) != 0:
        log = state / "logs" / "airflow-db.log"
        print(f"airflow-db: `airflow db migrate` failed; last 40 lines of {log}:\n{log_tail(log)}")
        return False
    stamp, expected = migration_stamp(state)
    stamp.write_text(expected)
    print(f"airflow-db: migrated {state / 'airflow' / 'airflow.db'}")
    return True


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


def up(state: Path) -> int:
    prepare_dirs(state)
    ports, env = load_ports(state), {}
    alive_before = {s.name for s in SERVICES if is_alive(read_pid(state, s.name), ports.get(s.name))}
    pids = start_missing(state, ports, env)
    migration = start_migration(state, os.environ | env)  # runs while the services boot
    ready = await_services(state, ports, pids, set(pids) - alive_before)
    migrated = finish_migration(state, migration)  # even after a failure: never leave it half done
    if not (ready and migrated):
        print("stack NOT ready; services that did start keep running (`down` stops them)")
        return 1
    path = write_env_file(state, env)
    print(f"stack ready; use it with: set -a && source {path} && set +a")
    return 0


def status(state: Path) -> int:
    ports, healthy = load_ports(state), True
    for service in SERVICES:
        pid, port = read_pid(state, service.name), ports.get(service.name)
        if pid is None or port is None:
            healthy = False
            print(f"{service.name:<7} port {port or '-':<6} pid -        {'stopped' if port else 'not started'}")
            continue
        alive = is_alive(pid, port)
        healthy &= alive
        word = "alive" if alive else "DEAD"
        print(f"{service.name:<7} port {port:<6} pid {pid:<8} {word:<6} {service.describe(state, port)}")
    return 0 if healthy else 1


def down(state: Path, purge: bool) -> int:
    ports = load_ports(state)
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
    commands.add_parser("up", help="start what is not running, wait until ready, write stack.env")
    commands.add_parser("status", help="show each service; exit 1 if any is dead or not started")
    down_parser = commands.add_parser("down", help="stop every service (data is kept)")
    down_parser.add_argument("--purge", action="store_true", help="also delete the state dir")
    args = parser.parse_args(argv)
    state = state_dir()
    if args.command == "up":
        return up(state)
    if args.command == "status":
        return status(state)
    return down(state, args.purge)


if __name__ == "__main__":
    sys.exit(main())
