"""MongoDB: SecantusDB, a MongoDB wire-protocol server from PyPI, data in <state>/mongo, with authentication
(SCRAM-SHA-256, `--auth`) as in production: an administrator and the pipeline's least-privilege user.

SecantusDB creates no first user under `--auth`, so `python -m scripts.local_stack.mongo` (the command the
supervisor runs) starts it once without `--auth` to create both users, stops it, then execs it with
`--auth`. Their passwords are generated into <state>/mongo-users.json (mode 0600). After every fresh start
the pipeline's role gets the privileges of the default configuration and its indexes
(include/retraining/adapters/mongo_setup.py, the setup step an administrator runs in production).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote_plus

from .supervisor import BIN, HOST, Service

DATABASE, COLLECTION = "insurance", "vehicle_insurance"
ADMIN, PIPELINE = "admin", "retrain_pipeline"


def ready(port: int, with_auth: bool = True) -> bool:
    """It answers, and (``with_auth``) refuses a client without login: not the first start's provisioning."""
    import pymongo  # lazily: `status` and `down` do not pay for it

    client = pymongo.MongoClient(f"mongodb://{HOST}:{port}/", serverSelectionTimeoutMS=500)
    try:
        if client.admin.command("ping").get("ok") != 1:  # ping needs no login
            return False
        if not with_auth:
            return True
        client.list_database_names()
        return False  # no login needed: still the provisioning server
    except pymongo.errors.OperationFailure as error:
        return error.code == 13  # Unauthorized: --auth is on
    except pymongo.errors.PyMongoError:
        return False
    finally:
        client.close()


def users(state: Path) -> dict:
    """{"admin": password, "retrain_pipeline": password, "provisioned": bool}, generated on first use."""
    path = state / "mongo-users.json"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(json.dumps({ADMIN: secrets.token_urlsafe(18), PIPELINE: secrets.token_urlsafe(18)}))
    return json.loads(path.read_text())


def connection(state: Path, port: int, user: str) -> dict:
    return {
        "conn_type": "mongo", "host": HOST, "port": port, "schema": DATABASE,
        "login": user, "password": users(state)[user], "extra": {"srv": False, "authSource": "admin"},
    }  # fmt: skip


def admin_uri(state: Path, port: int) -> str:
    return user_uri(state, port, ADMIN)


def user_uri(state: Path, port: int, user: str) -> str:
    """A URI that works as it is: the user's login, authenticated against the admin database."""
    return f"mongodb://{user}:{quote_plus(users(state)[user])}@{HOST}:{port}/{DATABASE}?authSource=admin"


def env(state: Path, ports: dict[str, int]) -> dict[str, str]:
    def dump(user: str) -> str:
        return json.dumps(connection(state, ports["mongo"], user), separators=(",", ":"))

    return {
        # the pipeline's user: reads the sources, writes its monitoring collections (what the DAGs run as)
        "MONGO_URI": user_uri(state, ports["mongo"], PIPELINE),
        "MONGO_ADMIN_URI": user_uri(state, ports["mongo"], ADMIN),  # setup, seeding, loading CSVs
        "MONGO_DB": DATABASE,
        "MONGO_COLLECTION": COLLECTION,
        "AIRFLOW_CONN_MONGO_DEFAULT": dump(PIPELINE),  # what the pipeline runs as
        "AIRFLOW_CONN_MONGO_ADMIN": dump(ADMIN),  # setup and seeding only; the Airflow group does not get it
        "SEED_MONGO_CONN_ID": "mongo_admin",  # include.demo.seed writes the source collection
    }


def provision(state: Path, port: int) -> None:
    """After every fresh start: the pipeline role's privileges and the indexes of every model config
    (a broken one is left to its DAGs' import error)."""
    import pymongo

    from include.retraining.adapters.mongo_setup import setup
    from include.retraining.airflow.models import models

    admin = pymongo.MongoClient(admin_uri(state, port), serverSelectionTimeoutMS=5000)
    try:
        for model in models():
            setup(model.config, admin)
    finally:
        admin.close()


def _create_users(port: int, passwords: dict) -> None:
    import pymongo

    client = pymongo.MongoClient(f"mongodb://{HOST}:{port}/", serverSelectionTimeoutMS=5000)
    try:
        db = client.admin
        if not db.command("rolesInfo", PIPELINE).get("roles"):
            db.command("createRole", PIPELINE, privileges=[], roles=[])  # provision() grants its privileges
        for user, role in ((ADMIN, "root"), (PIPELINE, PIPELINE)):
            roles = [{"role": role, "db": "admin"}]
            exists = db.command("usersInfo", user).get("users")
            db.command("updateUser" if exists else "createUser", user, pwd=passwords[user], roles=roles)
    finally:
        client.close()


def launch(port: int, state: Path) -> None:
    """Create the users on the first start (without --auth), then become the server with --auth."""
    base = [sys.executable, "-m", "secantus", "--host", HOST, "--port", str(port)]
    base += ["--storage-path", str(state / "mongo")]
    passwords = users(state)
    if not passwords.get("provisioned"):
        server = subprocess.Popen(base)
        try:
            deadline = time.monotonic() + 60
            while not ready(port, with_auth=False):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("secantus did not start for provisioning its users")
                time.sleep(0.2)
            _create_users(port, passwords)
        finally:
            server.terminate()
            server.wait(timeout=30)
        (state / "mongo-users.json").write_text(json.dumps(passwords | {"provisioned": True}))
        print(f"mongo: users {ADMIN} (root) and {PIPELINE} (role {PIPELINE}) created", flush=True)
    os.execv(sys.executable, [*base, "--auth"])


SERVICE = Service(
    "mongo",
    command=lambda state, ports: [
        *(str(BIN / "python"), "-m", "scripts.local_stack.mongo", str(ports["mongo"]), str(state)),
    ],
    ready=ready,
    describe=lambda state, port: f"mongodb://{HOST}:{port}/  (--auth: users {ADMIN}, {PIPELINE})",
    env=env,
    timeout=60.0,  # the first start provisions the users first
    after_ready=lambda state, port, fresh: provision(state, port) if fresh else None,
)


if __name__ == "__main__":
    launch(int(sys.argv[1]), Path(sys.argv[2]))
