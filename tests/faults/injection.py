"""Faults injected mid-call into the task processes of an `airflow dags test --use-executor` run, from the
test side: nothing in the product knows about them.

The harness hands its Airflow processes (and only them) ``tests/faults/inject`` on their PYTHONPATH, whose
``sitecustomize`` calls ``install()`` when ``RETRAIN_FAULTS`` names a plan file; each test writes its plan
there before its run, as JSON::

    {"dir": "<a folder of the test>", "faults": [{"task": "train", "point": "after_log_model", "action": "kill"}]}

Every point (``POINTS``) wraps one adapter function; the wrapper reads the plan when it is called, and a
fault strikes once, in the named task's process, before or after the real call: ``kill`` SIGKILLs the
task process (Airflow sees its task die and retries it); ``outage`` stops there, lets the test take a
service away (tests/faults/airflow_runs.py), makes the real call without it and tells the test how it
ended, so the service comes back before Airflow's retry. Each fault leaves ``<dir>/<id>.fired`` (then
``.reached``, ``.failed`` or ``.survived`` for an outage): the test asserts every planned fault struck.

The Airflow retry delay is one second in these processes (the DAGs' default is a minute and up).
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

FAULTS_ENV = "RETRAIN_FAULTS"
OUTAGE_WAIT = 180.0  # seconds an outage point waits for the test to take the service away or bring it back


def always(args: tuple, kwargs: dict) -> bool:
    return True


@dataclass(frozen=True)
class Point:
    """Where a fault strikes: ``attribute`` of ``owner`` (a module, or ``module:Class``), before or after
    the real call, on the calls ``when`` accepts."""

    owner: str
    attribute: str
    after: bool
    when: Callable[[tuple, dict], bool] = always


REGISTRY = "include.retraining.adapters.registry"
MONGO = "include.retraining.adapters.mongo"
STORAGE = "include.retraining.adapters.storage"
CLIENT = "mlflow:MlflowClient"
POINTS = {
    # the challenger is logged into the run's MLflow run, not registered yet (train)
    "after_log_model": Point(REGISTRY, "log_training", True, lambda a, k: k.get("name", "model") == "model"),
    # the refit is logged, not registered yet (refit)
    "after_log_refit": Point(REGISTRY, "log_training", True, lambda a, k: k.get("name") == "model_refit"),
    # promote: the champion alias not moved yet / moved, the promotion not returned
    "before_champion_alias": Point(REGISTRY, "set_champion", False),
    "after_champion_alias": Point(REGISTRY, "set_champion", True),
    # the monitor's compare-and-set moved the watermark (not its first setting by open_window)
    "after_watermark_advanced": Point(MONGO, "advance_watermark", True, lambda a, k: a[3] is not None),
    # detect_drift: the report is in MLflow, the check not in MongoDB yet
    "before_drift_check_recorded": Point(MONGO, "record_once", False),
    # train: the holdout rows are on S3, the training rows not yet
    "before_training_rows_written": Point(STORAGE, "write_parquet", False, lambda a, k: "/training/" in a[1]),
    # register: the model version exists, the challenger alias not set yet
    "before_challenger_alias": Point(CLIENT, "set_registered_model_alias", False, lambda a, k: a[2] == "challenger"),
    # the monitor's drift alert, rendered with its report, not handed to SMTP yet
    "before_drift_alert_sent": Point("include.retraining.adapters.mail", "send_drift_alert", False),
}  # fmt: skip


def fault_id(index: int, fault: dict) -> str:
    return f"{index}-{fault['task']}-{fault['point']}"


def install() -> None:
    """Wrap every point, reading the plan file ``RETRAIN_FAULTS`` names (none: nothing happens), and make
    retries fast."""
    if not os.environ.get(FAULTS_ENV):
        return
    plan_file = Path(os.environ[FAULTS_ENV])
    for name, point in POINTS.items():
        _wrap(name, point, plan_file)
    _fast_retries()


def planned(plan_file: Path, point: str) -> tuple[list[tuple[str, dict]], Path]:
    """The faults of the current plan at ``point``, with their ids, and the plan's folder."""
    try:
        plan = json.loads(plan_file.read_text())
    except FileNotFoundError:
        return [], plan_file.parent
    faults = [(fault_id(i, fault), fault) for i, fault in enumerate(plan["faults"]) if fault["point"] == point]
    return faults, Path(plan["dir"])


def _wrap(name: str, point: Point, plan_file: Path) -> None:
    module, _, cls = point.owner.partition(":")
    owner: Any = importlib.import_module(module)
    owner = getattr(owner, cls) if cls else owner
    real = getattr(owner, point.attribute)

    @functools.wraps(real)
    def faulty(*args, **kwargs):
        def due() -> tuple[str, str] | None:  # claimed only where it strikes: two points may wrap one function
            faults, folder = planned(plan_file, name)
            return _due(faults, folder) if faults and point.when(args, kwargs) else None

        if point.after:
            result = real(*args, **kwargs)
            if due():
                _die()
            return result
        fault = due()
        if fault and fault[1] == "kill":
            _die()
        if fault:
            return _without_service(fault[0], planned(plan_file, name)[1], lambda: real(*args, **kwargs))
        return real(*args, **kwargs)

    setattr(owner, point.attribute, faulty)


def _due(faults: list[tuple[str, dict]], folder: Path) -> tuple[str, str] | None:
    """The first fault of this point planned for the running task that has not struck yet (claimed now)."""
    task = _running_task()
    for ident, fault in faults:
        if fault["task"] != task:
            continue
        try:
            os.close(os.open(folder / f"{ident}.fired", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            continue
        return ident, fault["action"]
    return None


def _running_task() -> str | None:
    try:
        from airflow.sdk import get_current_context

        return get_current_context()["ti"].task_id
    except Exception:  # not inside a task (a parse, a test's own call): no fault
        return None


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _without_service(ident: str, folder: Path, call: Callable[[], Any]) -> Any:
    """Wait until the test took the service away, make the call, say how it ended; a failure is raised once
    the service is back (as it is when Airflow's retry delay of a minute or more has passed)."""
    (folder / f"{ident}.reached").touch()
    _await(folder / f"{ident}.down", ident)
    try:
        result = call()
    except BaseException as error:
        (folder / f"{ident}.failed").write_text(f"{type(error).__name__}: {error}"[:2000])
        _await(folder / f"{ident}.up", ident)
        raise
    (folder / f"{ident}.survived").touch()
    return result


def _await(signal_file: Path, ident: str) -> None:
    deadline = time.monotonic() + OUTAGE_WAIT
    while not signal_file.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"fault {ident}: the test never wrote {signal_file.name}")
        time.sleep(0.1)


def _fast_retries() -> None:
    """A one-second retry delay for the DAGs these processes parse (the default backs off from a minute)."""
    from include.retraining.airflow import dag_defaults

    real = dag_defaults.default_args

    def fast(**overrides: Any) -> dict[str, Any]:
        return real(**overrides) | {"retry_delay": timedelta(seconds=1), "retry_exponential_backoff": False}

    dag_defaults.default_args = fast
