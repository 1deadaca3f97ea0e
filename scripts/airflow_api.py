"""A small client for Airflow 3's REST API (``/api/v2``) with the simple auth manager, as the UI uses it.

    python scripts/airflow_api.py trigger retrain_vehicle_insurance --conf '{"force_retrain": true}' --wait
    python scripts/airflow_api.py runs retrain_vehicle_insurance

It logs in with ``POST /auth/token`` and sends the JWT as a bearer token (again once on a 401), to
``AIRFLOW_API_URL`` as ``AIRFLOW_API_USER`` with ``AIRFLOW_API_PASSWORD`` or the simple auth manager's
``AIRFLOW_API_PASSWORD_FILE``; unset, they come from the local stack's ``airflow.env`` (``make airflow``).
A trigger is the UI's trigger form: Params in ``conf``, no logical date; Airflow refuses invalid
Params with HTTP 400 naming the Param, before any run exists.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

REPO = Path(__file__).resolve().parent.parent
RAISE = object()  # request(): a 404 is an error
DATABASE_RETRIES = 6  # request(): a transient metadata-database error (SQLite lock) is retried this often, 1..6 s apart


class AirflowAPIError(RuntimeError):
    """The API answered with an error status; ``detail`` is its explanation (FastAPI's ``detail``)."""

    def __init__(self, method: str, path: str, status: int, detail: Any):
        self.method, self.path, self.status, self.detail = method, path, status, detail
        super().__init__(f"{method} {path} -> HTTP {status}: {detail}")


class RunTimeout(TimeoutError):
    """A DAG run did not finish in time; ``run`` is its last known state."""

    def __init__(self, run: dict[str, Any], timeout: float):
        self.run = run
        where = f"{run.get('dag_id')} / {run.get('dag_run_id')}"
        super().__init__(f"{where} still {run.get('state')} after {timeout:.0f} s")


def read_env_file(path: Path) -> dict[str, str]:
    """The ``export NAME=value`` lines that the local stack writes (values shell-quoted)."""
    env = {}
    for line in path.read_text().splitlines():
        if line.startswith("export ") and "=" in line:
            name, value = line.removeprefix("export ").split("=", 1)
            env[name] = shlex.split(value)[0] if value else ""
    return env


@dataclass
class AirflowClient:
    base_url: str
    username: str
    password: str
    timeout: float = 30.0
    _token: str | None = field(default=None, repr=False)
    _http: httpx.Client = field(init=False, repr=False)

    def __post_init__(self):
        self.base_url = self.base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=self.timeout)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> AirflowClient:
        env = dict(os.environ if environ is None else environ)
        stack = Path(os.environ.get("LOCAL_STACK_DIR") or REPO / ".local") / "airflow.env"
        if "AIRFLOW_API_URL" not in env and stack.exists():
            env |= read_env_file(stack)
        if "AIRFLOW_API_URL" not in env:
            raise SystemExit("AIRFLOW_API_URL is not set and .local/airflow.env is missing: run `make airflow`")
        user = env.get("AIRFLOW_API_USER", "admin")
        password = env.get("AIRFLOW_API_PASSWORD")
        if not password:
            password = json.loads(Path(env["AIRFLOW_API_PASSWORD_FILE"]).read_text())[user]
        return cls(env["AIRFLOW_API_URL"], user, password)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AirflowClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def login(self) -> str:
        response = self._http.post("/auth/token", json={"username": self.username, "password": self.password})
        self._token = _checked("POST", "/auth/token", response, (201,))["access_token"]
        return self._token

    def request(self, method: str, path: str, *, expect=(200,), if_missing: Any = RAISE, **kwargs) -> Any:
        """One authenticated call; the decoded JSON body (None for an empty one), or ``if_missing`` on a 404."""
        for attempt in range(DATABASE_RETRIES + 1):
            headers = {"Authorization": f"Bearer {self._token or self.login()}"}
            response = self._http.request(method, path, headers=headers, **kwargs)
            if response.status_code == 401 and attempt == 0:
                self._token = None  # expired or signed with another secret: log in again, once
                continue
            if _database_error(response) and attempt < DATABASE_RETRIES:
                time.sleep(1 + attempt)  # the transaction was rolled back: the same call again is safe
                continue
            break
        if response.status_code == 404 and if_missing is not RAISE:
            return if_missing
        return _checked(method, path, response, expect)

    def health(self) -> dict[str, Any]:
        """``/api/v2/monitor/health`` needs no login: metadatabase, scheduler, triggerer, dag processor."""
        return _checked("GET", "/api/v2/monitor/health", self._http.get("/api/v2/monitor/health"), (200,))

    def get_dag(self, dag_id: str) -> dict[str, Any] | None:
        return self.request("GET", f"/api/v2/dags/{_q(dag_id)}", if_missing=None)

    def list_dags(self) -> list[dict[str, Any]]:
        return self.request("GET", "/api/v2/dags", params={"limit": 1000})["dags"]

    def pause(self, dag_id: str, paused: bool = True) -> dict[str, Any]:
        return self.request("PATCH", f"/api/v2/dags/{_q(dag_id)}", json={"is_paused": paused})

    def unpause(self, dag_id: str) -> dict[str, Any]:
        return self.pause(dag_id, False)

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None, logical_date=None, note=None) -> dict:
        """Create a manual run like the UI's trigger form: Params in ``conf``; returns the dag run."""
        body = {"logical_date": logical_date, "conf": dict(conf or {})} | ({"note": note} if note else {})
        return self.request("POST", f"/api/v2/dags/{_q(dag_id)}/dagRuns", json=body)

    def list_runs(self, dag_id: str, limit: int = 100, states: Iterable[str] = ()) -> list[dict[str, Any]]:
        """Newest first; only runs in one of ``states`` if given (queued, running, success, failed)."""
        params: dict[str, Any] = {"limit": limit, "order_by": "-run_after"}
        if states:
            params["state"] = list(states)
        return self.request("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns", params=params)["dag_runs"]

    def set_run_state(self, dag_id: str, run_id: str, state: str, note: str | None = None) -> dict[str, Any]:
        body = {"state": state} | ({"note": note} if note else {})
        return self.request("PATCH", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}", json=body)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances"
        return self.request("GET", path, params={"limit": 1000})["task_instances"]

    def set_task_state(self, dag_id: str, run_id: str, task_id: str, state: str, note: str | None = None) -> Any:
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}"
        return self.request("PATCH", path, json={"new_state": state} | ({"note": note} if note else {}))

    def clear_task(self, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
        """Clear one task of a run (not its downstream), as the UI's Clear does: it runs again; the cleared ones."""
        body = {"dry_run": False, "dag_run_id": run_id, "task_ids": [task_id], "only_failed": False}
        path = f"/api/v2/dags/{_q(dag_id)}/clearTaskInstances"
        return self.request("POST", path, json=body)["task_instances"]

    def hitl_detail(self, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> dict[str, Any] | None:
        """A task's Human-in-the-loop request (subject, body, options, defaults; the answer once given), as the
        UI's Required Actions shows it; None while the task has not asked."""
        return self.request("GET", _hitl_path(dag_id, run_id, task_id, map_index), if_missing=None)

    def respond(self, dag_id: str, run_id: str, task_id: str, options: list[str], map_index: int = -1) -> dict:
        """Answer a task's Human-in-the-loop request as the logged-in user: a task awaiting input resumes."""
        body = {"chosen_options": options, "params_input": {}}
        return self.request("PATCH", _hitl_path(dag_id, run_id, task_id, map_index), json=body)

    def wait_for_task(
        self, dag_id: str, run_id: str, task_id: str, states: Iterable[str], timeout: float = 600, poll: float = 2.0
    ) -> dict[str, Any]:
        """Poll until the task instance is in one of ``states`` (e.g. awaiting_input); RunTimeout after ``timeout``
        seconds, or when the run ends first."""
        deadline = time.monotonic() + timeout
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}"
        while True:
            instance = self.request("GET", path, if_missing={"state": None})
            if instance["state"] in states:
                return instance
            run = self.request("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}")
            if run["state"] in ("success", "failed") or time.monotonic() > deadline:
                raise RunTimeout(run | {"task": {task_id: instance["state"]}}, timeout)
            time.sleep(poll)

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 600, poll: float = 2.0) -> dict[str, Any]:
        """Poll until the run is success or failed; raise RunTimeout after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.request("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}")
            if run["state"] in ("success", "failed"):
                return run
            if time.monotonic() > deadline:
                raise RunTimeout(run, timeout)
            time.sleep(poll)

    def get_variable(self, key: str) -> str | None:
        return (self.request("GET", f"/api/v2/variables/{_q(key)}", if_missing=None) or {}).get("value")

    def set_variable(self, key: str, value: str, description: str | None = None) -> dict[str, Any]:
        body = {"key": key, "value": value, "description": description}
        updated = self.request("PATCH", f"/api/v2/variables/{_q(key)}", json=body, if_missing=None)
        return updated or self.request("POST", "/api/v2/variables", json=body, expect=(201,))

    def delete_variable(self, key: str) -> bool:
        """False if there was no such variable."""
        path = f"/api/v2/variables/{_q(key)}"
        return self.request("DELETE", path, expect=(204,), if_missing=False) is not False


def _database_error(response: httpx.Response) -> bool:
    """A 500 from the metadata database, e.g. SQLite's "database is locked" while the scheduler writes
    (the local stack's SQLite allows one writer at a time): transient, unlike any other 500."""
    if response.status_code != 500:
        return False
    try:
        body = response.json()
        detail = body.get("detail")  # Airflow 3.3 nests it: {"detail": {"reason": "Database error", ...}}
        return "Database error" in (body.get("reason"), detail.get("reason") if isinstance(detail, dict) else None)
    except (ValueError, AttributeError):
        return False


def _hitl_path(dag_id: str, run_id: str, task_id: str, map_index: int) -> str:
    return f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}/taskInstances/{_q(task_id)}/{map_index}/hitlDetails"


