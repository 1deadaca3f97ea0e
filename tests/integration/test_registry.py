"""registry.py against the stack's MLflow server (SQLite backend, artifacts proxied to S3)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from include.retraining.adapters import registry
from include.retraining.core.config import PipelineConfig
from include.retraining.core.records import RunInfo, Snapshot
from include.retraining.core.training import fit

pytestmark = [
    pytest.mark.integration,
    # MLflow's schema hint about the integer label column of the logged training data
    pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer:UserWarning"),
]


def run_info(run_id: str, **changes) -> RunInfo:
    return RunInfo(dag_id="test", run_id=run_id, run_end=datetime.now(UTC).isoformat(), **changes)


@dataclass(frozen=True)
class Logged:
    config: PipelineConfig
    run_id: str
    model: object
    model_uri: str
    train: pd.DataFrame
    snapshot: Snapshot


@pytest.fixture(scope="module")
def config(config_factory) -> PipelineConfig:
    return config_factory()


@pytest.fixture(scope="module")
def logged(config, make_frame) -> Logged:
    """One small RandomForest pipeline logged to a pipeline run (log_model takes ~12 s: once per module)."""
    frame = make_frame(600, seed=8)
    train = frame[[*config.contract.feature_names, "Response"]].assign(Response=frame["Response"].astype("int64"))
    model = fit(train, config.contract, config.training)
    snapshot = Snapshot(
        uri=f"s3://{config.storage.bucket}/{config.storage.prefix}/validated/abc.parquet",
        rows=len(train),
        content_hash="c0ffee" * 10 + "abcd",
        window_start=None,
        window_end=datetime.now(UTC).isoformat(),
        columns=tuple(train.columns),
    )
    run_id = registry.pipeline_run(config, run_info(f"logged-{config.model_name}"))
    params = {"estimator": "random_forest", "n_estimators": 30}
    model_uri = registry.log_training(
        config.mlflow, run_id, model, train, snapshot, "Response", params, {"rows_train": float(len(train))}
    )
    return Logged(config, run_id, model, model_uri, train, snapshot)


def test_pipeline_run_is_reused_for_the_same_airflow_run(config):
    run = run_info(f"manual__{config.model_name}", reason="drift_monitor", trigger={"monitor_run_id": "m-1"})

    first = registry.pipeline_run(config, run)
    again = registry.pipeline_run(config, run)
    other = registry.pipeline_run(config, run_info(f"other__{config.model_name}"))

    assert first == again
    assert other != first
    mlflow_run = registry.client(config.mlflow).get_run(first)
    tags = mlflow_run.data.tags
    assert tags["airflow_dag_id"] == "test"
    assert tags["airflow_run_id"] == run.run_id
    assert tags["trigger_reason"] == "drift_monitor"
    assert tags["trigger.monitor_run_id"] == "m-1"
    assert tags.get("code_version") == registry.code_version()  # absent outside a git checkout
    experiment = registry.client(config.mlflow).get_experiment(mlflow_run.info.experiment_id)
    assert experiment.name == config.mlflow.experiment


def test_no_champion_for_an_unknown_model(config):
    assert registry.champion(config.mlflow, f"{config.model_name}_never_registered") is None


def test_log_training_records_params_metrics_lineage_and_model(logged):
    client = registry.client(logged.config.mlflow)
    run = client.get_run(logged.run_id)

    assert logged.model_uri.startswith("models:/")
    assert run.data.params["estimator"] == "random_forest"
    assert run.data.params["n_estimators"] == "30"
    assert run.data.metrics["rows_train"] == len(logged.train)
    [dataset_input] = run.inputs.dataset_inputs
    assert dataset_input.dataset.source.find(logged.snapshot.uri) >= 0
    assert dataset_input.dataset.name == f"snapshot-{logged.snapshot.content_hash[:12]}"
    assert {tag.key: tag.value for tag in dataset_input.tags}.get("mlflow.data.context") == "training"


def test_logged_model_loads_back_with_the_allowlist_and_its_digest(logged):
    """skops refuses sklearn's Tree by default: the project's allowlist makes it load, the digest proves
    it is the file that was logged."""
    features = logged.train[logged.config.contract.feature_names]
    digest = registry.model_digest(logged.config.mlflow, logged.model_uri)

    loaded = registry.load_model(logged.config.mlflow, logged.model_uri, digest)

    assert type(loaded) is type(logged.model)
    np.testing.assert_array_equal(loaded.predict_proba(features), logged.model.predict_proba(features))
    assert registry.logged_model(logged.config.mlflow, logged.run_id) == logged.model_uri


def test_register_then_promote(logged):
    config = logged.config
    name = config.model_name
    tags = registry.tags_as_strings(
        {"snapshot_uri": logged.snapshot.uri, "drifted_columns": ["Age"], "gate_passed": "true", "skipped": None}
    )

    first = registry.register(config.mlflow, name, logged.model_uri, logged.run_id, tags)
    again = registry.register(config.mlflow, name, logged.model_uri, logged.run_id, tags)  # a retried task

    assert again.version == first.version
    assert first.model_name == name
    assert first.version == "1"
    assert registry.version_tags(config.mlflow, name, "1") == {
        "snapshot_uri": logged.snapshot.uri,
        "drifted_columns": '["Age"]',
        "gate_passed": "true",
    }
    client = registry.client(config.mlflow)
    assert client.get_model_version_by_alias(name, registry.CHALLENGER).version == "1"
    assert registry.champion(config.mlflow, name) is None  # registered, but nothing promoted yet

    registry.set_champion(config.mlflow, name, "1", "first model")
    champion = registry.champion(config.mlflow, name)

    assert champion == registry.Champion(version="1", model_uri=f"models:/{name}/1", snapshot_uri=logged.snapshot.uri)
    assert registry.version_tags(config.mlflow, name, "1")["promotion_reason"] == "first model"
    digest = registry.model_digest(config.mlflow, champion.model_uri)
    loaded = registry.load_model(config.mlflow, champion.model_uri, digest)  # the registry uri loads too
    features = logged.train[config.contract.feature_names].head(20)
    np.testing.assert_array_equal(loaded.predict_proba(features), logged.model.predict_proba(features))

    # another run's version (registered directly: this module logs one model only)
    second = registry.fluent(config.mlflow).register_model(
        logged.model_uri, name, tags={"snapshot_uri": "s3://elsewhere/x.parquet"}
    )
    client.set_registered_model_alias(name, registry.CHALLENGER, second.version)

    assert second.version == "2"
    assert registry.champion(config.mlflow, name).version == "1"  # registering never moves the champion

    registry.set_champion(config.mlflow, name, "2", "better")

    assert registry.champion(config.mlflow, name).snapshot_uri == "s3://elsewhere/x.parquet"
    aliases = client.get_registered_model(name).aliases
    assert aliases == {registry.CHAMPION: "2", registry.CHALLENGER: "2"}


def test_champion_without_snapshot_tag(logged):
    config = logged.config
    name = f"{config.model_name}_untagged"
    version = registry.register(config.mlflow, name, logged.model_uri, logged.run_id, {}).version
    registry.set_champion(config.mlflow, name, version, "rollback target")

    champion = registry.champion(config.mlflow, name)

    assert champion.version == version
    assert champion.snapshot_uri is None


def test_log_drift_and_evaluation_and_run_url(logged):
    from include.retraining.core.records import DriftResult, Evaluation

    config, run_id = logged.config, logged.run_id
    drift = DriftResult(
        status="drift",
        drift_share=0.5,
        drifted_columns=5,
        columns=(),
        threshold=0.3,
        rows_current=10,
        rows_reference=10,
        current_uri="s3://b/c",
        reference_uri="s3://b/r",
        champion_version="1",
        report_uri=f"runs:/{run_id}/drift/report.html",
        mlflow_run_id=run_id,
    )
    evaluation = Evaluation(
        primary_metric="roc_auc",
        challenger={"roc_auc": 0.8},
        champion={"roc_auc": 0.7},
        champion_version="1",
        improvement=0.1,
        confidence=1.0,
        passed=True,
        reason="better",
    )

    assert registry.log_drift_report(config.mlflow, run_id, "<html>report</html>") == drift.report_uri
    registry.log_drift(config.mlflow, run_id, drift)
    registry.log_evaluation(config.mlflow, run_id, evaluation)

    client = registry.client(config.mlflow)
    run = client.get_run(run_id)
    assert run.data.metrics["drift_share"] == 0.5
    assert run.data.metrics["drifted_columns"] == 5
    assert run.data.metrics["holdout_roc_auc"] == 0.8
    assert run.data.metrics["champion_holdout_roc_auc"] == 0.7
    assert run.data.metrics["gate_passed"] == 1.0
    assert run.data.tags["drift_status"] == "drift"
    assert run.data.tags["drift_report_uri"] == drift.report_uri
    assert registry.read_artifact(config.mlflow, drift.report_uri) == b"<html>report</html>"
    artifacts = {a.path for a in client.list_artifacts(run_id)} | {
        a.path for a in client.list_artifacts(run_id, "drift")
    }
    assert {"evaluation.json", "drift/report.html", "drift/result.json"} <= artifacts
    url = registry.run_url(config.mlflow, run_id)
    assert url == f"{config.mlflow.tracking_uri}/#/experiments/{run.info.experiment_id}/runs/{run_id}"


def test_tags_as_strings():
    assert registry.tags_as_strings({"a": "x", "b": ["y"], "c": None, "d": 3, "e": {"k": 1}}) == {
        "a": "x",
        "b": '["y"]',
        "d": "3",
        "e": '{"k": 1}',
    }
