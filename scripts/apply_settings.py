"""Apply airflow_settings.yaml (connections, variables, pools) to an Airflow metadata database.

The one project command for it: the compose ``airflow-init`` job runs it after ``airflow db migrate``,
and it works the same against any metadata DB the current Airflow configuration points at
(``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``)::

    python scripts/apply_settings.py              # create or update, print what changed
    python scripts/apply_settings.py --dry-run    # print the resolved settings, secrets masked

Idempotent: an item that is missing is created, one that differs is updated in place (never
duplicated), one that already matches is left alone. After writing, the database is read back and
the command fails if anything does not match.

Overrides. The YAML keeps literal defaults (the docker compose service names and the
``.env.example`` credentials), because the Astro CLI reads the same file and interpolates nothing.
A deployment overrides them with Airflow's own environment variables, the ones Airflow itself
consults before the metadata DB at run time, so there is one name per setting and the database ends
up holding exactly what tasks will see:

* ``AIRFLOW_CONN_<CONN_ID>`` (JSON or URI form) replaces the whole connection ``<conn_id>``;
* ``AIRFLOW_VAR_<NAME>`` replaces the value of variable ``<name>``.

Pools have no such variable in Airflow: they come from the YAML only. Environment variables for ids
the YAML does not declare are ignored. Empty strings count as unset.

Implementation: Airflow's own CLI commands (``connections import --overwrite``, ``variables import
--action-on-existing-key overwrite``, ``pools import``) fed with temporary JSON files, run in this
process so Airflow is imported once; the before/after state is read through Airflow's models.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import re
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_SETTINGS = Path(__file__).resolve().parent.parent / "airflow_settings.yaml"
SETTINGS_FILE_ENV = "AIRFLOW_SETTINGS_FILE"
MASK = "***"
# Same idea as Airflow's secrets masker: a key containing one of these words holds a secret.
SENSITIVE_WORDS = (
    "access_token",
    "api_key",
    "apikey",
    "authorization",
    "passphrase",
    "passwd",
    "password",
    "private_key",
    "secret",
    "token",
    "keyfile_dict",
    "service_account",
)
URI_CREDENTIALS = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@\s]+:)[^@\s]+@", re.IGNORECASE)

CONNECTION_KEYS = {
    "conn_id",
    "conn_type",
    "conn_host",
    "conn_schema",
    "conn_login",
    "conn_password",
    "conn_port",
    "conn_uri",
    "conn_extra",
}
POOL_KEYS = {"pool_name", "pool_slot", "pool_description"}
VARIABLE_KEYS = {"variable_name", "variable_value"}
CONNECTION_FIELDS = ("conn_type", "host", "schema", "login", "password", "port", "extra")
JSON_CONNECTION_KEYS = {"conn_type", "host", "schema", "login", "password", "port", "extra", "description"}


class SettingsError(ValueError):
    """airflow_settings.yaml or an override is malformed."""


@dataclass(frozen=True)
class ConnectionSpec:
    conn_id: str
    conn_type: str
    host: str | None = None
    schema: str | None = None
    login: str | None = None
    password: str | None = None
    port: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    source: str = "yaml"

    def values(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in CONNECTION_FIELDS}


@dataclass(frozen=True)
class VariableSpec:
    key: str
    value: str
    source: str = "yaml"


@dataclass(frozen=True)
class PoolSpec:
    name: str
    slots: int
    description: str = ""
    include_deferred: bool = False
    source: str = "yaml"


@dataclass(frozen=True)
class Settings:
    connections: tuple[ConnectionSpec, ...] = ()
    variables: tuple[VariableSpec, ...] = ()
    pools: tuple[PoolSpec, ...] = ()


# --------------------------------------------------------------------------------------------------
# Reading and resolving
# --------------------------------------------------------------------------------------------------


def _blank_to_none(value: Any) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return value


def _as_port(value: Any, where: str) -> int | None:
    value = _blank_to_none(value)
    if value is None:
        return None
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise SettingsError(f"{where}: port must be an integer, got {value!r}") from None
    if not 0 < port < 65536:
        raise SettingsError(f"{where}: port {port} is out of range")
    return port


def _as_extra(value: Any, where: str) -> dict[str, Any]:
    value = _blank_to_none(value)
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise SettingsError(f"{where}: extra is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise SettingsError(f"{where}: extra must be a mapping, got {type(value).__name__}")
    return dict(value)


def _as_text(value: Any) -> str | None:
    value = _blank_to_none(value)
    return None if value is None else str(value)


def _connection_from_uri(conn_id: str, uri: str, source: str) -> ConnectionSpec:
    from airflow.models.connection import Connection  # Airflow's URI grammar, quirks included

    conn = Connection(conn_id=conn_id, uri=uri)
    return ConnectionSpec(
        conn_id=conn_id,
        conn_type=conn.conn_type,
        host=_as_text(conn.host),
        schema=_as_text(conn.schema),
        login=_as_text(conn.login),
        password=_as_text(conn.password),
        port=_as_port(conn.port, source),
        extra=_as_extra(conn.extra, source),
        source=source,
    )


def _check_keys(entry: Any, allowed: set[str], where: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise SettingsError(f"{where}: expected a mapping, got {type(entry).__name__}")
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise SettingsError(f"{where}: unknown keys {unknown}; allowed: {sorted(allowed)}")
    return entry


def _yaml_connection(entry: Any, index: int) -> ConnectionSpec:
    entry = _check_keys(entry, CONNECTION_KEYS, f"connections[{index}]")
    conn_id = _as_text(entry.get("conn_id"))
    if not conn_id:
        raise SettingsError(f"connections[{index}]: conn_id is required")
    where = f"connection {conn_id}"
    if _blank_to_none(entry.get("conn_uri")) and not _blank_to_none(entry.get("conn_type")):
        return _connection_from_uri(conn_id, str(entry["conn_uri"]), "yaml")
    conn_type = _as_text(entry.get("conn_type"))
    if not conn_type:
        raise SettingsError(f"{where}: conn_type (or conn_uri) is required")
    return ConnectionSpec(
        conn_id=conn_id,
        conn_type=conn_type,
        host=_as_text(entry.get("conn_host")),
        schema=_as_text(entry.get("conn_schema")),
        login=_as_text(entry.get("conn_login")),
        password=_as_text(entry.get("conn_password")),
        port=_as_port(entry.get("conn_port"), where),
        extra=_as_extra(entry.get("conn_extra"), where),
    )


def _variable_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def _yaml_variable(entry: Any, index: int) -> VariableSpec:
    entry = _check_keys(entry, VARIABLE_KEYS, f"variables[{index}]")
    key = _as_text(entry.get("variable_name"))
    if not key:
        raise SettingsError(f"variables[{index}]: variable_name is required")
    return VariableSpec(key=key, value=_variable_text(entry.get("variable_value")))


def _yaml_pool(entry: Any, index: int) -> PoolSpec:
    entry = _check_keys(entry, POOL_KEYS, f"pools[{index}]")
    name = _as_text(entry.get("pool_name"))
    if not name:
        raise SettingsError(f"pools[{index}]: pool_name is required")
    slots = entry.get("pool_slot")
    if isinstance(slots, bool) or not isinstance(slots, int) or slots < -1:
        raise SettingsError(f"pool {name}: pool_slot must be an integer >= 0 (or -1), got {slots!r}")
    return PoolSpec(name=name, slots=slots, description=_as_text(entry.get("pool_description")) or "")


def _unique(items: tuple[Any, ...], attr: str, kind: str) -> tuple[Any, ...]:
    seen: set[str] = set()
    for item in items:
        name = getattr(item, attr)
        if name in seen:
            raise SettingsError(f"{kind} {name!r} is declared twice")
        seen.add(name)
    return items


def load_settings(path: Path) -> Settings:
    """Parse an airflow_settings.yaml file (Astro CLI format) into validated specs."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(document, dict) or not isinstance(document.get("airflow") or {}, dict):
        raise SettingsError(f"{path}: expected a top-level 'airflow:' mapping")
    section = document.get("airflow") or {}
    lists = {}
    for kind in ("connections", "variables", "pools"):
        entries = section.get(kind) or []
        if not isinstance(entries, list):
            raise SettingsError(f"{path}: airflow.{kind} must be a list")
        lists[kind] = entries
    return Settings(
        connections=_unique(
            tuple(_yaml_connection(e, i) for i, e in enumerate(lists["connections"])), "conn_id", "connection"
        ),
        variables=_unique(tuple(_yaml_variable(e, i) for i, e in enumerate(lists["variables"])), "key", "variable"),
        pools=_unique(tuple(_yaml_pool(e, i) for i, e in enumerate(lists["pools"])), "name", "pool"),
    )


