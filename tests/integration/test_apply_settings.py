"""scripts/apply_settings.py against a real (SQLite) Airflow metadata DB: created once, applied twice,
read back with Airflow's own `list` commands, then overridden from the environment.

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


def apply(env: dict[str, str], **overrides: str) -> dict[tuple[str, str], str]:
    """Run the script; return {(kind, name): action} from its report."""
    out = run([sys.executable, str(SCRIPT)], {**env, **overrides})
    actions = {}
    for line in out.splitlines():
        words = line.split()
        if len(words) >= 3 and words[0] in {"connection", "variable", "pool"}:
            actions[(words[0], words[1])] = words[2]
    assert "Done:" in out, out
    return actions


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


def assert_listed_exactly_once(state: dict[str, list[dict[str, Any]]], settings: apply_settings.Settings) -> None:
    conn_ids = [c["conn_id"] for c in state["connections"]]
    for conn in settings.connections:
        assert conn_ids.count(conn.conn_id) == 1, conn_ids
        row = next(c for c in state["connections"] if c["conn_id"] == conn.conn_id)
        for name in ("conn_type", "host", "schema", "login", "password", "port"):
            assert text(row[name]) == text(getattr(conn, name)), f"{conn.conn_id}.{name}"
        assert {k: text(v) for k, v in row["extra_dejson"].items()} == {k: text(v) for k, v in conn.extra.items()}
    keys = [v["key"] for v in state["variables"]]
    for var in settings.variables:
        assert keys.count(var.key) == 1, keys
        assert next(v["val"] for v in state["variables"] if v["key"] == var.key) == var.value
    names = [p["pool"] for p in state["pools"]]
    for pool in settings.pools:
        assert names.count(pool.name) == 1, names
        row = next(p for p in state["pools"] if p["pool"] == pool.name)
        assert (text(row["slots"]), row["description"]) == (text(pool.slots), pool.description)


def test_apply_is_idempotent_and_honours_overrides(airflow_env: dict[str, str]) -> None:
    everything = {("connection", c.conn_id) for c in DECLARED.connections}
    everything |= {("variable", v.key) for v in DECLARED.variables} | {("pool", p.name) for p in DECLARED.pools}

    first = apply(airflow_env)
    assert set(first) == everything
    assert set(first.values()) <= {"created", "updated"}  # a provider may pre-create e.g. aws_default
    second = apply(airflow_env)
    assert second == dict.fromkeys(everything, "unchanged")
    assert_listed_exactly_once(listed(airflow_env), DECLARED)

    overrides = {
        "AIRFLOW_CONN_MONGO_DEFAULT": json.dumps(MONGO_OVERRIDE),
        "AIRFLOW_VAR_ARTIFACTS_BUCKET": "prod-artifacts",
    }
    third = apply(airflow_env, **overrides)
    assert third[("connection", "mongo_default")] == "updated"
    assert third[("variable", "artifacts_bucket")] == "updated"
    assert sum(action == "unchanged" for action in third.values()) == len(everything) - 2
    expected = apply_settings.resolve(DECLARED, overrides)
    assert next(c for c in expected.connections if c.conn_id == "mongo_default").host == "mongo-prod.internal"
    assert_listed_exactly_once(listed(airflow_env), expected)
