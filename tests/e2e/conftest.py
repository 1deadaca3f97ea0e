"""Shared by the e2e tests that drive the real Airflow group of the local stack
(`python -m scripts.local_stack up --airflow`); the group itself is driven by scripts/airflow_group.py.

The group is started once (idempotent, reused if already running) and left running: `make down` stops it.
Its processes' environment is fixed when it starts, so a test isolates its data through the Airflow
Variable ``retrain_config`` (set over the REST API, ``isolated_overrides``), never through ``AIRFLOW_VAR_*``
of the test process.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

import pytest

from scripts import airflow_group
from scripts.airflow_api import AirflowClient, read_env_file
from scripts.local_stack.supervisor import state_dir

STATE = state_dir()


def stack_env() -> dict[str, str]:
    """What `source .local/stack.env` exports (make test sources it before pytest)."""
    path = STATE / "stack.env"
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make up` first (make test does)")
    return read_env_file(path)


class AirflowGroup(airflow_group.AirflowGroup):
    """The group for a test: a start that fails the test with the logs."""

    def start(self, unpause: Iterable[str] = (), topology: str | None = None) -> AirflowClient:
        try:
            return super().start(unpause, topology)
        except airflow_group.AirflowGroupError as error:
            pytest.fail(str(error))


@pytest.fixture(scope="session")
def stack_environ() -> Iterator[dict[str, str]]:
    """The stack's variables in os.environ for the library calls of the tests (seeding, MLflow checks)."""
    env = stack_env()
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            if name not in os.environ:
                patch.setenv(name, value)
        yield env


@pytest.fixture(scope="session")
def airflow_group(stack_environ) -> AirflowGroup:
    """Not started yet: call ``.start(unpause=[...])`` from a module fixture (it is idempotent)."""
    return AirflowGroup(STATE)
