"""scripts/apply_settings.py against a real (SQLite) Airflow metadata DB: applied twice, read back with
Airflow's own `list` commands (each item exactly once, with the declared values), then overridden from
the environment.

Needs no service: a throwaway AIRFLOW_HOME with `airflow db migrate`; nothing from the caller's
environment (AIRFLOW_*, AIRFLOW_CONN_*, AIRFLOW_VAR_*) reaches the subprocesses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scripts import apply_settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "apply_settings.py"
AIRFLOW = Path(sys.executable).with_name("airflow")  # the `airflow` CLI of the interpreter running the tests
DECLARED = apply_settings.load_settings(ROOT / "airflow_settings.yaml")
FERNET_KEY = "x2YLJcmcz7IMmV5x8Uhi0lHxQFSI4jXz9cSvJ6MeA5g="  # throwaway test key: passwords get encrypted
MONGO_OVERRIDE = {
    "conn_type": "mongo",
    "host": "mongo-prod.internal",
    "port": 27018,
    "schema": "insurance",
    "login": "retrain",
    "password": "override-password",
    "extra": {"srv": False, "authSource": "insurance"},
}


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("airflow-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__FERNET_KEY=FERNET_KEY,
    )
    run([str(AIRFLOW), "db", "migrate"], env, timeout=240)
    return env


def run(argv: list[str], env: dict[str, str], timeout: int = 120) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, check=False)
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def apply(env: dict[str, str], **overrides: str) -> str:
    out = run([sys.executable, str(SCRIPT)], {**env, **overrides})
    for conn_id in DECLARED["connections"]:
        assert f"Imported connection {conn_id}" in out, out
    assert f"{len(DECLARED['variables'])} of {len(DECLARED['variables'])} variables successfully updated" in out, out
    assert f"Uploaded {len(DECLARED['pools'])} pool(s)" in out, out
    return out


# The three `airflow ... list -o json` commands, run through Airflow's CLI parser in one process:
# the same code as the `airflow` executable, but Airflow is imported once instead of three times.
LIST_COMMANDS = {
    "connections": ["connections", "list", "-o", "json", "--show-values"],
    "variables": ["variables", "list", "-o", "json", "--show-values"],
    "pools": ["pools", "list", "-o", "json"],
}
LIST_PROGRAM = """
import contextlib, io, json, sys
from airflow.cli import cli_parser

parser = cli_parser.get_parser()
outputs = {}
for kind, argv in json.loads(sys.argv[1]).items():
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        args = parser.parse_args(argv)
        args.func(args)
    outputs[kind] = buffer.getvalue()
print(json.dumps(outputs))
"""


def listed(env: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    out = run([sys.executable, "-c", LIST_PROGRAM, json.dumps(LIST_COMMANDS)], env)
    outputs = json.loads(out.strip().splitlines()[-1])
    return {kind: json.loads(text[text.index("[") :]) for kind, text in outputs.items()}


def text(value: Any) -> str:
    """The CLI's JSON output renders every scalar with str(): compare on that footing."""
    return "None" if value is None else str(value)


def assert_listed_exactly_once(state: dict[str, list[dict[str, Any]]], settings: dict[str, dict[str, Any]]) -> None:
    conn_ids = [c["conn_id"] for c in state["connections"]]
    for conn_id, conn in settings["connections"].items():
        assert conn_ids.count(conn_id) == 1, conn_ids
        row = next(c for c in state["connections"] if c["conn_id"] == conn_id)
        for name in ("conn_type", "host", "schema", "login", "password", "port"):
            if name == "password" and name not in conn:
                continue  # airflow_settings.yaml holds no secret: it neither sets nor erases one
            assert text(row[name]) == text(conn.get(name)), f"{conn_id}.{name}"
        declared_extra = conn.get("extra") or {}  # a connection may declare none (airflow_api)
        assert {k: text(v) for k, v in row["extra_dejson"].items()} == {k: text(v) for k, v in declared_extra.items()}
    keys = [v["key"] for v in state["variables"]]
    for key, value in settings["variables"].items():
        assert keys.count(key) == 1, keys
        assert next(v["val"] for v in state["variables"] if v["key"] == key) == value
    names = [p["pool"] for p in state["pools"]]
    for name, pool in settings["pools"].items():
        assert names.count(name) == 1, names
        row = next(p for p in state["pools"] if p["pool"] == name)
        assert (text(row["slots"]), row["description"]) == (text(pool["slots"]), pool["description"])


def test_apply_is_idempotent_and_honours_overrides(airflow_env: dict[str, str]) -> None:
    apply(airflow_env)
    apply(airflow_env)
    assert_listed_exactly_once(listed(airflow_env), DECLARED)

    overrides = {
        "AIRFLOW_CONN_MONGO_DEFAULT": json.dumps(MONGO_OVERRIDE),
        "AIRFLOW_VAR_ARTIFACTS_BUCKET": "prod-artifacts",
    }
    assert "from the environment: AIRFLOW_CONN_MONGO_DEFAULT, AIRFLOW_VAR_ARTIFACTS_BUCKET" in apply(
        airflow_env, **overrides
    )
    expected, _ = apply_settings.resolve(DECLARED, overrides)
    assert expected["connections"]["mongo_default"] == MONGO_OVERRIDE
    assert_listed_exactly_once(listed(airflow_env), expected)
    apply(airflow_env)  # back to the YAML's values, still each exactly once
    state = listed(airflow_env)
    assert_listed_exactly_once(state, DECLARED)
    # the password the environment brought stays: the YAML has none to put back
    mongo_row = next(c for c in state["connections"] if c["conn_id"] == "mongo_default")
    assert "password" not in DECLARED["connections"]["mongo_default"]
    assert mongo_row["password"] == MONGO_OVERRIDE["password"]
