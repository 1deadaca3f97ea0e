"""The task adapter ends a task at once on a failure a retry cannot fix and keeps retries for the rest."""

from __future__ import annotations

import inspect

import pytest
from airflow.sdk.exceptions import AirflowFailException

from include.retraining import stages
from include.retraining.airflow import task as task_adapter
from include.retraining.core.config import ConfigError
from include.retraining.core.contract import DataContractError
from include.retraining.core.records import DriftResult
from tests.unit.test_records import DRIFT


class FakeTaskInstance:
    def __init__(self, xcoms: dict[str, object]):
        self.xcoms = xcoms
        self.pulled: list[str] = []

    def xcom_pull(self, task_ids: str):
        self.pulled.append(task_ids)
        return self.xcoms.get(task_ids)


@pytest.fixture
def running_task(monkeypatch):
    """``run_stage`` inside a fake running task; returns a function installing the stage ``under_test``."""
    ti = FakeTaskInstance({"detect_drift": DRIFT.to_dict()})
    monkeypatch.setattr("airflow.sdk.get_current_context", lambda: {"params": {}, "ti": ti})

    def install(stage):
        monkeypatch.setattr(stages, "under_test", stage, raising=False)
        return ti

    return install


CONTRACT_MESSAGE = "the data cannot be trained on:\n  - 28 valid rows of 28, fewer than contract.min_rows (500)"


@pytest.mark.parametrize(
    "error",
    [DataContractError(CONTRACT_MESSAGE), ConfigError("invalid configuration: gate.confidence must be within [0, 1]")],
    ids=["data contract", "configuration"],
)
def test_a_deterministic_failure_fails_the_task_without_retries_and_keeps_its_message(running_task, error):
    def under_test(drift: DriftResult) -> None:
        raise error

    running_task(under_test)

    with pytest.raises(AirflowFailException) as failed:
        task_adapter.run_stage("under_test", drift=DRIFT.to_dict())

    assert str(error) in str(failed.value)
    assert type(error).__name__ in str(failed.value)
    assert failed.value.__cause__ is error


def test_a_malformed_xcom_or_conf_is_a_deterministic_failure_too(running_task):
    def under_test(drift: DriftResult) -> None:
        raise AssertionError("not reached: the record cannot be rebuilt")

    running_task(under_test)

    with pytest.raises(AirflowFailException, match=r"RecordError .*under_test\(drift\)"):
        task_adapter.run_stage("under_test", drift={"status": "drift"})


@pytest.mark.parametrize(
    "error",
    [ConnectionRefusedError(111, "Connection refused"), TimeoutError("MLflow did not answer in 30 s"), OSError("S3")],
    ids=["service down", "timeout", "network"],
)
def test_a_transient_fault_is_raised_as_it_is_so_the_task_keeps_its_retries(running_task, error):
    def under_test(drift: DriftResult) -> None:
        raise error

    running_task(under_test)

    with pytest.raises(type(error)) as raised:
        task_adapter.run_stage("under_test", drift=DRIFT.to_dict())

    assert raised.value is error
    assert not isinstance(raised.value, AirflowFailException)


def test_a_record_the_task_was_not_handed_is_pulled_from_the_task_that_produces_it(running_task):
    def under_test(drift: DriftResult) -> str:
        return drift.status

    ti = running_task(under_test)

    assert task_adapter.run_stage("under_test") == "drift"
    assert ti.pulled == ["detect_drift"]


def test_every_pulled_record_names_a_stage_parameter_and_a_retrain_task():
    parameters = {name for stage in map(stages.__dict__.get, stages.__all__) for name in _parameters(stage)}
    assert set(task_adapter.PRODUCERS) <= parameters
    assert set(task_adapter.PRODUCERS.values()) <= set(stages.__all__)


def _parameters(stage) -> list[str]:
    return list(inspect.signature(stage).parameters)
