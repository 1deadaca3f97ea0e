"""A task process killed right after its write reached the service (then retried, as Airflow retries a
task whose process died), and two runs of the same model at once.

The retried stage must not write a second time what its killed attempt wrote (``DuplicateAfterRetry``
otherwise): register finds the version of its MLflow run, detect_drift replaces its run's drift check.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from include.demo.sample_data import generate_documents
from include.retraining.adapters import mongo, registry
from include.retraining.core.config import PipelineConfig
from include.retraining.core.records import RunInfo
from tests.faults.conftest import (
    ADMIN_CONN_ID,
    STAGES,
    Attempt,
    assert_clean,
    call_stage,
    retrain,
    run_versions,
)

pytestmark = [
    pytest.mark.faults,
    pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer:UserWarning"),
]

ROOT = Path(__file__).resolve().parents[2]
ROWS = 1000


def new_run(label: str) -> RunInfo:
    now = datetime.now(UTC).isoformat()
    return RunInfo(dag_id="faults", run_id=f"{label}__{uuid.uuid4().hex[:8]}", run_end=now, force_retrain=True)


@pytest.fixture(scope="module")
def config(config_factory, fault_env) -> PipelineConfig:
    config = config_factory(
        {
            "source": {"conn_id": "mongo_faults"},
            "gate": {"bootstrap_rounds": 50},
            "training": {"hyperparameters": {"max_iter": 20, "max_depth": 6}},
        }
    )
    now = datetime.now(UTC)
    docs = generate_documents(ROWS, start=now - timedelta(days=10), end=now - timedelta(minutes=5), seed=12)
    source = config.source
    target = {"database": source.database, "collection": source.collection, "conn_id": ADMIN_CONN_ID}
    assert mongo.insert_documents(docs, **target) == ROWS
    assert retrain(config, new_run("first")).records["promote"].promoted
    return config


def champion_version(config: PipelineConfig) -> str | None:
    champion = registry.champion(config.mlflow, config.model_name)
    return champion.version if champion else None


def killed_then_retried(config: PipelineConfig, run: RunInfo, stage: str, after: str, tmp_path: Path) -> Attempt:
    """The stages in order; ``stage`` first runs in a process SIGKILLed right after ``after``, then again."""
    attempt = Attempt(run)
    for name in STAGES:
        if name == stage:
            payload = {
                "config": asdict(config),
                "run": run.to_dict(),
                "records": {key: record.to_dict() for key, record in attempt.records.items()},
            }
            (tmp_path / "input.json").write_text(json.dumps(payload))
            command = [sys.executable, "-m", "tests.faults.killed_stage", stage, after, str(tmp_path / "input.json")]
            killed = subprocess.run(
                command, cwd=ROOT, env=os.environ, capture_output=True, text=True, timeout=300, check=False
            )
            assert killed.returncode == -signal.SIGKILL, f"{stage} was not killed:\n{killed.stderr[-3000:]}"
            attempt.failures[name] = f"killed after {after}"
        attempt.records[name] = call_stage(name, config, attempt)
    return attempt


def test_detect_drift_killed_after_recording_its_check(config, tmp_path):
    before, run = champion_version(config), new_run("kill-drift")

    killed_then_retried(config, run, "detect_drift", f"mongo:{config.monitoring.collection}", tmp_path)

    assert_clean(config, run.run_id, before)


def test_register_killed_after_creating_and_aliasing_the_version(config, tmp_path):
    before, run = champion_version(config), new_run("kill-register")

    attempt = killed_then_retried(config, run, "register", "mlflow:set_registered_model_alias", tmp_path)

    assert attempt.records["register"].version in run_versions(config, run.run_id)
    assert_clean(config, run.run_id, before)


def test_two_runs_at_once(config):
    """What max_active_runs=1 and the training pool prevent in Airflow, forced: both runs register one
    version each, and the champion ends as the old one or one the gate approved."""
    before = champion_version(config)
    runs = [new_run("twin-a"), new_run("twin-b")]
    results: dict[str, Attempt | BaseException] = {}

    def go(run: RunInfo) -> None:
        try:
            results[run.run_id] = retrain(config, run)
        except BaseException as error:  # reported below, not lost in the thread
            results[run.run_id] = error

    threads = [threading.Thread(target=go, args=(run,)) for run in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    failed = {run_id: repr(result) for run_id, result in results.items() if isinstance(result, BaseException)}
    assert not failed, f"runs failed: {failed}"
    assert len(results) == 2
    for run in runs:
        assert run_versions(config, run.run_id) == [results[run.run_id].records["register"].version]
        assert_clean(config, run.run_id, before)
    promoted = [r.records["promote"] for r in results.values() if r.records["promote"].promoted]
    assert champion_version(config) in {before, *(p.champion_version for p in promoted)}
