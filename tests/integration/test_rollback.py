"""Rollback against the real MLflow registry: champion v2 goes back to v1 (which it replaced), tags say who
and when, a mail says so; a retry of the same run changes nothing more; with nothing to go back to it is
refused and nothing moves."""

from __future__ import annotations

import uuid

import pytest

from include.retraining.adapters import registry
from include.retraining.core.records import RunInfo
from include.retraining.stages.rollback import RollbackRefused, rollback
from tests.integration.test_notify_smtp import delivered_to

pytestmark = pytest.mark.integration


def run_info() -> RunInfo:
    return RunInfo(dag_id="rollback_vehicle_insurance", run_id=f"manual__{uuid.uuid4().hex[:8]}", run_end="-")


def register_version(config, previous: str | None) -> str:
    """A registered version of a tiny model, carrying the lineage tag a retrain run would give it."""
    from sklearn.dummy import DummyClassifier

    mlflow = registry.fluent(config.mlflow)
    # not mlflow.set_experiment: an active experiment would outlive this test and refuse later tests' runs
    mlflow_client = registry.client(config.mlflow)
    found = mlflow_client.get_experiment_by_name(config.mlflow.experiment)
    experiment = found.experiment_id if found else mlflow_client.create_experiment(config.mlflow.experiment)
    with mlflow.start_run(experiment_id=experiment) as run:
        model_uri = mlflow.sklearn.log_model(DummyClassifier().fit([[0], [1]], [0, 1]), name="model").model_uri
    tags = registry.tags_as_strings({"previous_champion": previous})
    return registry.register(config.mlflow, config.model_name, model_uri, run.info.run_id, tags).version


def test_rollback_moves_the_champion_back_once_and_refuses_past_the_first(stack_env, pipeline_config):
    config = pipeline_config
    with pytest.raises(RollbackRefused, match="has no champion"):
        rollback(config, run_info())
    first = register_version(config, previous=None)
    registry.set_champion(config.mlflow, config.model_name, first, "first")
    second = register_version(config, previous=first)
    registry.set_champion(config.mlflow, config.model_name, second, "better")
    run = run_info()

    promotion = rollback(config, run)
    again = rollback(config, run)  # the task retried

    assert (promotion.champion_version, promotion.previous_champion) == (first, second)
    assert again == promotion
    assert registry.champion(config.mlflow, config.model_name).version == first
    tags = registry.version_tags(config.mlflow, config.model_name, first)
    assert (tags["rolled_back_from"], tags["rolled_back_by"]) == (second, run.run_id)
    assert "rolled_back_at" in registry.version_tags(config.mlflow, config.model_name, second)
    mail = delivered_to(stack_env, config.notify.recipients[0])  # exactly one, despite the retry
    assert f"rolled back from version {second} to {first}" in mail["Subject"]
    with pytest.raises(RollbackRefused, match="replaced no champion"):
        rollback(config, run_info())
    assert registry.champion(config.mlflow, config.model_name).version == first
