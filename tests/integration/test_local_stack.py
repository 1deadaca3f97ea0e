"""`python -m scripts.local_stack` against real processes, in a private state dir (a second, independent stack).

The tests share one stack and run in file order: up, up again, crash and restart, mail, the Airflow group, down.
"""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from email.message import EmailMessage
from pathlib import Path

import pytest

from scripts.airflow_api import AirflowAPIError, AirflowClient, read_env_file

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("s3", "mongo", "smtp", "mlflow")
AIRFLOW = ("airflow-api-server", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
REQUIRED_NAMES = {
    "MONGO_URI", "MONGO_ADMIN_URI", "MONGO_DB", "MONGO_COLLECTION", "MLFLOW_TRACKING_URI", "AWS_ENDPOINT_URL_S3",
    "S3_BUCKET",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "MAIL_SINK_DIR", "SMTP_PORT",
    "AIRFLOW_HOME", "AIRFLOW__CORE__DAGS_FOLDER", "AIRFLOW__CORE__PLUGINS_FOLDER",
    "AIRFLOW__CORE__LOAD_EXAMPLES", "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "PYTHONPATH",
    "AIRFLOW_CONN_MONGO_DEFAULT", "AIRFLOW_CONN_AWS_DEFAULT", "AIRFLOW_CONN_SMTP_DEFAULT",
    "AIRFLOW_VAR_MLFLOW_TRACKING_URI", "AIRFLOW_VAR_ARTIFACTS_BUCKET", "MLFLOW_S3_ENDPOINT_URL",
    "AIRFLOW_CONN_MONGO_ADMIN", "SEED_MONGO_CONN_ID",
}  # fmt: skip


def run_stack(state: Path, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"LOCAL_STACK_DIR": str(state)}
    return subprocess.run(
        [sys.executable, "-m", "scripts.local_stack", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


def sourced_env(state: Path) -> dict[str, str]:
    """What bash exports after sourcing stack.env in an otherwise empty environment."""
    script = 'set -eu; source "$1"; env -0'
    out = subprocess.run(
        ["bash", "-c", script, "bash", str(state / "stack.env")],
        env={"PATH": os.environ["PATH"]}, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return dict(item.split("=", 1) for item in out.split("\0") if item)


def read_state(state: Path) -> tuple[dict[str, int], dict[str, int]]:
    ports = json.loads((state / "ports.json").read_text())
    pids = {name: int((state / "pids" / f"{name}.pid").read_text().split()[0]) for name in SERVICES}
    return ports, pids


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def live_group_members(pgids: set[int]) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pgid=,stat=,args="], capture_output=True, text=True, check=True)
    rows = (line.split(None, 2) for line in out.stdout.splitlines())
    return [row[2] for row in rows if int(row[0]) in pgids and not row[1].startswith("Z")]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):
    state = tmp_path_factory.mktemp("local_stack")
    result = run_stack(state, "up")
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        yield state
    finally:
        run_stack(state, "down", "--purge", timeout=60)


def assert_uris_work_as_they_are(env: dict[str, str]) -> None:
    """The URIs stack.env hands a person or a script log in: the pipeline's reads the demo database and
    nothing it was not granted, the admin's lists every database."""
    import pymongo
    from pymongo.errors import OperationFailure

    with pymongo.MongoClient(env["MONGO_URI"]) as pipeline, pymongo.MongoClient(env["MONGO_ADMIN_URI"]) as admin:
        assert pipeline[env["MONGO_DB"]][env["MONGO_COLLECTION"]].count_documents({}) >= 0
        with pytest.raises(OperationFailure, match="not authorized"):
            pipeline.list_database_names()
        assert env["MONGO_DB"] in admin.list_database_names()


def test_up_starts_every_service_and_writes_stack_env(stack: Path):
    status = run_stack(stack, "status")
    assert status.returncode == 0, status.stdout
    env = sourced_env(stack)
    assert REQUIRED_NAMES - env.keys() == set()
    ports, _ = read_state(stack)
    assert env["MONGO_URI"].startswith("mongodb://retrain_pipeline:")
    assert env["MONGO_ADMIN_URI"].startswith("mongodb://admin:")
    assert_uris_work_as_they_are(env)
    assert env["SMTP_PORT"] == str(ports["smtp"])
    assert json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])["extra"]["endpoint_url"] == env["AWS_ENDPOINT_URL_S3"]
    pipeline, admin = json.loads(env["AIRFLOW_CONN_MONGO_DEFAULT"]), json.loads(env["AIRFLOW_CONN_MONGO_ADMIN"])
    assert pipeline["port"] == admin["port"] == ports["mongo"]
    assert (pipeline["login"], admin["login"]) == ("retrain_pipeline", "admin")  # MongoDB runs with --auth
    assert pipeline["password"] != admin["password"]
    with urllib.request.urlopen(f"{env['MLFLOW_TRACKING_URI']}/health", timeout=5) as response:
        assert response.read() == b"OK"
    with urllib.request.urlopen(f"{env['AWS_ENDPOINT_URL_S3']}/{env['S3_BUCKET']}", timeout=5) as response:
        assert response.status == 200  # the bucket exists


def test_second_up_is_harmless_and_keeps_ports(stack: Path):
    before = read_state(stack)
    result = run_stack(stack, "up")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("already running") == len(SERVICES)
    assert read_state(stack) == before


def test_dead_service_is_reported_and_restarted_on_same_port(stack: Path):
    ports, pids = read_state(stack)
    os.kill(pids["smtp"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while (status := run_stack(stack, "status")).returncode == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status.returncode == 1
    assert [line.split()[0] for line in status.stdout.splitlines() if "DEAD" in line] == ["smtp"]

    result = run_stack(stack, "up")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "smtp: started" in result.stdout
    new_ports, new_pids = read_state(stack)
    assert new_ports == ports
    assert new_pids["smtp"] != pids["smtp"]
    assert {k: v for k, v in new_pids.items() if k != "smtp"} == {k: v for k, v in pids.items() if k != "smtp"}


def test_mail_sent_with_smtplib_lands_in_mail_sink_dir(stack: Path):
    env = sourced_env(stack)
    subject = f"local stack probe {uuid.uuid4()}"
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "bot@example.com", "team@example.com", subject
    message.set_content("drift detected")
    with smtplib.SMTP("127.0.0.1", int(env["SMTP_PORT"]), timeout=10) as smtp:
        smtp.send_message(message)
    files = list((Path(env["MAIL_SINK_DIR"]) / "new").iterdir())
    assert any(subject in file.read_text() for file in files)


def test_airflow_group_starts_on_its_own_db_with_login_and_healthy_components(stack: Path):
    result = run_stack(stack, "up", "--airflow", "--topology", "local", timeout=420)
    assert result.returncode == 0, result.stdout + result.stderr
    status = run_stack(stack, "status")
    assert status.returncode == 0, status.stdout
    assert [line.split()[0] for line in status.stdout.splitlines() if " alive " in line][-4:] == list(AIRFLOW)

    group = read_env_file(stack / "airflow.env")
    assert group["AIRFLOW_HOME"] == str(stack / "airflow-server")  # not the `dags test` DB
    assert group["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"sqlite:///{stack / 'airflow-server' / 'airflow.db'}"
    assert group["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == f"{group['AIRFLOW_API_URL']}/execution/"
    assert "AIRFLOW_VAR_RETRAIN_CONFIG" not in group  # tests set the DB Variable; env would shadow it
    env = sourced_env(stack)
    assert env["AIRFLOW_HOME"] == str(stack / "airflow")
    assert env["AIRFLOW_API_URL"] == group["AIRFLOW_API_URL"]
    assert f"Airflow UI: {group['AIRFLOW_API_URL']}  user admin  password " in result.stdout

    with AirflowClient.from_env(env) as client:
        health = client.health()
        assert {part: health[part]["status"] for part in health} == dict.fromkeys(health, "healthy")
        assert set(health) == {"metadatabase", "scheduler", "triggerer", "dag_processor"}
        assert client.request("GET", "/api/v2/pools/training")["slots"] == 1
    wrong = AirflowClient(group["AIRFLOW_API_URL"], "admin", "not-the-password")
    with pytest.raises(AirflowAPIError) as refused:
        wrong.login()
    assert refused.value.status == 401

    again = run_stack(stack, "up", "--airflow", timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("already running") == len(SERVICES) + len(AIRFLOW)


def test_down_stops_everything(stack: Path):
    ports, pids = read_state(stack)
    airflow = {name: int((stack / "pids" / f"{name}.pid").read_text().split()[0]) for name in AIRFLOW}
    result = run_stack(stack, "down", timeout=90)
    assert result.returncode == 0, result.stdout + result.stderr
    assert all(f"{name}: stopped" in result.stdout for name in AIRFLOW), result.stdout
    assert live_group_members(set(pids.values()) | set(airflow.values())) == []
    assert not any(listening(port) for port in ports.values())
    assert not list((stack / "pids").glob("*.pid"))
    assert run_stack(stack, "status").returncode == 1
