"""Faults against the real local stack, through Airflow's own retry path: a service stopped (or frozen)
while a stage is inside its call, a task's process killed mid-call, two runs of one model at once. Each
case ends with exactly the state of a clean run of the same data (tests/faults/end_state.py).

Services are stopped and started through the local stack's own supervisor (same ports, same data),
except S3: moto keeps objects in memory only, so it is frozen (SIGSTOP) and thawed instead, which to a
client looks like an unreachable S3 and loses nothing, as an outage of a real S3 or MinIO.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from bson import ObjectId

from include.demo.sample_data import generate_documents
from include.retraining import stages
from include.retraining.airflow import task as adapter
from include.retraining.airflow.runtime import env_config
from include.retraining.core.config import PipelineConfig
from include.retraining.core.graph import RETRAIN
from include.retraining.core.records import RunInfo
from scripts.airflow_group import isolated_overrides
from scripts.local_stack import __main__ as local_stack
from scripts.local_stack.supervisor import _groups_under, load_ports, ours, spawn, state_dir, stop, wait_ready
from tests.faults.airflow_runs import FaultAirflow
from tests.integration.conftest import stack_env  # noqa: F401 (fixture)

RETRAIN_DAG = "retrain_vehicle_insurance"
SMALL_MODEL = {"gate": {"bootstrap_rounds": 50}, "training": {"hyperparameters": {"max_iter": 20, "max_depth": 6}}}
# Clients that give up in seconds, so an outage fails a stage quickly instead of after minutes of retries.
FAST_MONGO = {"serverSelectionTimeoutMS": 3000, "connectTimeoutMS": 2000, "socketTimeoutMS": 10000}
FAST_S3 = {"config_kwargs": {"connect_timeout": 2, "read_timeout": 3, "retries": {"max_attempts": 1}}}
FAST_MLFLOW = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
FAST_CONNECTIONS = {"source": {"conn_id": "mongo_faults"}, "storage": {"conn_id": "aws_faults"}}  # config overrides


class Stack:
    """One service of the running local stack, stopped and started by its supervisor."""

    def __init__(self, state: Path):
        self.state = state
        self.services = {service.name: service for service in local_stack.SERVICES}

    def stop(self, name: str) -> None:
        assert stop(self.state, [name], grace=10) == [name], f"{name} was not running"

    def start(self, name: str) -> None:
        service, ports = self.services[name], load_ports(self.state)
        env = os.environ | local_stack.stack_env(self.state, ports) | service.own_env
        spawn(self.state, name, service.command(self.state, ports), env, self.state)
        port = ports[name]
        assert wait_ready(self.state, name, lambda: service.ready(port), service.timeout), f"{name} did not come back"
        service.after_ready(self.state, port, True)

    @contextlib.contextmanager
    def down(self, name: str) -> Iterator[None]:
        self.stop(name)
        try:
            yield
        finally:
            self.start(name)

    @contextlib.contextmanager
    def frozen(self, name: str) -> Iterator[None]:
        groups = list(_groups_under([ours(self.state, name)]))
        for pgid in groups:
            os.killpg(pgid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pgid in groups:
                os.killpg(pgid, signal.SIGCONT)


# --- the models and data of the fault cases ---------------------------------------------------------


def model_overrides(prefix: str, **extra: dict) -> dict:
    name, overrides = isolated_overrides(prefix, **SMALL_MODEL, **FAST_CONNECTIONS, **extra)
    return overrides | {"notify": {"recipients": [f"{name}@example.com"]}}


def config_of(overrides: dict) -> PipelineConfig:
    return env_config(os.environ | {"AIRFLOW_VAR_RETRAIN_CONFIG": json.dumps(overrides)})


def documents(end: datetime) -> tuple[list[dict], datetime]:
    """1,000 documents over eight days, then 600 in the last two whose label follows the features
    differently; each with its ``_id``, so both copies hold the same ids. Also the first champion's end."""
    first_end = end - timedelta(days=2)
    old = generate_documents(1000, start=end - timedelta(days=10), end=first_end - timedelta(hours=1), seed=21)
    start = first_end + timedelta(hours=1)
    new = generate_documents(600, start=start, end=end - timedelta(minutes=10), seed=22, concept_drift=1.0)
    return with_ids(old + new), first_end


def with_ids(docs: list[dict]) -> list[dict]:
    for doc in docs:
        doc["_id"] = ObjectId()
    return docs


def run_stages(config: PipelineConfig, run: RunInfo, until: str = "notify") -> dict:
    """The retrain path of the DAG (every stage but skip) up to ``until``, in this process, each stage
    handed the records of the stages before it as its task is."""
    records: dict = {}
    for name in RETRAIN.names[: RETRAIN.names.index(until) + 1]:
        if name != "skip":
            stage = getattr(stages, name)
            records[name] = adapter.call_stage(stage, RETRAIN.inputs(name, records), lambda: config, lambda: run)
    return records


def manual_run(run_id: str, end: datetime) -> RunInfo:
    return RunInfo(dag_id=RETRAIN_DAG, run_id=run_id, run_end=end.isoformat(), reason="manual", force_retrain=True)


# --- fixtures ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def stack(stack_env) -> Stack:  # noqa: F811 (the imported fixture)
    return Stack(state_dir())


@pytest.fixture(scope="session")
def fault_env(stack_env) -> Iterator[dict[str, str]]:  # noqa: F811
    """Connections ``mongo_faults`` and ``aws_faults``: the stack's, with clients that give up quickly."""
    mongo_conn = json.loads(os.environ["AIRFLOW_CONN_MONGO_DEFAULT"])
    mongo_conn["extra"] = mongo_conn.get("extra", {}) | FAST_MONGO
    aws_conn = json.loads(os.environ["AIRFLOW_CONN_AWS_DEFAULT"])
    aws_conn["extra"] = aws_conn.get("extra", {}) | FAST_S3
    env = {
        "AIRFLOW_CONN_MONGO_FAULTS": json.dumps(mongo_conn),
        "AIRFLOW_CONN_AWS_FAULTS": json.dumps(aws_conn),
        **FAST_MLFLOW,
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        yield env


@pytest.fixture(scope="session")
def fault_airflow(fault_env) -> Iterator[FaultAirflow]:
    """The private Airflow group of the DAG runs with faults (tests/faults/airflow_runs.py)."""
    airflow = FaultAirflow()
    airflow.start()
    yield airflow
    airflow.stop()
