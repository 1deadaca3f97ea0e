"""Run the local stack without Docker: MongoDB (SecantusDB), S3 (moto), MLflow and an SMTP sink.

    python -m scripts.local_stack up              # start what is not running, wait until ready, write stack.env
    python -m scripts.local_stack up --airflow [--topology local|celery] [--unpause retrain_vehicle_insurance,...]
                                                  # ... plus Airflow: API server + UI, scheduler, dag-processor,
                                                  # triggerer, on their own DB; celery: on PostgreSQL and Redis
                                                  # with two Celery workers (see scripts/local_stack/airflow.py)
    python -m scripts.local_stack up --airflow --models-dir DIR
                                                  # ... the group's DAGs and tasks read the model files in DIR
                                                  # (default include/models; another folder restarts the group)
    python -m scripts.local_stack status          # one line per process; exit 1 if any is dead or not started
    python -m scripts.local_stack down [--purge]  # stop everything; --purge also deletes the state dir
    python -m scripts.local_stack down --airflow  # stop only the Airflow group

Everything lives in one state dir (`<repo>/.local`, or `$LOCAL_STACK_DIR` for an independent second
stack): ports.json, pids/<name>.pid, logs/<name>.log, each service's data, and stack.env, which `source`
turns into the environment the DAGs, the library and the tests read.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from . import airflow, mlflow, mongo, s3, smtp
from .supervisor import load_ports, pick_ports, running, spawn, state_dir, stop, wait_ready, write_env_file

SERVICES = (s3.SERVICE, mongo.SERVICE, smtp.SERVICE, mlflow.SERVICE)  # readiness is awaited in this order
MARKER = ".local_stack"  # `down --purge` deletes no dir without it


def stack_env(state: Path, ports: dict[str, int]) -> dict[str, str]:
    env = airflow.env(state, ports)
    for service in SERVICES:
        env |= service.env(state, ports)
    return env


def write_stack_env(state: Path, ports: dict[str, int], env: dict[str, str]) -> Path:
    """stack.env, with the REST API's address while the Airflow group's API server runs."""
    api = running(state, "airflow-api-server") and "airflow" in ports
    return write_env_file(state, env | (airflow.client_env(state, ports) if api else {}))


def up(
    state: Path, with_airflow: bool, unpause: list[str], topology: str | None = None, models: Path | None = None
) -> int:
    # Python's Maildir creates tmp/new/cur only when the mail dir itself is missing: make all three.
    for sub in ("pids", "logs", "airflow", "mlflow", "mail/tmp", "mail/new", "mail/cur"):
        (state / sub).mkdir(parents=True, exist_ok=True)
    (state / MARKER).touch()
    ports = load_ports(state)
    missing = [service for service in SERVICES if not running(state, service.name)]
    stop(state, [service.name for service in missing], grace=3)  # leftovers of a dead one would hold its port
    pick_ports(state, ports, [service.name for service in missing])
    env = stack_env(state, ports)
    for service in missing:
        spawn(state, service.name, service.command(state, ports), os.environ | env | service.own_env, state)
    # Meanwhile: the `dags test` DB's migration, and the Airflow group's (its components boot meanwhile too).
    migration = airflow.migrate(state, state / "airflow", os.environ | env, "airflow-db")
    started = airflow.start(state, ports, env, topology, models) if with_airflow else None
    ready = True
    for service in SERVICES:
        port = ports[service.name]
        if not wait_ready(state, service.name, lambda: service.ready(port), service.timeout):  # noqa: B023
            ready = False
            break
        service.after_ready(state, port, service in missing)
        how = "started" if service in missing else "already running"
        print(f"{service.name}: {how}  {service.describe(state, port)}")
    if not (airflow.migrated(state, state / "airflow", migration, "airflow-db") and ready):  # never half done
        print("stack NOT ready; what did start keeps running (`down` stops it)")
        return 1
    if with_airflow and not (started is not None and airflow.await_ready(state, ports, started)):
        print("Airflow NOT ready; what did start keeps running (`down` stops it)")
        return 1
    if with_airflow:
        airflow.unpause(state, ports, unpause)
    print(f"stack ready; use it with: set -a && source {write_stack_env(state, ports, env)} && set +a")
    if with_airflow:
        print(
            f"Airflow UI: http://127.0.0.1:{ports['airflow']}  user {airflow.USER}  password {airflow.password(state)}"
        )
        print(f"Airflow CLI on it: set -a && source {state / 'airflow.env'} && set +a")
    elif airflow.stale(state, ports, env):
        print("airflow: the Airflow group still runs with the stack's old addresses: `up --airflow` restarts it")
    return 0


def status(state: Path) -> int:
    ports, healthy = load_ports(state), True
    group = any((state / "pids" / f"{name}.pid").exists() for name in airflow.ALL)
    rows = [(s.name, s.name, lambda s=s: s.describe(state, ports[s.name])) for s in SERVICES]
    if group:
        port_keys = {name: spec[2] for name, spec in airflow.COMPONENTS.items()}
        members = airflow.members(airflow.topology(state))
        rows += [(n, port_keys.get(n, n), lambda n=n: airflow.describe(state, n, ports)) for n in members]
    width = max(len(name) for name, _, _ in rows)
    for name, port_key, describe in rows:
        pid, port = running(state, name), ports.get(port_key) if port_key else None
        healthy &= pid is not None
        word = "alive" if pid else ("DEAD" if (state / "pids" / f"{name}.pid").exists() else "stopped")
        print(f"{name:<{width}} port {port or '-':<6} pid {pid or '-':<8} {word:<7} {describe() if pid else ''}")
    if not group:
        print("airflow: not started (opt-in: `up --airflow`, or make airflow)")
    return 0 if healthy else 1


def down(state: Path, purge: bool, only_airflow: bool) -> int:
    ports = load_ports(state)
    stopped = airflow.stop_group(state)  # first: its tasks use the services
    print("\n".join(f"{name}: stopped" for name in stopped) or "airflow: not running")
    if only_airflow:
        if (state / "stack.env").exists():  # without the address of the stopped API server
            write_stack_env(state, ports, stack_env(state, ports))
        return 0
    if running(state, "s3"):
        try:
            print(f"s3: saved {s3.save(state, ports['s3'])} objects to {state / 's3'}")
        except Exception as error:  # a failed copy must not keep the stack running
            print(f"s3: could not save the bucket contents ({error}); the previous copy is kept")
    stopped = stop(state, [service.name for service in SERVICES])
    for service in SERVICES:
        print(f"{service.name}: {'stopped' if service.name in stopped else 'not running'}")
    if purge and state.exists():
        if not (state / MARKER).exists():
            print(f"refusing to delete {state}: it has no {MARKER} marker, so it is not a stack dir")
            return 1
        shutil.rmtree(state)
        print(f"deleted {state}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    up_parser = commands.add_parser("up", help="start what is not running, wait until ready, write stack.env")
    up_parser.add_argument("--airflow", action="store_true", help="also run Airflow (UI, scheduler, ...)")
    up_parser.add_argument("--unpause", default="", metavar="DAG,DAG", help="with --airflow: unpause these DAGs")
    up_parser.add_argument(
        "--topology",
        choices=airflow.TOPOLOGIES,
        help="with --airflow: celery or local (default: the running one, else celery)",
    )
    up_parser.add_argument(
        "--models-dir",
        type=Path,
        help="with --airflow: the folder of model files (RETRAIN_MODELS_DIR) the group reads (default include/models)",
    )
    commands.add_parser("status", help="show each process; exit 1 if any is dead or not started")
    down_parser = commands.add_parser("down", help="stop everything (data is kept)")
    down_parser.add_argument("--purge", action="store_true", help="also delete the state dir")
    down_parser.add_argument("--airflow", action="store_true", help="stop only the Airflow group")
    args = parser.parse_args(argv)
    if args.command == "up":
        unpause = [dag_id for dag_id in args.unpause.split(",") if dag_id]
        if (unpause or args.topology or args.models_dir) and not args.airflow:
            parser.error("--unpause, --topology and --models-dir need --airflow")
        return up(state_dir(), args.airflow, unpause, args.topology, args.models_dir)
    if args.command == "status":
        return status(state_dir())
    if args.airflow and args.purge:
        parser.error("--purge deletes everything: use it without --airflow")
    return down(state_dir(), args.purge, args.airflow)


if __name__ == "__main__":
    sys.exit(main())