def connection_env_name(conn_id: str) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def variable_env_name(key: str) -> str:
    return f"AIRFLOW_VAR_{key.upper()}"


def parse_env_connection(conn_id: str, raw: str, source: str) -> ConnectionSpec:
    """Read an AIRFLOW_CONN_* value the way Airflow does: a JSON object, otherwise a URI."""
    text = raw.strip()
    if not text.startswith("{"):
        return _connection_from_uri(conn_id, text, source)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(f"{source}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{source}: expected a JSON object")
    unknown = sorted(set(data) - JSON_CONNECTION_KEYS)
    if unknown:
        raise SettingsError(f"{source}: unknown keys {unknown}; allowed: {sorted(JSON_CONNECTION_KEYS)}")
    conn_type = _as_text(data.get("conn_type"))
    if not conn_type:
        raise SettingsError(f"{source}: conn_type is required")
    return ConnectionSpec(
        conn_id=conn_id,
        conn_type=conn_type,
        host=_as_text(data.get("host")),
        schema=_as_text(data.get("schema")),
        login=_as_text(data.get("login")),
        password=_as_text(data.get("password")),
        port=_as_port(data.get("port"), source),
        extra=_as_extra(data.get("extra"), source),
        source=source,
    )


def resolve(settings: Settings, environ: Mapping[str, str]) -> Settings:
    """Apply AIRFLOW_CONN_* / AIRFLOW_VAR_* overrides for the declared ids."""
    connections = []
    for conn in settings.connections:
        name = connection_env_name(conn.conn_id)
        raw = environ.get(name, "")
        connections.append(parse_env_connection(conn.conn_id, raw, name) if raw.strip() else conn)
    variables = []
    for var in settings.variables:
        name = variable_env_name(var.key)
        raw = environ.get(name)
        variables.append(VariableSpec(var.key, raw, source=name) if raw not in (None, "") else var)
    return Settings(tuple(connections), tuple(variables), settings.pools)


