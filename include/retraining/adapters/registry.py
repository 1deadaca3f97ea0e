"""Everything that touches MLflow: tracking runs, models, the registry and its aliases.

One MLflow run per pipeline run (found again by its Airflow run id, so a retried task reuses it)
holds the drift report, the training parameters and metrics, the model and the evaluation.
Registry stages are deprecated in MLflow 3: ``challenger`` and ``champion`` are aliases, and moving
the champion is one alias set, never delete-then-set.
"""

from __future__ import annotations

import json
import os
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from include.retraining.core.config import MlflowConfig
from include.retraining.core.records import DriftResult, Evaluation, Registration, RunInfo, Snapshot

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient

CHAMPION = "champion"
CHALLENGER = "challenger"
MODEL_ARTIFACT = "model"
DRIFT_REPORT = "drift/report.html"


@dataclass(frozen=True)
class Champion:
    version: str
    model_uri: str
    snapshot_uri: str | None


def client(mlflow_config: MlflowConfig) -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=mlflow_config.tracking_uri)


def fluent(mlflow_config: MlflowConfig) -> ModuleType:
    """The ``mlflow`` module pointed at the configured server, for its fluent API (runs, models)."""
    import mlflow

    mlflow.set_tracking_uri(mlflow_config.tracking_uri)
    return mlflow


def pipeline_run(mlflow_config: MlflowConfig, run: RunInfo) -> str:
    """The MLflow run of this Airflow run, created on first use."""
    mlflow_client = client(mlflow_config)
    experiment = mlflow_client.get_experiment_by_name(mlflow_config.experiment)
    experiment_id = (
        experiment.experiment_id if experiment else mlflow_client.create_experiment(mlflow_config.experiment)
    )
    found = mlflow_client.search_runs(
        [experiment_id], filter_string=f"tags.airflow_run_id = '{run.run_id}'", max_results=1
    )
    if found:
        return found[0].info.run_id
    tags = {"airflow_dag_id": run.dag_id, "airflow_run_id": run.run_id, "trigger_reason": run.reason}
    tags |= {f"trigger.{key}": str(value) for key, value in run.trigger.items()}
    if sha := code_version():
        tags["code_version"] = sha
    return mlflow_client.create_run(experiment_id, run_name=run.run_id, tags=tags).info.run_id


def code_version() -> str | None:
    """The git commit the DAGs run from: ``GIT_SHA`` in images, ``git`` in a checkout."""
    if sha := os.environ.get("GIT_SHA"):
        return sha
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None


def champion(mlflow_config: MlflowConfig, model_name: str) -> Champion | None:
    """The version behind the ``champion`` alias, or None when there is no model or no alias yet."""
    from mlflow.exceptions import MlflowException

    mlflow_client = client(mlflow_config)
    try:
        registered = mlflow_client.get_registered_model(model_name)
    except MlflowException as error:
        if error.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    if CHAMPION not in registered.aliases:
        return None
    version = mlflow_client.get_model_version_by_alias(model_name, CHAMPION)
    return Champion(
        version=str(version.version),
        model_uri=f"models:/{model_name}/{version.version}",
        snapshot_uri=version.tags.get("snapshot_uri"),
    )


def log_drift_report(mlflow_config: MlflowConfig, run_id: str, html: str) -> str:
    """Store the Evidently report once, as an artifact of the run (on S3 behind the MLflow server)."""
    client(mlflow_config).log_text(run_id, html, DRIFT_REPORT)
    return f"runs:/{run_id}/{DRIFT_REPORT}"


def log_drift(mlflow_config: MlflowConfig, run_id: str, result: DriftResult) -> None:
    mlflow_client = client(mlflow_config)
    mlflow_client.log_dict(run_id, result.to_dict(), "drift/result.json")
    mlflow_client.log_metric(run_id, "drift_share", result.drift_share)
    mlflow_client.log_metric(run_id, "drifted_columns", result.drifted_columns)
    mlflow_client.set_tag(run_id, "drift_status", result.status)
    if result.report_uri:
        mlflow_client.set_tag(run_id, "drift_report_uri", result.report_uri)


def read_artifact(mlflow_config: MlflowConfig, artifact_uri: str) -> bytes:
    """An artifact's bytes, e.g. ``runs:/<run>/drift/report.html``."""
    import tempfile

    from mlflow.artifacts import download_artifacts

    with tempfile.TemporaryDirectory() as tmp:
        path = download_artifacts(artifact_uri=artifact_uri, dst_path=tmp, tracking_uri=mlflow_config.tracking_uri)
        return Path(path).read_bytes()


def set_run_tag(mlflow_config: MlflowConfig, run_id: str, key: str, value: str) -> None:
    client(mlflow_config).set_tag(run_id, key, value)


def run_metrics(mlflow_config: MlflowConfig, run_id: str) -> dict[str, float]:
    return dict(client(mlflow_config).get_run(run_id).data.metrics)


