"""The task adapter ends a task at once on a failure a retry cannot fix and keeps retries for the rest."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from include.retraining import stages
from include.retraining.airflow import task as task_adapter
from include.retraining.core.config import ConfigError
from include.retraining.core.contract import DataContractError
from include.retraining.core.graph import Graph, Stage
from include.retraining.core.records import DriftResult
from tests.unit.test_records import DRIFT

GRAPH = Graph(
    (
        Stage("detect_drift", gives="drift", returns=DriftResult),
        Stage("under_test", ("drift",)),
        Stage("joined", ("drift",), join=True),
        Stage("lenient", ("drift",), join=True, optional=("drift",)),
    )
)


@pytest.fixture
def running_task(monkeypatch):
    """``run_stage`` inside a fake running task; returns a function installing the stage ``under_test``."""
    monkeypatch.setattr("airflow.sdk.get_current_context", lambda: {"params": {}})

    def install(stage, name="under_test"):
        monkeypatch.setattr(stages, name, stage, raising=False)

    return install


def run_under_test(drift, name="under_test"):
    return task_adapter.run_stage(GRAPH, name, None, {"drift": drift})


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
        run_under_test(DRIFT.to_dict())

    assert str(error) in str(failed.value)
    assert type(error).__name__ in str(failed.value)
    assert failed.value.__cause__ is error


def test_a_malformed_xcom_or_conf_is_a_deterministic_failure_too(running_task):
    def under_test(drift: DriftResult) -> None:
        raise AssertionError("not reached: the record cannot be rebuilt")

    running_task(under_test)

    with pytest.raises(AirflowFailException, match=r"RecordError .*under_test\(drift\)"):
        run_under_test({"status": "drift"})


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
        run_under_test(DRIFT.to_dict())

    assert raised.value is error
    assert not isinstance(raised.value, AirflowFailException)


def test_the_stage_gets_the_record_its_task_was_handed_as_its_type(running_task):
    def under_test(drift: DriftResult) -> str:
        assert drift == DRIFT
        return drift.status

    running_task(under_test)

    assert run_under_test(DRIFT.to_dict()) == "drift"


def test_a_join_handed_no_record_for_a_stage_it_needs_is_skipped_not_called(running_task):
    """The drift monitor's advance_watermark joins the route's paths: when the sensor timed out, only the
    config task succeeded, and the stage must not run on a window that never came."""

    def joined(drift: DriftResult) -> None:
        raise AssertionError("not reached: its record was never made")

    def lenient(drift: DriftResult | None) -> str:
        return "ran without it"

    running_task(joined, "joined")
    running_task(lenient, "lenient")

    with pytest.raises(AirflowSkipException, match="skipped with detect_drift: joined needs their drift"):
        run_under_test(None, "joined")
    assert run_under_test(None, "lenient") == "ran without it"  # notify on the skip path
