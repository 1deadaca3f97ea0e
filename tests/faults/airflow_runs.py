"""DAG runs through Airflow's own retry path, with faults injected mid-call (tests/faults/injection.py).

Why a scheduler and not `airflow dags test`: plain `dags test` runs every task inside its own process
(``run_task_in_process``), so a task killed there takes the whole run with it (it does retry a task that
raised, in-process, after the retry delay). With ``--use-executor`` each task runs in a process the Task
SDK supervisor forks, but a task SIGKILLed there leaves its TaskInstance ``running``: the supervisor
only reports terminal states, and the scheduler's answer (a failure callback for the DAG processor)
crashes `dags test`, which has no callback sink ("Callback sink is not ready", Airflow 3.3.2). So the
harness runs the production topology of `make airflow` on a metadata DB of its own
(<state>/airflow-faults): API server, scheduler with the LocalExecutor, DAG processor and triggerer. A
killed task is then what it is on a worker: the supervisor sees it die, the scheduler hands the failure
to the DAG processor, the TaskInstance goes to ``up_for_retry`` and runs again.

The group starts once per session and stops at its end. Only the scheduler (whose executor forks the
tasks) and the DAG processor get the fault hook on their PYTHONPATH; the retrain DAG's daily tick is set
three hours ahead, so no scheduled run joins the test's own.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from scripts.airflow_api import AirflowClient
from scripts.local_stack.airflow import SIMPLE_AUTH_MANAGER, migrate, migrated
from scripts.local_stack.supervisor import state_dir
from tests.faults.injection import FAULTS_ENV, fault_id

ROOT = Path(__file__).parents[2]
BIN = Path(sys.executable).parent
INJECT = Path(__file__).parent / "inject"  # its sitecustomize installs the fault points
USER = "admin"
COMPONENTS = {
    "api-server": lambda port: ["api-server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
    "scheduler": lambda port: ["scheduler"],
    "dag-processor": lambda port: ["dag-processor"],
    "triggerer": lambda port: ["triggerer"],
}
HOOKED = ("scheduler", "dag-processor")  # the processes that run or parse the tasks


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class FaultAirflow:
    """The Airflow group of the fault runs; ``run`` triggers one DAG run and waits for its end."""

    def __init__(self, state: Path | None = None):
        self.state = state or state_dir()
        self.home = self.state / "airflow-faults"
        self.home.mkdir(parents=True, exist_ok=True)
        self.plan_file = self.home / "faults.json"
        self.port = free_port()
        self.processes: list[subprocess.Popen] = []
        self.password = os.urandom(12).hex()
        (self.home / "passwords.json").write_text(json.dumps({USER: self.password}))
        secret = os.urandom(24).hex()
        tick = datetime.now(UTC) + timedelta(hours=3)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_VAR_RETRAIN", "RETRAIN_"))} | {
            "AIRFLOW_HOME": str(self.home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "2",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
            "AIRFLOW__API__PORT": str(self.port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.port}",
            "AIRFLOW__API_AUTH__JWT_SECRET": secret,
            "AIRFLOW__API__SECRET_KEY": secret,
            "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
            "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            "RETRAIN_SCHEDULE": f"{tick.minute} {tick.hour} * * *",
            "RETRAIN_TASK_RETRIES": "3",
            "DRIFT_MONITOR_POKE_SECONDS": "1",
        }
        self.client = AirflowClient(f"http://127.0.0.1:{self.port}", USER, self.password)

    def start(self) -> None:
        migration = migrate(self.state, self.home, self.env, "airflow-faults-db")
        if not migrated(self.state, self.home, migration, "airflow-faults-db"):
            raise RuntimeError(f"`airflow db migrate` of {self.home} failed (see {self.state / 'logs'})")
        settings = [sys.executable, str(ROOT / "scripts" / "apply_settings.py")]  # the training pool
        subprocess.run(settings, env=self.env, cwd=ROOT, capture_output=True, check=True, timeout=300)
        hooked = self.env | {"PYTHONPATH": os.pathsep.join([str(INJECT), self.env.get("PYTHONPATH", str(ROOT))])}
        for name, args in COMPONENTS.items():
            env = hooked | {FAULTS_ENV: str(self.plan_file)} if name in HOOKED else self.env
            log = (self.home / f"{name}.log").open("w")
            command = [str(BIN / "airflow"), *args(self.port)]
            self.processes.append(
                subprocess.Popen(
                    command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
                )
            )
        self._wait(lambda: self._health().get("scheduler", {}).get("status") == "healthy", "the scheduler")
        self.client.delete_variable("alert_recipients")  # the settings' list would override each test's own

    def _health(self) -> dict:
        try:
            return self.client.health()
        except Exception:  # not up yet
            return {}

    def _wait(self, ready, what: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [p.args[1] for p in self.processes if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(f"== {n}\n{(self.home / f'{n}.log').read_text()[-2000:]}" for n in COMPONENTS)
                raise RuntimeError(f"{what} did not come up (dead: {dead})\n{logs}")
            time.sleep(1)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)  # the group this harness started for it
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def run(self, dag_id: str, overrides: dict, plan: Plan, *, logical_date: str | None = None,
            conf: dict | None = None, timeout: float = 900) -> DagRun:  # fmt: skip
        """One run of ``dag_id`` for the config ``overrides`` (the Variable retrain_config) with the faults
        of ``plan``; the service outages it names are run by a watcher thread meanwhile. A DAG with a
        schedule is triggered at ``logical_date``; the @continuous monitor starts its own run when unpaused.
        Any other run of the DAG is failed while queued (unpausing a scheduled DAG adds the run of its
        latest tick: ours is dated before it, so it is the one that starts). Paused again at the end."""
        self._wait(lambda: self.client.get_dag(dag_id) is not None, f"DAG {dag_id} in the metadata DB")
        self.client.set_variable("retrain_config", json.dumps(overrides))
        self.plan_file.write_text(json.dumps({"dir": str(plan.folder), "faults": plan.faults}))
        self._fail_others(dag_id, None)
        known = {run["dag_run_id"] for run in self.client.list_runs(dag_id)}
        run_id = None
        if logical_date:
            before = (datetime.fromisoformat(logical_date) - timedelta(days=2)).isoformat()
            body = {"logical_date": logical_date, "run_after": before, "conf": conf or {}}
            run_id = self.client.request("POST", f"/api/v2/dags/{dag_id}/dagRuns", json=body)["dag_run_id"]
        try:
            with plan.outages():
                self.client.unpause(dag_id)
                run_id = run_id or self._new_run(dag_id, known)
                state = self._finished(dag_id, run_id, timeout)
        finally:
            self.client.pause(dag_id)
            self.plan_file.unlink(missing_ok=True)
        return DagRun(run_id, state, self.retried(dag_id, run_id), self)

    def _fail_others(self, dag_id: str, run_id: str | None) -> None:
        for other in self.client.list_runs(dag_id, states=("queued", "running")):
            if other["dag_run_id"] != run_id:
                self.client.set_run_state(dag_id, other["dag_run_id"], "failed", note="not this test's run")

    def _finished(self, dag_id: str, run_id: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        path = f"/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"
        while (state := self.client.request("GET", path)["state"]) not in ("success", "failed"):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{dag_id} {run_id} still {state} after {timeout:.0f} s\n{self.logs(run_id)}")
            self._fail_others(dag_id, run_id)
            time.sleep(2)
        return state

    def _new_run(self, dag_id: str, known: set[str]) -> str:
        def new() -> list[str]:
            return [run["dag_run_id"] for run in self.client.list_runs(dag_id) if run["dag_run_id"] not in known]

        self._wait(new, f"a run of {dag_id}")
        return new()[-1]

    def retried(self, dag_id: str, run_id: str) -> dict[str, int]:
        """Task -> how many of its tries failed and were retried (Airflow's task instance history)."""
        retried = {}
        for ti in self.client.task_instances(dag_id, run_id):
            if ti["try_number"] > 1:
                retried[ti["task_id"]] = ti["try_number"] - 1
        return retried

    def logs(self, run_id: str) -> str:
        """The end of each task log of the run (one per try)."""
        found = sorted((self.home / "logs").glob(f"dag_id=*/run_id={run_id}/task_id=*/*.log"))
        return "\n".join(
            f"== {path.parent.name}/{path.name}\n{path.read_text(errors='replace')[-1500:]}" for path in found
        )


@dataclass
class DagRun:
    run_id: str
    state: str
    retried: dict[str, int]  # task -> its tries that failed and were retried
    airflow: FaultAirflow = field(repr=False)

    def explain(self) -> str:
        return f"run {self.run_id}: {self.state}; retried {self.retried}\n{self.airflow.logs(self.run_id)}"


@dataclass
class Plan:
    """The faults of one run: ``{"task", "point", "action": "kill"}`` or ``{..., "action": "outage",
    "service": <stack service>}``; ``stack`` stops and starts the services."""

    folder: Path
    faults: list[dict]
    stack: Any = None  # tests/faults/conftest.Stack
    errors: dict[str, str] = field(default_factory=dict)  # outage fault id -> how its call failed

    def missed(self) -> list[str]:
        """The planned faults that did not strike (empty when all did)."""
        return [
            fault_id(i, f) for i, f in enumerate(self.faults) if not (self.folder / f"{fault_id(i, f)}.fired").exists()
        ]

    def outages(self):
        return _watching(self)


class _watching:
    """While the DAG runs: at each outage point, take the service away, and bring it back once the call
    ended (S3 is frozen and thawed: moto keeps its objects in memory only)."""

    def __init__(self, plan: Plan):
        self.plan, self.done = plan, threading.Event()
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join(timeout=120)
        return False

    def _watch(self) -> None:
        pending = [(fault_id(i, f), f["service"]) for i, f in enumerate(self.plan.faults) if f["action"] == "outage"]
        while pending and not self.done.is_set():
            for ident, service in list(pending):
                if (self.plan.folder / f"{ident}.reached").exists():
                    self.plan.errors[ident] = self._outage(ident, service)
                    pending.remove((ident, service))
            time.sleep(0.2)

    def _outage(self, ident: str, service: str) -> str:
        folder, stack = self.plan.folder, self.plan.stack
        ended = "never ended"
        with stack.frozen(service) if service == "s3" else stack.down(service):
            (folder / f"{ident}.down").touch()
            for _ in range(900):
                done = [path for path in (folder / f"{ident}.failed", folder / f"{ident}.survived") if path.exists()]
                if done:
                    ended = done[0].read_text() if done[0].suffix == ".failed" else "survived"
                    break
                time.sleep(0.2)
        (folder / f"{ident}.up").touch()  # the service is back: the failed call may raise now
        return ended