def _q(part: str) -> str:
    return quote(part, safe="")


def _checked(method: str, path: str, response: httpx.Response, expect: tuple[int, ...]) -> Any:
    """The decoded JSON body (None for an empty one) if the status is expected, else AirflowAPIError."""
    if response.status_code in expect:
        return response.json() if response.content else None
    try:
        detail = response.json().get("detail", response.json())
    except (ValueError, AttributeError):
        detail = response.text
    raise AirflowAPIError(method, path, response.status_code, detail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    trigger = commands.add_parser("trigger", help="trigger a run with Params, like the UI's trigger form")
    trigger.add_argument("dag_id")
    trigger.add_argument("--conf", default="{}", help="the Params as a JSON object")
    trigger.add_argument("--logical-date", default=None, help="ISO 8601 with a timezone; default: none, as the UI")
    trigger.add_argument("--wait", action="store_true", help="wait until the run finishes; exit 1 unless success")
    trigger.add_argument("--timeout", type=float, default=900)
    runs = commands.add_parser("runs", help="the latest runs of a DAG")
    runs.add_argument("dag_id")
    runs.add_argument("--limit", type=int, default=10)
    args = parser.parse_args(argv)

    with AirflowClient.from_env() as client:
        try:
            if args.command == "trigger":
                run = client.trigger(args.dag_id, json.loads(args.conf), args.logical_date)
                print(f"{run['dag_run_id']}: {run['state']}", flush=True)
                if args.wait:
                    run = client.wait_for_run(args.dag_id, run["dag_run_id"], args.timeout)
                    print(f"{run['dag_run_id']}: {run['state']}")
                    return 0 if run["state"] == "success" else 1
            else:
                for run in client.list_runs(args.dag_id, args.limit):
                    ended = run.get("end_date") or ""
                    print(f"{run['dag_run_id']:<50} {run['run_type']:<10} {run['state']:<8} {ended}")
        except (AirflowAPIError, RunTimeout) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
