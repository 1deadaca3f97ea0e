"""Fault injection against the real local stack: a service stopped (or frozen) during a stage and brought
back, a stage's process killed mid-write, two runs at once. The stages are driven like
tests/integration/test_pipeline_stages.py drives them; a failed stage is retried with the same inputs,
as Airflow retries a task. After each fault the invariants of `assert_clean` must hold.

Services are stopped and started through the local stack's own supervisor (same ports, same data),
except S3: moto keeps objects in memory only, so it is frozen (SIGSTOP) and thawed instead, which to a
client looks like an unreachable S3 and loses nothing, as an outage of a real S3 or MinIO.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from include.demo.sample_data import generate_documents
from include.retraining import stages
from include.retraining.adapters import mongo, registry
from include.retraining.airflow import task as adapter
from include.retraining.core.config import PipelineConfig
from include.retraining.core.graph import RETRAIN
from include.retraining.core.records import RunInfo
from scripts.local_stack import __main__ as local_stack
from scripts.local_stack.supervisor import _groups_under, load_ports, ours, spawn, state_dir, stop, wait_ready
from tests.integration.conftest import ADMIN_CONN_ID, config_factory, stack_env  # noqa: F401 (fixtures)

STAGES = RETRAIN.lineage("notify")  # a forced run: the stages notify needs, in DAG order
RECORDS = {name: RETRAIN[name].returns for name in STAGES if RETRAIN[name].returns}
# Clients that give up in seconds, so an outage fails a stage quickly instead of after minutes of retries.
FAST_MONGO = {"serverSelectionTimeoutMS": 3000, "connectTimeoutMS": 2000, "socketTimeoutMS": 10000}
FAST_S3 = {"config_kwargs": {"connect_timeout": 2, "read_timeout": 3, "retries": {"max_attempts": 1}}}
FAST_MLFLOW = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}


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


@dataclass
class Attempt:
    """One retrain run: the records each stage returned and the errors of the attempts that failed."""

    run: RunInfo
    records: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


def call_stage(name: str, config: PipelineConfig, attempt: Attempt) -> Any:
    """Stage ``name`` handed the records of the stages before it, as its task is in the DAG."""
    records = RETRAIN.inputs(name, attempt.records)
    return adapter.call_stage(getattr(stages, name), records, lambda: config, lambda: attempt.run)


def retrain(
    config: PipelineConfig,
    run: RunInfo,
    fault_at: str | None = None,
    fault: Callable[[], contextlib.AbstractContextManager] | None = None,
) -> Attempt:
    """Every stage in order (the run is forced, so the model stages run). At ``fault_at`` the stage runs
    inside ``fault()`` and must fail; the service is back when the context exits; then the stage is
    retried with the same inputs, like an Airflow task retry."""
    attempt = Attempt(run)
    for name in STAGES:
        if name == fault_at:
            with fault():
                try:
                    call_stage(name, config, attempt)
                except Exception as error:  # what Airflow would log before retrying
                    attempt.failures[name] = f"{type(error).__name__}: {error}"[:300]
            assert name in attempt.failures, f"{name} did not fail during the fault: the fault was not injected"
        attempt.records[name] = call_stage(name, config, attempt)
    return attempt


# --- the champion every fault run competes with ------------------------------------------------------

ROWS = 1000  # documents behind each module's first champion
NEW_ROWS = 300  # documents that arrive before each fault run: a holdout and new rows to train on
SMALL_MODEL = {"gate": {"bootstrap_rounds": 50}, "training": {"hyperparameters": {"max_iter": 20, "max_depth": 6}}}


def forced_run(label: str) -> RunInfo:
    now = datetime.now(UTC).isoformat()
    return RunInfo(dag_id="faults", run_id=f"{label}__{uuid.uuid4().hex[:8]}", run_end=now, force_retrain=True)


def new_run(config: PipelineConfig, label: str) -> RunInfo:
    """A forced run after NEW_ROWS documents arrived, stamped after every earlier one: a champion is refit on
    all the rows of its run, so only rows newer than those can judge a challenger."""
    after_newest = mongo.latest_timestamp(config.source) + timedelta(milliseconds=1)
    insert(config, NEW_ROWS, after_newest, datetime.now(UTC), seed=zlib.crc32(label.encode()))
    return forced_run(label)


def insert(config: PipelineConfig, rows: int, start: datetime, end: datetime, seed: int) -> None:
    source = config.source
    target = {"database": source.database, "collection": source.collection, "conn_id": ADMIN_CONN_ID}
    docs = generate_documents(rows, start=start, end=end, seed=seed)
    assert mongo.insert_documents(docs, **target) == rows


def document_count(config: PipelineConfig) -> int:
    return mongo.client(ADMIN_CONN_ID)[config.source.database][config.source.collection].count_documents({})


def with_champion(config: PipelineConfig, seed: int) -> PipelineConfig:
    """``config`` with ROWS documents of the last ten days in its collection and a first champion trained
    on them."""
    now = datetime.now(UTC)
    insert(config, ROWS, now - timedelta(days=10), now - timedelta(minutes=5), seed)
    assert retrain(config, forced_run("first")).records["promote"].promoted
    return config


def champion_version(config: PipelineConfig) -> str | None:
    champion = registry.champion(config.mlflow, config.model_name)
    return champion.version if champion else None


# --- what must hold after every fault ---------------------------------------------------------------


def run_versions(config: PipelineConfig, run_id: str) -> list[str]:
    versions = registry.client(config.mlflow).search_model_versions(f"name='{config.model_name}'")
    return sorted(v.version for v in versions if v.tags.get("airflow_run_id") == run_id)


def drift_checks(config: PipelineConfig, run_id: str) -> list[dict]:
    checks = mongo.client(ADMIN_CONN_ID)[config.monitoring_database][config.monitoring.collection]
    return list(checks.find({"run_id": run_id}))


def logged_models(config: PipelineConfig, run_id: str) -> list[str]:
    """The names of the models logged into the MLflow run of Airflow run ``run_id``, one entry per model."""
    client = registry.client(config.mlflow)
    experiment = client.get_experiment_by_name(config.mlflow.experiment).experiment_id
    runs = client.search_runs([experiment], filter_string=f"tags.airflow_run_id = '{run_id}'")
    return sorted(
        model.name
        for mlflow_run in runs
        for model in client.search_logged_models(
            [experiment], filter_string=f"source_run_id = '{mlflow_run.info.run_id}'"
        )
    )


class DuplicateAfterRetry(AssertionError):
    """A retried stage wrote a second time what its first attempt had written (version, drift check)."""


def assert_clean(config: PipelineConfig, run_id: str, champion_before: str | None) -> None:
    """One model version, one drift check and each model logged once for the run; the version is the refit
    when its gate passed, the challenger as trained when not; the champion is the old one or a version
    whose gate passed."""
    versions, checks, models = run_versions(config, run_id), drift_checks(config, run_id), logged_models(config, run_id)
    assert checks, f"run {run_id}: its drift check was lost"
    if len(versions) > 1 or len(checks) > 1 or len(set(models)) < len(models):
        raise DuplicateAfterRetry(
            f"run {run_id}: model versions {versions}, {len(checks)} drift-check documents, logged models {models}"
        )
    for version in versions:
        tags = registry.version_tags(config.mlflow, config.model_name, version)
        assert tags["refit"] == tags["gate_passed"], f"v{version}: refit {tags['refit']}, gate {tags['gate_passed']}"
    champion = registry.champion(config.mlflow, config.model_name)
    assert champion is not None
    if champion.version != champion_before:
        tags = registry.version_tags(config.mlflow, config.model_name, champion.version)
        assert tags.get("gate_passed") == "true", f"champion v{champion.version} did not pass the gate: {tags}"


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