def log_training(
    mlflow_config: MlflowConfig,
    run_id: str,
    model: Any,
    train: pd.DataFrame,
    snapshot: Snapshot,
    label: str,
    params: dict[str, Any],
    metrics: dict[str, float],
) -> str:
    """Log parameters, metrics, the snapshot's lineage and the model; return the model's uri."""
    from mlflow.models import infer_signature

    mlflow = fluent(mlflow_config)
    features = train.drop(columns=[label])
    with mlflow.start_run(run_id=run_id), quiet_skops_lookups():
        mlflow.log_params(params)
        mlflow.log_metrics(metrics)
        dataset = mlflow.data.from_pandas(
            train, source=snapshot.uri, targets=label, name=f"snapshot-{snapshot.content_hash[:12]}"
        )
        mlflow.log_input(dataset, context="training")
        signature = infer_signature(features, model.predict_proba(features.head(100)))
        info = mlflow.sklearn.log_model(
            model,
            name=MODEL_ARTIFACT,
            signature=signature,
            input_example=features.head(5),
            skops_trusted_types=own_model_types(model),
            pip_requirements=model_requirements(),
        )
    return info.model_uri


def model_requirements() -> list[str]:
    """What serving the model needs, pinned to what trained it.

    Given explicitly because MLflow's inference re-imports the model in a subprocess (about 12 s per
    training run) only to find these same packages.
    """
    from importlib.metadata import version

    return [f"{name}=={version(name)}" for name in ("scikit-learn", "skops", "pandas", "numpy", "scipy")]


def own_model_types(model: Any) -> list[str]:
    """The types skops refuses by default in a model we just trained ourselves, e.g. sklearn's Tree.

    MLflow saves scikit-learn models with skops, which only loads types it is told to trust; the
    list is stored with the model so every later load of this version trusts exactly these.
    """
    import skops.io

    with quiet_skops_lookups():
        return skops.io.get_untrusted_types(data=skops.io.dumps(model))


def load_model(mlflow_config: MlflowConfig, model_uri: str) -> Any:
    with quiet_skops_lookups():
        return fluent(mlflow_config).sklearn.load_model(model_uri)


@contextmanager
def quiet_skops_lookups() -> Iterator[None]:
    """skops looks every function of a model up in every loaded module (``skops.io._utils.whichmodule``);
    Airflow's deprecated-import shims answer each lookup with a FutureWarning, some 1,100 lines that
    would bury the task log (and the gate's sentence) under noise."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"skops\.io\._utils")
        yield


def log_evaluation(mlflow_config: MlflowConfig, run_id: str, evaluation: Evaluation) -> None:
    mlflow_client = client(mlflow_config)
    for name, value in evaluation.challenger.items():
        mlflow_client.log_metric(run_id, f"holdout_{name}", value)
    for name, value in (evaluation.champion or {}).items():
        mlflow_client.log_metric(run_id, f"champion_holdout_{name}", value)
    mlflow_client.log_metric(run_id, "gate_passed", float(evaluation.passed))
    mlflow_client.log_dict(run_id, evaluation.to_dict(), "evaluation.json")


def register(
    mlflow_config: MlflowConfig, model_name: str, model_uri: str, tags: dict[str, str], description: str | None = None
) -> Registration:
    """A new model version carrying its lineage and a description, aliased ``challenger``."""
    version = fluent(mlflow_config).register_model(model_uri, model_name, tags=tags)
    mlflow_client = client(mlflow_config)
    if description:
        mlflow_client.update_model_version(model_name, version.version, description=description)
    mlflow_client.set_registered_model_alias(model_name, CHALLENGER, version.version)
    return Registration(model_name=model_name, version=str(version.version), model_uri=model_uri, tags=tags)


def append_to_description(mlflow_config: MlflowConfig, model_name: str, version: str, text: str) -> None:
    """Add ``text`` to the version's description once (a retried task does not repeat it)."""
    mlflow_client = client(mlflow_config)
    current = mlflow_client.get_model_version(model_name, version).description or ""
    if text not in current:
        mlflow_client.update_model_version(model_name, version, description=f"{current} {text}".strip())


def set_champion(mlflow_config: MlflowConfig, model_name: str, version: str, reason: str) -> None:
    mlflow_client = client(mlflow_config)
    mlflow_client.set_registered_model_alias(model_name, CHAMPION, version)
    mlflow_client.set_model_version_tag(model_name, version, "promotion_reason", reason)


def version_tags(mlflow_config: MlflowConfig, model_name: str, version: str) -> dict[str, str]:
    return dict(client(mlflow_config).get_model_version(model_name, version).tags)


def finish_run(mlflow_config: MlflowConfig, run_id: str) -> None:
    client(mlflow_config).set_terminated(run_id, "FINISHED")


def run_url(mlflow_config: MlflowConfig, run_id: str) -> str:
    """The run's page in the MLflow UI."""
    experiment_id = client(mlflow_config).get_run(run_id).info.experiment_id
    return f"{mlflow_config.tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def artifact_url(mlflow_config: MlflowConfig, artifact_uri: str) -> str:
    """An http link a person can open for a ``runs:/<run_id>/<path>`` artifact, e.g. the drift report: the
    run's artifact view in the MLflow UI, which shows an HTML artifact rendered (the server's own
    ``get-artifact`` endpoint sends it as a download)."""
    run_id, _, path = artifact_uri.removeprefix("runs:/").partition("/")
    return f"{run_url(mlflow_config, run_id)}/artifactPath/{path}"


def version_url(mlflow_config: MlflowConfig, model_name: str, version: str) -> str:
    """The model version's page in the MLflow UI."""
    from urllib.parse import quote

    return f"{mlflow_config.tracking_uri.rstrip('/')}/#/models/{quote(model_name)}/versions/{version}"


def tags_as_strings(values: dict[str, Any]) -> dict[str, str]:
    """MLflow tags are strings; structured values go in as JSON."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items() if v is not None}
