"""airflow_settings.yaml against the code's conventions, the installed providers and the Astro CLI
format; scripts/apply_settings.py's conversion, overrides and masking. No database, no services."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from scripts import apply_settings
from scripts.apply_settings import SettingsError

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "airflow_settings.yaml"
# What the library and DAGs use (include/retraining, dags/, plugins/).
CONNECTIONS = {"mongo_default": "mongo", "aws_default": "aws", "smtp_default": "smtp", "airflow_api": "http"}
VARIABLES = {"mlflow_tracking_uri", "artifacts_bucket", "alert_recipients", "retrain_config"}
# The Astro CLI's schema for airflow_settings.yaml (astro-cli settings/types.go).
TYPES = {
    "connections": {"conn_port": int, "conn_extra": dict},
    "variables": {"variable_value": str},
    "pools": {"pool_slot": int},
}
ASTRO_KEYS = {kind: ({id_key} | others, TYPES[kind]) for kind, (id_key, others) in apply_settings.KEYS.items()}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_")):
            monkeypatch.delenv(key)


def settings() -> dict:
    return apply_settings.load_settings(SETTINGS)


def write(tmp_path: Path, document: dict) -> Path:
    path = tmp_path / "airflow_settings.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def isolated_airflow_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow-home"),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{tmp_path / 'unused.db'}",
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
    )
    return env


# --------------------------------------------------------------------------------------------------
# The settings file
# --------------------------------------------------------------------------------------------------


def test_declares_every_connection_the_code_uses() -> None:
    declared = {conn_id: conn["conn_type"] for conn_id, conn in settings()["connections"].items()}
    assert declared == CONNECTIONS


def test_connection_details_follow_the_conventions() -> None:
    conns = settings()["connections"]
    mongo = conns["mongo_default"]
    assert (mongo["host"], mongo["port"], mongo["schema"]) == ("mongo", 27017, "insurance")
    assert mongo["extra"] == {"srv": False, "authSource": "admin"}
    aws = conns["aws_default"]
    assert aws["extra"] == {"endpoint_url": "http://minio:9000", "region_name": "us-east-1"}
    assert aws["login"]
    assert mongo["login"] == "retrain_pipeline"  # the least-privilege user, not root

    smtp = conns["smtp_default"]
    assert (smtp["host"], smtp["port"]) == ("mailpit", 1025)
    assert smtp["extra"] == {
        "disable_ssl": True,
        "disable_tls": True,
        "from_email": "retrain-bot@example.com",
        "timeout": 30,
        "retry_limit": 3,
    }


def test_settings_hold_no_secret() -> None:
    """Passwords come from AIRFLOW_CONN_* in the environment (.env), never from this file."""
    for conn_id, conn in settings()["connections"].items():
        assert not conn.get("password"), f"{conn_id} has a password in airflow_settings.yaml"
    assert "change-me" not in SETTINGS.read_text(encoding="utf-8")


def test_declares_the_variables_and_the_training_pool() -> None:
    variables = settings()["variables"]
    assert set(variables) == VARIABLES
    assert variables["mlflow_tracking_uri"] == "http://mlflow:5000"
    assert variables["artifacts_bucket"] == "mlops-artifacts"
    assert isinstance(json.loads(variables["retrain_config"]), dict)
    pools = settings()["pools"]
    assert set(pools) == {"training"}
    assert pools["training"]["slots"] == 1
    assert pools["training"]["description"]


def test_file_is_valid_for_the_astro_cli() -> None:
    """Astro reads the file itself: its keys, an integer port, string variable values, no ${...}."""
    document = yaml.safe_load(SETTINGS.read_text(encoding="utf-8"))
    assert set(document) == {"airflow"}
    assert set(document["airflow"]) == set(ASTRO_KEYS)
    for section, (allowed, types) in ASTRO_KEYS.items():
        for entry in document["airflow"][section]:
            assert set(entry) <= allowed, entry
            for key, expected in types.items():
                if key in entry:
                    assert isinstance(entry[key], expected), f"{section}: {key}={entry[key]!r}"
    values = [str(v) for section in document["airflow"].values() for entry in section for v in entry.values()]
    assert not [v for v in values if "${" in v], "Astro does not interpolate environment variables"


def test_connection_types_are_registered_by_the_installed_providers(tmp_path: Path) -> None:
    """Ask Airflow (in a subprocess with a throwaway AIRFLOW_HOME) which connection types exist."""
    code = (
        "import json\n"
        "try:\n"
        "    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime as M\n"
        "except ImportError:\n"
        "    from airflow.providers_manager import ProvidersManager as M\n"
        "print(json.dumps(sorted(M().hooks)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=isolated_airflow_env(tmp_path),
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    known = set(json.loads(result.stdout.strip().splitlines()[-1]))
    declared = {conn["conn_type"] for conn in settings()["connections"].values()}
    assert declared <= known, f"conn types no installed provider registers: {sorted(declared - known)}"


# --------------------------------------------------------------------------------------------------
# apply_settings: conversion to the import formats, validation
# --------------------------------------------------------------------------------------------------


def test_converts_to_the_import_formats_of_the_airflow_cli() -> None:
    converted = settings()
    assert converted["connections"]["smtp_default"] == {
        "conn_type": "smtp",
        "host": "mailpit",
        "port": 1025,
        "extra": {
            "disable_ssl": True,
            "disable_tls": True,
            "from_email": "retrain-bot@example.com",
            "timeout": 30,
            "retry_limit": 3,
        },
    }
    assert converted["variables"]["retrain_config"] == "{}"
    assert converted["pools"] == {
        "training": {
            "slots": 1,
            "description": "Limits concurrent model retraining to one run at a time",
            "include_deferred": False,
        }
    }


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"airflow": {"connections": [{"conn_id": "x", "conn_type": "http", "conn_hots": "h"}]}}, "unknown keys"),
        ({"airflow": {"connections": [{"conn_type": "http"}]}}, "with conn_id"),
        ({"airflow": {"connections": [{"conn_id": "x"}]}}, "conn_type (or conn_uri) is required"),
        ({"airflow": {"connections": [{"conn_id": "x", "conn_type": "http", "conn_extra": "{"}]}}, "JSON"),
        (
            {"airflow": {"connections": [{"conn_id": "x", "conn_type": "a"}, {"conn_id": "x", "conn_type": "b"}]}},
            "twice",
        ),
        ({"airflow": {"variables": [{"variable_value": "v"}]}}, "with variable_name"),
        ({"airflow": {"variables": "nope"}}, "must be a list"),
        ({"settings": {}}, None),
    ],
)
def test_rejects_malformed_settings(tmp_path: Path, document: dict, message: str | None) -> None:
    path = write(tmp_path, document)
    if message is None:  # a file without an airflow: section declares nothing
        assert apply_settings.load_settings(path) == {"connections": {}, "variables": {}, "pools": {}}
        return
    with pytest.raises(SettingsError) as excinfo:
        apply_settings.load_settings(path)
    assert message in str(excinfo.value)


def test_variable_values_become_strings_and_a_uri_stays_a_uri(tmp_path: Path) -> None:
    document = {
        "variables": [{"variable_name": "a", "variable_value": {"k": 1}}, {"variable_name": "b"}],
        "connections": [{"conn_id": "c", "conn_uri": "http://h:1/"}],
    }
    loaded = apply_settings.load_settings(write(tmp_path, {"airflow": document}))
    assert loaded["variables"] == {"a": '{"k": 1}', "b": ""}
    assert loaded["connections"] == {"c": "http://h:1/"}


# --------------------------------------------------------------------------------------------------
# apply_settings: environment overrides
# --------------------------------------------------------------------------------------------------


def test_without_overrides_the_yaml_is_used_as_is() -> None:
    assert apply_settings.resolve(settings(), {}) == (settings(), [])


def test_json_connection_override_replaces_the_connection() -> None:
    override = {
        "conn_type": "mongo",
        "host": "mongo-prod.internal",
        "port": 27018,
        "login": "app",
        "password": "s3cret-value",
        "extra": {"srv": False, "authSource": "insurance", "tls": True},
    }
    env = {"AIRFLOW_CONN_MONGO_DEFAULT": json.dumps(override), "AIRFLOW_CONN_NOT_DECLARED": "{}"}
    resolved, used = apply_settings.resolve(settings(), env)
    assert resolved["connections"]["mongo_default"] == override
    assert resolved["connections"]["aws_default"] == settings()["connections"]["aws_default"]
    assert "not_declared" not in resolved["connections"]
    assert used == ["AIRFLOW_CONN_MONGO_DEFAULT"]


def test_uri_override_is_passed_on_as_a_uri() -> None:
    uri = "mongo://app:p%40ss@mongo-2.internal:27018/insurance?authSource=admin"
    resolved, _ = apply_settings.resolve(settings(), {"AIRFLOW_CONN_MONGO_DEFAULT": uri})
    assert resolved["connections"]["mongo_default"] == uri  # Airflow's import parses it, as at run time


def test_empty_strings_in_overrides_mean_unset() -> None:
    """compose renders an unset SMTP_USER as "login": "" - the DB must get no login, not ""."""
    env = {
        "AIRFLOW_CONN_SMTP_DEFAULT": json.dumps(
            {"conn_type": "smtp", "host": "mailpit", "port": 1025, "login": "", "password": "", "extra": {}}
        ),
        "AIRFLOW_CONN_AWS_DEFAULT": "",  # set but empty: ignored, like Airflow does
    }
    resolved, used = apply_settings.resolve(settings(), env)
    assert resolved["connections"]["smtp_default"] == {
        "conn_type": "smtp",
        "host": "mailpit",
        "port": 1025,
        "extra": {},
    }
    assert used == ["AIRFLOW_CONN_SMTP_DEFAULT"]


def test_variable_override() -> None:
    env = {"AIRFLOW_VAR_ARTIFACTS_BUCKET": "prod-artifacts", "AIRFLOW_VAR_RETRAIN_CONFIG": ""}
    resolved, used = apply_settings.resolve(settings(), env)
    assert resolved["variables"]["artifacts_bucket"] == "prod-artifacts"
    assert resolved["variables"]["retrain_config"] == "{}"
    assert used == ["AIRFLOW_VAR_ARTIFACTS_BUCKET"]


@pytest.mark.parametrize("raw", ["{not json", '{"host": "h",}'])
def test_malformed_json_override_is_an_error(raw: str) -> None:
    with pytest.raises(SettingsError) as excinfo:
        apply_settings.resolve(settings(), {"AIRFLOW_CONN_MONGO_DEFAULT": raw})
    assert "AIRFLOW_CONN_MONGO_DEFAULT" in str(excinfo.value)


# --------------------------------------------------------------------------------------------------
# apply_settings: --dry-run and masking
# --------------------------------------------------------------------------------------------------


def test_masking_hides_passwords_sensitive_extras_and_uri_credentials() -> None:
    env = {
        "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(
            {
                "conn_type": "aws",
                "login": "AKIAEXAMPLE",
                "password": "aws-secret-value",
                "extra": {"aws_session_token": "token-value", "region_name": "eu-west-1"},
            }
        ),
        "AIRFLOW_CONN_MONGO_DEFAULT": "mongo://app:uri-conn-password@db:27017/insurance",
        "AIRFLOW_VAR_MLFLOW_TRACKING_URI": "https://bot:uri-password@mlflow.example.com",
    }
    shown = json.dumps(apply_settings.masked(apply_settings.resolve(settings(), env)[0]))
    for secret in ("aws-secret-value", "token-value", "uri-password", "uri-conn-password", "change-me"):
        assert secret not in shown
    assert "eu-west-1" in shown
    assert "https://bot:***@mlflow.example.com" in shown
    assert "mongo://app:***@db:27017/insurance" in shown


@pytest.mark.usefixtures("clean_env")
def test_dry_run_prints_the_resolved_settings_masked(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_MONGO_DEFAULT", json.dumps({"conn_type": "mongo", "host": "db.example", "password": "pw-123456"})
    )
    assert apply_settings.main(["--dry-run", "--settings", str(SETTINGS)]) == 0
    out = capsys.readouterr().out
    assert "pw-123456" not in out
    assert "change-me" not in out
    assert "from the environment: AIRFLOW_CONN_MONGO_DEFAULT" in out
    printed = yaml.safe_load(out)
    assert printed["connections"]["mongo_default"] == {"conn_type": "mongo", "host": "db.example", "password": "***"}
    assert "password" not in printed["connections"]["aws_default"]
    assert printed["pools"]["training"]["slots"] == 1
    assert set(printed["variables"]) == VARIABLES


def test_dry_run_does_not_import_airflow(tmp_path: Path) -> None:
    """Checking what would be applied works without Airflow (and in a fraction of a second)."""
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(ROOT)!r})\n"
        "from scripts import apply_settings\n"
        "assert apply_settings.main(['--dry-run']) == 0\n"
        "assert 'airflow' not in sys.modules, 'airflow was imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=isolated_airflow_env(tmp_path), check=False
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.usefixtures("clean_env")
def test_bad_settings_exit_with_status_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, {"airflow": {"pools": [{"pool_name": "p", "pool_slots": 5}]}})
    assert apply_settings.main(["--dry-run", "--settings", str(path)]) == 2
    assert "pool_slots" in capsys.readouterr().err
    assert apply_settings.main(["--dry-run", "--settings", str(tmp_path / "missing.yaml")]) == 2
