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
from dataclasses import asdict
from pathlib import Path

import pytest

from include.retraining.core.config import PipelineConfig
from include.retraining.core.records import RunInfo
from tests.faults.conftest import (
    SMALL_MODEL,
    STAGES,
    Attempt,
    assert_clean,
    call_stage,
    champion_version,
    new_run,
    retrain,
    run_versions,
    with_champion,
)

pytestmark = [
    pytest.mark.faults,
    pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer:UserWarning"),
]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def config(config_factory, fault_env) -> PipelineConfig:
    return with_champion(config_factory(SMALL_MODEL, {"source": {"conn_id": "mongo_faults"}}), seed=12)


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
    before, run = champion_version(config), new_run(config, "kill-drift")

    killed_then_retried(config, run, "detect_drift", f"mongo:{config.monitoring.collection}", tmp_path)

    assert_clean(config, run.run_id, before)


def test_register_killed_after_creating_and_aliasing_the_version(config, tmp_path):
    before, run = champion_version(config), new_run(config, "kill-register")

    attempt = killed_then_retried(config, run, "register", "mlflow:set_registered_model_alias", tmp_path)

    assert attempt.records["register"].version in run_versions(config, run.run_id)
    assert_clean(config, run.run_id, before)


def test_two_runs_at_once(config):
    """What max_active_runs=1 and the training pool prevent in Airflow, forced: both runs register one
    version each, and the champion ends as the old one or one the gate approved."""
    before = champion_version(config)
    runs = [new_run(config, "twin-a"), new_run(config, "twin-b")]
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
