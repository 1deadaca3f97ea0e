"""Integration fixtures: a PipelineConfig pointing at the running local stack, with names of its own.

Nothing is mocked. Every config gets a fresh MongoDB database and collection, S3 prefix, MLflow
experiment and registered model, so tests (and concurrent runs of the suite) never see each other's
data. The stack must be up and its environment exported (``make test`` does both); without it the
tests fail with the fix, they do not skip.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import pytest

from include.retraining.core.config import PipelineConfig, load_config

STACK_VARIABLES = (
    "MONGO_URI",
    "MLFLOW_TRACKING_URI",
    "AWS_ENDPOINT_URL_S3",
    "S3_BUCKET",
    "MAIL_SINK_DIR",
    "SMTP_HOST",
    "SMTP_PORT",
    "AIRFLOW_CONN_MONGO_DEFAULT",
    "AIRFLOW_CONN_MONGO_ADMIN",
    "AIRFLOW_CONN_AWS_DEFAULT",
    "AIRFLOW_CONN_SMTP_DEFAULT",
)
HOW_TO_START = (
    "run `make up` first, then export its environment: `set -a && source .local/stack.env && set +a` "
    "(`make test` does both)"
)
ADMIN_CONN_ID = "mongo_admin"  # the stack's MongoDB administrator: setup and seeding, never the stages
# small and quick: the tests check the wiring, not the model
TEST_TRAINING = {"hyperparameters": {"max_iter": 30, "max_depth": 8}}


def unique_tag() -> str:
    return uuid.uuid4().hex[:10]


def _reachable(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=3):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def stack_env() -> Mapping[str, str]:
    """The local stack's environment, checked once: every variable set and every service listening."""
    missing = [name for name in STACK_VARIABLES if not os.environ.get(name)]
    if missing:
        pytest.fail(f"the local stack's environment is not set (missing {', '.join(missing)}): {HOW_TO_START}")
    services = {
        "MongoDB": os.environ["MONGO_URI"],
        "S3": os.environ["AWS_ENDPOINT_URL_S3"],
        "MLflow": os.environ["MLFLOW_TRACKING_URI"],
        "SMTP": f"smtp://{os.environ['SMTP_HOST']}:{os.environ['SMTP_PORT']}",
    }
    down = [f"{name} at {url}" for name, url in services.items() if not _reachable(url)]
    if down:
        pytest.fail(f"local stack services are not answering ({'; '.join(down)}): {HOW_TO_START}")
    return dict(os.environ)


@pytest.fixture(scope="session")
def config_factory(stack_env: Mapping[str, str]) -> Iterator[Callable[..., PipelineConfig]]:
    """``config_factory(*overrides)``: a config with unique names on the stack, overrides merged last.

    Each config gets the setup step an administrator runs in production (its indexes, the pipeline
    role's privileges on its collections): the stages run as the stack's least-privilege user
    (``mongo_default``); tests write source documents as ``mongo_admin``. The MongoDB databases it hands
    out are dropped at the end of the session; MLflow experiments and models keep their unique names (so
    a failed run can be inspected in the UI).
    """
    from include.retraining.adapters import mongo_setup

    databases: list[str] = []

    def make(*overrides: Mapping[str, Any] | None) -> PipelineConfig:
        tag = unique_tag()
        databases.append(f"it_{tag}")
        stack = {
            "model_name": f"it_model_{tag}",
            "source": {"database": f"it_{tag}", "collection": f"docs_{tag}", "lookback_hours": None},
            "storage": {"bucket": stack_env["S3_BUCKET"], "prefix": f"it-{tag}"},
            "monitoring": {"collection": f"drift_checks_{tag}"},
            "mlflow": {"tracking_uri": stack_env["MLFLOW_TRACKING_URI"], "experiment": f"it_experiment_{tag}"},
            "notify": {"recipients": [f"it-{tag}@example.com"]},
            "training": TEST_TRAINING,
        }
        config = load_config(stack, *overrides)
        databases.append(config.monitoring_database)
        mongo_setup.setup(config, ADMIN_CONN_ID)
        return config

    yield make

    from include.retraining.adapters import mongo

    client = mongo.client(ADMIN_CONN_ID)
    for database in set(databases):
        client.drop_database(database)


@pytest.fixture
def pipeline_config(config_factory: Callable[..., PipelineConfig]) -> PipelineConfig:
    return config_factory()
