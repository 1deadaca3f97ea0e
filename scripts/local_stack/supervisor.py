"""The shared supervisor: ports, pid files, liveness, spawning and stopping process groups, readiness."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent  # the project's venv: moto_server, mlflow, airflow
HOST = "127.0.0.1"
PROC = Path("/proc")  # Linux only, as the rest of the local stack


def state_dir() -> Path:
    return Path(os.environ.get("LOCAL_STACK_DIR") or REPO / ".local").resolve()


@dataclass(frozen=True)
class Service:
    name: str
    command: Callable[[Path, dict[str, int]], list[str]]
    ready: Callable[[int], bool]  # does it do its job yet? never raises
    describe: Callable[[Path, int], str]
    env: Callable[[Path, dict[str, int]], dict[str, str]]  # what it adds to stack.env
    timeout: float = 30.0
    own_env: dict[str, str] = field(default_factory=dict)  # only for its own process
    after_ready: Callable[[Path, int, bool], None] = lambda state, port, fresh: None  # fresh: started by this up


# --- ports -----------------------------------------------------------------------------------------


def load_ports(state: Path) -> dict[str, int]:
    path = state / "ports.json"
    return json.loads(path.read_text()) if path.exists() else {}


def save_ports(state: Path, ports: dict[str, int]) -> None:
    (state / "ports.json").write_text(json.dumps(ports, indent=2) + "\n")


def _bind(port: int) -> socket.socket | None:
    sock = socket.socket()
    # The option the servers set, so a port in TIME_WAIT after a restart counts as free, as for them.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError:
        sock.close()
        return None
    return sock


def pick_ports(state: Path, ports: dict[str, int], names: list[str]) -> None:
    """Keep each remembered port that is still free, else let the kernel choose one; save them."""
    held = {}
    try:  # every socket stays open until all are chosen, so two services cannot get the same port
        for name in names:
            held[name] = (ports.get(name) and _bind(ports[name])) or _bind(0)
        ports.update({name: sock.getsockname()[1] for name, sock in held.items()})
    finally:
        for sock in held.values():
            sock.close()
    save_ports(state, ports)


# --- processes: a pid file holds "<pid> <start time>", which tells our process from a recycled pid ---


def _stat(pid: int) -> list[str] | None:
    """The fields after the command name in /proc/<pid>/stat: state, ppid, pgrp, ... (None: no process)."""
    try:
        return (PROC / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _live(stat: list[str] | None) -> bool:
    return stat is not None and stat[0] not in "ZX"  # a zombie is dead (the container's init may reap late)


def pid_file(state: Path, name: str) -> Path:
    return state / "pids" / f"{name}.pid"


def _pid(state: Path, name: str, dead_leader_too: bool) -> int | None:
    try:
        pid_text, *started = pid_file(state, name).read_text().split()  # no start time: an older stack's file
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    stat = _stat(pid)
    return pid if (started in ([], [stat[19]]) if _live(stat) else dead_leader_too) else None


def running(state: Path, name: str) -> int | None:
    """The pid of the process `name` if the one we started is alive."""
    return _pid(state, name, dead_leader_too=False)


def ours(state: Path, name: str) -> int | None:
    """The recorded pid unless it now belongs to an unrelated program. A dead leader's group may still
    hold our processes (mlflow's uvicorn worker outlives it), and its pid is not reused while they live."""
    return _pid(state, name, dead_leader_too=True)


def spawn(state: Path, name: str, command: list[str], env: dict[str, str], cwd: Path, record: bool = True):
    """Start `name` in a session of its own (it outlives us, ignores the terminal's Ctrl-C, and forms a
    process group `stop` signals as a whole), its output appended to logs/<name>.log; record its pid."""
    log = state / "logs" / f"{name}.log"
    with log.open("ab") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(command)}\n".encode())
        out.flush()
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            env=env, cwd=cwd, start_new_session=True,
        )  # fmt: skip
    if record:
        pid_file(state, name).write_text(f"{process.pid} {_stat(process.pid)[19]}\n")
    return process


def _groups_under(roots: list[int]) -> dict[int, list[int]]:
    """Live process groups of `roots` and of all their descendants (an Airflow task runs in a group of
    its own), each with its live members."""
    stats = {int(p.name): s for p in PROC.iterdir() if p.name.isdigit() and _live(s := _stat(int(p.name)))}
    found, todo = set(roots), list(roots)
    while todo:
        parent = str(todo.pop())
        for child in [pid for pid, stat in stats.items() if stat[1] == parent and pid not in found]:
            found.add(child)
            todo.append(child)
    pgids = set(roots) | {int(stats[pid][2]) for pid in found if pid in stats}
    groups = {pgid: [pid for pid, stat in stats.items() if int(stat[2]) == pgid] for pgid in pgids}
    return {pgid: members for pgid, members in groups.items() if members}


def stop(state: Path, names: list[str], grace: float = 10.0, crash: bool = False) -> list[str]:
    """SIGTERM the groups of `names` and their children's, SIGKILL what is left after `grace` seconds (``crash``:
    SIGKILL at once, no shutdown code runs, as when a machine is lost); remove the pid files. Returns the names
    that were running."""
    pids = {name: pid for name in names if (pid := ours(state, name))}
    groups = _groups_under(list(pids.values()))
    was_running = [name for name, pid in pids.items() if pid in groups]
    for sig in (signal.SIGKILL,) if crash else (signal.SIGTERM, signal.SIGKILL):
        for pgid in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
        deadline = time.monotonic() + grace
        while (groups := _groups_under(list(groups))) and time.monotonic() < deadline:
            time.sleep(0.1)
    for name in names:
        pid_file(state, name).unlink(missing_ok=True)
    return was_running


# --- readiness -------------------------------------------------------------------------------------


def http_get(url: str) -> tuple[int, bytes] | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:  # an HTTP error status is still an answer
        return error.code, b""
    except (OSError, urllib.error.URLError):
        return None


def log_tail(state: Path, name: str, lines: int = 40) -> str:
    log = state / "logs" / f"{name}.log"
    if not log.exists():
        return f"(no log {log})"
    with log.open("rb") as file:
        file.seek(max(0, log.stat().st_size - 64_000))  # logs grow forever; read only their end
        return f"last {lines} lines of {log}:\n" + "\n".join(file.read().decode(errors="replace").splitlines()[-lines:])


def wait_ready(state: Path, name: str, ready: Callable[[], bool], timeout: float) -> bool:
    """Poll `ready` until it answers True; False (and the log's end printed) if `name` died or timed out."""
    deadline = time.monotonic() + timeout
    while not ready():
        problem = "exited before it was ready" if running(state, name) is None and not ready() else None
        if problem is None and time.monotonic() > deadline:
            problem = f"not ready within {timeout:.0f} s"
        if problem:
            print(f"{name}: {problem}; {log_tail(state, name)}")
            return False
        time.sleep(0.2)
    return True


def write_env_file(state: Path, env: dict[str, str], name: str = "stack.env") -> Path:
    path, tmp = state / name, state / f"{name}.tmp"
    lines = [f"# written by `python -m scripts.local_stack up`; use: set -a && source {path} && set +a"]
    tmp.write_text("\n".join([*lines, *(f"export {k}={shlex.quote(v)}" for k, v in env.items())]) + "\n")
    tmp.replace(path)  # a reader never sees half a file
    return path
