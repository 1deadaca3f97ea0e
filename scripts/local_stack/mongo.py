"""MongoDB: SecantusDB, a MongoDB wire-protocol server from PyPI, data in <state>/mongo."""

from __future__ import annotations

import json
from pathlib import Path

from .supervisor import BIN, HOST, Service


def ready(port: int) -> bool:
    import pymongo  # lazily: `status` and `down` do not pay for it

    client = pymongo.MongoClient(f"mongodb://{HOST}:{port}/", serverSelectionTimeoutMS=500)
    try:
        return client.admin.command("ping").get("ok") == 1
    except pymongo.errors.PyMongoError:
        return False
    finally:
        client.close()


def env(state: Path, ports: dict[str, int]) -> dict[str, str]:
    conn = {"conn_type": "mongo", "host": HOST, "port": ports["mongo"], "schema": "insurance", "extra": {"srv": False}}
    return {
        "MONGO_URI": f"mongodb://{HOST}:{ports['mongo']}/",
        "MONGO_DB": "insurance",
        "MONGO_COLLECTION": "vehicle_insurance",
        "AIRFLOW_CONN_MONGO_DEFAULT": json.dumps(conn, separators=(",", ":")),
    }


SERVICE = Service(
    "mongo",
    command=lambda state, ports: [
        *(str(BIN / "python"), "-m", "secantus", "--host", HOST, "--port", str(ports["mongo"])),
        *("--storage-path", str(state / "mongo")),
    ],
    ready=ready,
    describe=lambda state, port: f"mongodb://{HOST}:{port}/",
    env=env,
)