def override_warnings(declared: Settings, resolved: Settings) -> list[str]:
    """Overrides that are probably mistakes: a different conn_type (e.g. a `mongodb://` URI, whose
    scheme Airflow takes as conn_type `mongodb`, where the mongo provider registers `mongo`)."""
    warnings = []
    for before, after in zip(declared.connections, resolved.connections, strict=True):
        if after.source != before.source and after.conn_type != before.conn_type:
            warnings.append(
                f"{after.source} sets conn_type {after.conn_type!r} but {before.conn_id} is declared "
                f"as {before.conn_type!r}"
            )
    return warnings


# --------------------------------------------------------------------------------------------------
# Masking and printing
# --------------------------------------------------------------------------------------------------


def is_sensitive(key: str) -> bool:
    lowered = key.lower()
    return any(word in lowered for word in SENSITIVE_WORDS)


def mask_text(text: str) -> str:
    return URI_CREDENTIALS.sub(lambda m: f"{m.group('head')}{MASK}@", text)


def _mask_extra(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: MASK if is_sensitive(k) and v not in (None, "") else _mask_extra(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_extra(v) for v in value]
    if isinstance(value, str):
        return mask_text(value)
    return value


def masked(settings: Settings) -> dict[str, Any]:
    """The resolved settings as plain data, with every secret replaced by ***."""
    connections = {}
    for conn in settings.connections:
        values = conn.values()
        if values["password"]:
            values["password"] = MASK
        values["extra"] = _mask_extra(values["extra"])
        for name in ("host", "schema", "login"):
            if values[name]:
                values[name] = mask_text(values[name])
        connections[conn.conn_id] = {"source": conn.source, **values}
    variables = {
        var.key: {
            "source": var.source,
            "value": MASK if is_sensitive(var.key) and var.value else mask_text(var.value),
        }
        for var in settings.variables
    }
    pools = {pool.name: {k: v for k, v in asdict(pool).items() if k != "name"} for pool in settings.pools}
    return {"connections": connections, "variables": variables, "pools": pools}


def print_dry_run(settings: Settings, path: Path) -> None:
    print(f"# {path}, resolved with environment overrides (dry run: nothing written)")
    print(yaml.safe_dump(masked(settings), sort_keys=False, default_flow_style=False).rstrip())


# --------------------------------------------------------------------------------------------------
# Applying
# --------------------------------------------------------------------------------------------------


def read_current(settings: Settings) -> dict[str, dict[str, Any]]:
    """Read the declared ids from the metadata DB (not from env or other secrets backends)."""
    from airflow.models import Connection, Pool, Variable
    from airflow.utils.session import create_session
    from sqlalchemy import select

    conn_ids = [c.conn_id for c in settings.connections]
    keys = [v.key for v in settings.variables]
    names = [p.name for p in settings.pools]
    current: dict[str, dict[str, Any]] = {"connections": {}, "variables": {}, "pools": {}}
    with create_session() as session:
        for conn in session.scalars(select(Connection).where(Connection.conn_id.in_(conn_ids))):
            current["connections"][conn.conn_id] = {
                "conn_type": conn.conn_type,
                "host": _as_text(conn.host),
                "schema": _as_text(conn.schema),
                "login": _as_text(conn.login),
                "password": _as_text(conn.password),
                "port": conn.port,
                "extra": _as_extra(conn.extra, conn.conn_id),
            }
        for var in session.scalars(select(Variable).where(Variable.key.in_(keys))):
            current["variables"][var.key] = {"value": var.val if var.val is not None else ""}
        for pool in session.scalars(select(Pool).where(Pool.pool.in_(names))):
            current["pools"][pool.pool] = {
                "slots": pool.slots,
                "description": pool.description or "",
                "include_deferred": bool(pool.include_deferred),
            }
    return current


def desired_state(settings: Settings) -> dict[str, dict[str, Any]]:
    return {
        "connections": {c.conn_id: c.values() for c in settings.connections},
        "variables": {v.key: {"value": v.value} for v in settings.variables},
        "pools": {
            p.name: {"slots": p.slots, "description": p.description, "include_deferred": p.include_deferred}
            for p in settings.pools
        },
    }


@dataclass(frozen=True)
class Change:
    kind: str  # "connection" | "variable" | "pool"
    name: str
    action: str  # "created" | "updated" | "unchanged"
    fields: tuple[str, ...] = ()
    source: str = "yaml"


def plan(settings: Settings, current: dict[str, dict[str, Any]]) -> list[Change]:
    desired = desired_state(settings)
    sources = {
        "connections": {c.conn_id: c.source for c in settings.connections},
        "variables": {v.key: v.source for v in settings.variables},
        "pools": {p.name: p.source for p in settings.pools},
    }
    changes = []
    for group, kind in (("connections", "connection"), ("variables", "variable"), ("pools", "pool")):
        for name, want in desired[group].items():
            have = current[group].get(name)
            if have is None:
                action, fields = "created", ()
            else:
                fields = tuple(k for k in want if want[k] != have.get(k))
                action = "updated" if fields else "unchanged"
            changes.append(Change(kind, name, action, fields, sources[group][name]))
    return changes


def _airflow_cli(argv: list[str], verbose: bool) -> None:
    """Run one `airflow ...` command in this process; its chatter is shown only with --verbose."""
    from airflow.cli import cli_parser

    args = cli_parser.get_parser().parse_args(argv)
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            args.func(args)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            sys.stdout.write(buffer.getvalue())
            raise RuntimeError(f"`airflow {' '.join(argv[:2])}` failed: {exc.code}") from None
    if verbose:
        sys.stdout.write(buffer.getvalue())


def write_changes(settings: Settings, changes: list[Change], verbose: bool) -> None:
    todo = {(c.kind, c.name) for c in changes if c.action != "unchanged"}
    connections = {
        c.conn_id: {**c.values(), "extra": json.dumps(c.extra) if c.extra else None}
        for c in settings.connections
        if ("connection", c.conn_id) in todo
    }
    variables = {v.key: v.value for v in settings.variables if ("variable", v.key) in todo}
    pools = {
        p.name: {"slots": p.slots, "description": p.description, "include_deferred": p.include_deferred}
        for p in settings.pools
        if ("pool", p.name) in todo
    }
    # Temporary files hold secrets: private directory, removed on exit.
    with tempfile.TemporaryDirectory(prefix="apply-settings-") as tmp:
        os.chmod(tmp, 0o700)
        for payload, filename, argv in (
            (connections, "connections.json", ["connections", "import", "--overwrite"]),
            (variables, "variables.json", ["variables", "import", "--action-on-existing-key", "overwrite"]),
            (pools, "pools.json", ["pools", "import"]),
        ):
            if not payload:
                continue
            path = Path(tmp) / filename
            path.write_text(json.dumps(payload), encoding="utf-8")
            _airflow_cli([*argv, str(path)], verbose)


def describe(change: Change, settings: Settings) -> str:
    detail = ""
    if change.action == "updated":
        detail = f"  changed: {', '.join(change.fields)}"
    if change.kind == "pool":
        pool = next(p for p in settings.pools if p.name == change.name)
        detail += f"  ({pool.slots} slot{'s' if pool.slots != 1 else ''})"
    if change.source != "yaml":
        detail += f"  from {change.source}"
    return f"  {change.kind:<10} {change.name:<24} {change.action:<9}{detail}".rstrip()


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def apply(settings: Settings, path: Path, verbose: bool = False) -> int:
    from airflow.configuration import conf

    # Noise for this command: reading short values back (retrain_config "{}") makes the masker warn, and
    # writing a variable that AIRFLOW_VAR_* also defines warns of the conflict we are resolving on purpose.
    for name in ("airflow._shared.secrets_masker.secrets_masker", "airflow.models.variable"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from sqlalchemy.exc import SQLAlchemyError

    database = mask_text(conf.get("database", "sql_alchemy_conn"))
    print(f"Applying {path} to {database}")
    try:
        current = read_current(settings)
    except SQLAlchemyError as exc:
        first_line = str(exc).splitlines()[0]
        raise RuntimeError(f"cannot read the metadata DB ({first_line}); has `airflow db migrate` run?") from None
    changes = plan(settings, current)
    write_changes(settings, changes, verbose)
    for change in changes:
        print(describe(change, settings))
    remaining = [c for c in plan(settings, read_current(settings)) if c.action != "unchanged"]
    if remaining:
        for change in remaining:
            print(f"ERROR: {change.kind} {change.name} does not match after applying: {change.action}")
        return 1
    counts = {action: sum(c.action == action for c in changes) for action in ("created", "updated", "unchanged")}
    sizes = (
        _count(len(settings.connections), "connection"),
        _count(len(settings.variables), "variable"),
        _count(len(settings.pools), "pool"),
    )
    print(f"Done: {', '.join(sizes)} ({', '.join(f'{n} {a}' for a, n in counts.items())}).")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Apply airflow_settings.yaml (Astro CLI format) to the Airflow metadata DB.",
        epilog=(
            "Overrides: AIRFLOW_CONN_<CONN_ID> (JSON or URI) replaces a declared connection, "
            "AIRFLOW_VAR_<NAME> a declared variable's value; the same variables Airflow reads at run time."
        ),
    )
    parser.add_argument(
        "--settings",
        type=Path,
        default=Path(os.environ.get(SETTINGS_FILE_ENV) or DEFAULT_SETTINGS),
        help=f"settings file (default: ${SETTINGS_FILE_ENV} or {DEFAULT_SETTINGS.name} at the project root)",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="print the resolved settings with secrets masked; write nothing"
    )
    parser.add_argument("--verbose", "-v", action="store_true", help="also show the Airflow CLI output")
    args = parser.parse_args(argv)
    try:
        declared = load_settings(args.settings)
        settings = resolve(declared, os.environ)
    except (OSError, SettingsError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    for warning in override_warnings(declared, settings):
        print(f"WARNING: {warning}", file=sys.stderr)
    if args.dry_run:
        print_dry_run(settings, args.settings)
        return 0
    try:
        return apply(settings, args.settings, verbose=args.verbose)
    except RuntimeError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
