"""Apply airflow_settings.yaml (Astro CLI format) to the Airflow metadata DB with Airflow's own commands.

    python scripts/apply_settings.py              # connections, variables and pools, created or overwritten
    python scripts/apply_settings.py --dry-run    # print what would be applied, secrets masked

The YAML is converted to the JSON files of `airflow connections import --overwrite`, `airflow variables
import --action-on-existing-key overwrite` and `airflow pools import`, which run in this process (Airflow
is imported once) against whatever DB the Airflow configuration points at. Each is keyed by id, so running
this twice leaves every connection, variable and pool exactly once.

Overrides: the YAML keeps the docker compose defaults (Astro interpolates nothing). For the ids it
declares, a set `AIRFLOW_CONN_<CONN_ID>` (a JSON object or a URI) replaces the connection and a set
`AIRFLOW_VAR_<NAME>` the variable's value: the variables Airflow itself reads before the DB at run time,
so the DB holds what tasks see. Empty values count as unset; pools come from the YAML only.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

SETTINGS = Path(__file__).resolve().parent.parent / "airflow_settings.yaml"
# The id key and the other YAML keys of each kind (Astro CLI schema); a connection's lose `conn_` but conn_type.
KEYS = {
    "connections": ("conn_id", {"conn_type", "conn_host", "conn_schema", "conn_login", "conn_password"}
                    | {"conn_port", "conn_uri", "conn_extra"}),
    "variables": ("variable_name", {"variable_value"}),
    "pools": ("pool_name", {"pool_slot", "pool_description"}),
}  # fmt: skip
COMMANDS = {
    "connections": ["connections", "import", "--overwrite"],
    "variables": ["variables", "import", "--action-on-existing-key", "overwrite"],
    "pools": ["pools", "import"],
}
MASK = "***"
SENSITIVE = ("password", "passwd", "passphrase", "secret", "token", "api_key", "apikey", "private_key",
             "authorization", "keyfile_dict", "service_account")  # fmt: skip
URI_CREDENTIALS = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s]+@", re.IGNORECASE)


class SettingsError(ValueError):
    """airflow_settings.yaml or an override is malformed."""


def _entry(kind: str, entry: Any, index: int) -> tuple[str, Any]:
    """One YAML entry as (id, value in the import file's format)."""
    id_key, allowed = KEYS[kind]
    if not isinstance(entry, dict) or not entry.get(id_key):
        raise SettingsError(f"{kind}[{index}]: expected a mapping with {id_key}")
    if unknown := sorted(set(entry) - allowed - {id_key}):
        raise SettingsError(f"{kind}[{index}]: unknown keys {unknown}; allowed: {sorted(allowed | {id_key})}")
    name = str(entry[id_key])
    if kind == "variables":
        value = entry.get("variable_value")
        return name, value if isinstance(value, str) else "" if value is None else json.dumps(value)
    if kind == "pools":
        slots = entry.get("pool_slot")
        return name, {"slots": slots, "description": entry.get("pool_description") or "", "include_deferred": False}
    if entry.get("conn_uri") and not entry.get("conn_type"):
        return name, str(entry["conn_uri"])
    if not entry.get("conn_type"):
        raise SettingsError(f"connection {name}: conn_type (or conn_uri) is required")
    return name, _clean(
        {k if k == "conn_type" else k.removeprefix("conn_"): v for k, v in entry.items() if k != id_key}
    )


def _clean(conn: dict[str, Any]) -> dict[str, Any]:
    """Drop empty fields (compose renders an unset login as ""); extra as a mapping."""
    conn = {key: value for key, value in conn.items() if value not in (None, "")}
    if isinstance(conn.get("extra"), str):
        try:
            conn["extra"] = json.loads(conn["extra"])
        except json.JSONDecodeError as error:
            raise SettingsError(f"extra is not valid JSON ({error})") from None
    return conn


def load_settings(path: Path = SETTINGS) -> dict[str, dict[str, Any]]:
    """{"connections": {conn_id: dict or URI}, "variables": {key: text}, "pools": {name: dict}}."""
    try:
        section = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("airflow") or {}
    except (OSError, yaml.YAMLError, AttributeError) as error:
        raise SettingsError(f"{path}: {error}") from None
    settings: dict[str, dict[str, Any]] = {}
    for kind in KEYS:
        entries = section.get(kind) or []
        if not isinstance(entries, list):
            raise SettingsError(f"{path}: airflow.{kind} must be a list")
        settings[kind] = {}
        for index, entry in enumerate(entries):
            name, value = _entry(kind, entry, index)
            if name in settings[kind]:
                raise SettingsError(f"{kind}: {name!r} is declared twice")
            settings[kind][name] = value
    return settings


def resolve(settings: dict[str, dict[str, Any]], environ: Mapping[str, str]) -> tuple[dict, list[str]]:
    """The settings with the AIRFLOW_CONN_* / AIRFLOW_VAR_* overrides of declared ids; the names used."""
    resolved, used = {kind: dict(items) for kind, items in settings.items()}, []
    for kind, prefix in (("connections", "AIRFLOW_CONN_"), ("variables", "AIRFLOW_VAR_")):
        for name in resolved[kind]:
            raw = environ.get(prefix + name.upper(), "").strip()
            if not raw:
                continue
            used.append(prefix + name.upper())
            if kind == "connections" and raw.startswith("{"):
                try:
                    raw = _clean(json.loads(raw))
                except (json.JSONDecodeError, AttributeError) as error:
                    raise SettingsError(f"{prefix + name.upper()}: not a JSON object ({error})") from None
            resolved[kind][name] = raw
    return resolved, used


def masked(value: Any, key: str = "") -> Any:
    """The value with secrets replaced: sensitive keys' values and the passwords inside URIs."""
    if value not in (None, "") and any(word in key.lower() for word in SENSITIVE):
        return MASK
    if isinstance(value, dict):
        return {k: masked(v, k) for k, v in value.items()}
    return URI_CREDENTIALS.sub(rf"\g<head>{MASK}@", value) if isinstance(value, str) else value


def airflow(*argv: str) -> str:
    """Run one `airflow ...` command in this process with Airflow's own CLI parser; its output."""
    from airflow.cli import cli_parser

    args, out = cli_parser.get_parser().parse_args(argv), io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            args.func(args)
    except SystemExit as error:
        if error.code not in (None, 0):
            raise RuntimeError(f"{out.getvalue()}{error.code}") from None
    return out.getvalue()


def apply(settings: dict[str, dict[str, Any]]) -> None:
    """One import command a kind, fed a JSON file."""
    with tempfile.TemporaryDirectory(prefix="apply-settings-") as tmp:  # mode 0700: the files hold secrets
        for kind, items in settings.items():
            if items:
                path = Path(tmp) / f"{kind}.json"
                path.write_text(json.dumps(items), encoding="utf-8")
                print(airflow(*COMMANDS[kind], str(path)).strip())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", type=Path, default=SETTINGS, help=f"default: {SETTINGS}")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved settings, secrets masked")
    args = parser.parse_args(argv)
    try:
        settings, used = resolve(load_settings(args.settings), os.environ)
    except SettingsError as error:
        print(f"ERROR: {error}", file=sys.stderr)
        return 2
    print(f"# {args.settings}; from the environment: {', '.join(used) or 'nothing'}")
    if args.dry_run:
        print(yaml.safe_dump(masked(settings), sort_keys=False).rstrip())
        return 0
    try:
        apply(settings)
    except Exception as error:  # e.g. a DB that was never migrated; Airflow's message says what
        print(f"ERROR: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
