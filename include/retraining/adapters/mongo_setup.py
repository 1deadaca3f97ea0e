"""MongoDB set up for the pipeline, by an administrator: the indexes its queries need, a role that can do
exactly what the pipeline does, and optionally the user holding it. The pipeline never creates indexes,
collections, roles or users itself: it runs as that user (connection ``source.conn_id``).

    python -m include.retraining.adapters.mongo_setup --admin-conn-id mongo_admin \\
        [--user retrain_pipeline --password-env MONGO_PIPELINE_PASSWORD] [--model-file include/models/m.json]
        [--config-json '{...}']

The configuration is the pipeline's: the model file (default: the example model) over the shared
defaults, then ``AIRFLOW_VAR_RETRAIN_CONFIG`` from the environment, then ``--config-json``. Idempotent:
run it again after changing the source or monitoring collections, and once per model (grants only add;
a role serving several models holds the privileges of all of them).

The role's privileges name collections. MongoDB enforces them per collection; SecantusDB (the local
stack) per database, so there the source stays read-only only when ``monitoring.database`` is another
database than the source's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from include.retraining.adapters import mongo
from include.retraining.core.config import DEFAULT_CONFIG, PipelineConfig, load_config

ROLE = "retrain_pipeline"
ROLE_DB = "admin"  # roles and users live in admin, so one login reaches the source and monitoring databases
READ = ["find"]  # find, count (aggregate) and pymongoarrow's batches
READ_WRITE = ["find", "insert", "update"]  # drift checks and the watermark's compare-and-set (upsert)
WRITE_ONCE = ["find", "insert"]  # served predictions: written once per (document, version), never changed


def indexes(config: PipelineConfig) -> dict[tuple[str, str], list[str]]:
    """(database, collection) -> the fields to index, ascending."""
    return {
        (config.source.database, config.source.collection): [config.source.timestamp_field],  # the window scan
        (config.monitoring_database, config.monitoring.collection): ["checked_at", "run_id"],
    }


def privileges(config: PipelineConfig) -> list[dict[str, Any]]:
    """What the pipeline does, and nothing else: read the source, write its own monitoring collections and
    add (never change) served predictions."""
    source, monitoring, database = config.source, config.monitoring, config.monitoring_database
    return [
        {"resource": {"db": source.database, "collection": source.collection}, "actions": READ},
        # the new-data probe tells a missing collection from an empty one
        {"resource": {"db": source.database, "collection": ""}, "actions": ["listCollections"]},
        {"resource": {"db": database, "collection": monitoring.collection}, "actions": READ_WRITE},
        {"resource": {"db": database, "collection": monitoring.state_collection}, "actions": READ_WRITE},
        {"resource": {"db": database, "collection": config.scoring.collection}, "actions": WRITE_ONCE},
    ]


def ensure_indexes(config: PipelineConfig, admin: mongo.MongoClient) -> list[str]:
    created = []
    for (database, name), fields in indexes(config).items():
        for field in fields:
            created.append(f"{database}.{name}.{admin[database][name].create_index(field)}")
    return created


def ensure_role(config: PipelineConfig, admin: mongo.MongoClient, role: str = ROLE) -> None:
    db = admin[ROLE_DB]
    wanted = privileges(config)
    if db.command("rolesInfo", role).get("roles"):
        db.command("grantPrivilegesToRole", role, privileges=wanted)
    else:
        db.command("createRole", role, privileges=wanted, roles=[])


def ensure_user(admin: mongo.MongoClient, user: str, password: str, role: str = ROLE) -> None:
    """The user with ``role`` only; an existing one gets the password and exactly that role."""
    db = admin[ROLE_DB]
    roles = [{"role": role, "db": ROLE_DB}]
    if db.command("usersInfo", user).get("users"):
        db.command("updateUser", user, pwd=password, roles=roles)
    else:
        db.command("createUser", user, pwd=password, roles=roles)


def setup(
    config: PipelineConfig,
    admin: str | mongo.MongoClient,
    role: str = ROLE,
    user: str | None = None,
    password: str | None = None,
) -> list[str]:
    """Indexes, the role, and the user when one is named; returns the index names. ``admin``: an
    administrator's Airflow connection id, or a client already logged in as one."""
    admin = mongo.client(admin) if isinstance(admin, str) else admin
    created = ensure_indexes(config, admin)
    ensure_role(config, admin, role)
    if user:
        if not password:
            raise ValueError(f"a password is needed to create or update the MongoDB user {user!r}")
        ensure_user(admin, user, password, role)
    return created


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--admin-conn-id", default="mongo_admin", help="Airflow connection of an administrator")
    parser.add_argument("--role", default=ROLE)
    parser.add_argument("--user", help="create or update this pipeline user with the role")
    parser.add_argument("--password-env", default="MONGO_PIPELINE_PASSWORD", help="variable holding its password")
    parser.add_argument("--model-file", type=Path, default=DEFAULT_CONFIG, help="the model's config file")
    parser.add_argument("--config-json", default="{}", help="overrides over the model file and retrain_config")
    args = parser.parse_args(argv)
    deployment = json.loads(os.environ.get("AIRFLOW_VAR_RETRAIN_CONFIG") or "{}")
    config = load_config(deployment, json.loads(args.config_json), base=args.model_file)
    password = os.environ.get(args.password_env) if args.user else None
    if args.user and not password:
        parser.error(f"--user {args.user} needs its password in ${args.password_env}")
    created = setup(config, args.admin_conn_id, args.role, args.user, password)
    print(f"indexes: {', '.join(created)}")
    print(f"role {ROLE_DB}.{args.role}: {json.dumps(privileges(config))}")
    if args.user:
        print(f"user {ROLE_DB}.{args.user}: role {args.role} only")
    return 0


if __name__ == "__main__":
    sys.exit(main())
