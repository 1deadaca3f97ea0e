"""MLflow tracking: one run per pipeline run (found again by its Airflow run id, so a retried task
reuses it), holding the drift report, the parameters and metrics and the evaluation; links for people."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from dataclasses import asdict
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from include.retraining.core.config import MlflowConfig, PipelineConfig, config_sha256
from include.retraining.core.records import DriftResult, Evaluation, RunInfo, WindowPlan

if TYPE_CHECKING:
    from mlflow import MlflowClient


DRIFT_REPORT = "drift/report.html"
RESOLVED_CONFIG = "config/resolved.json"  # the run's config as its first task resolved it


def client(mlflow_config: MlflowConfig) -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=mlflow_config.tracking_uri)


def fluent(mlflow_config: MlflowConfig) -> ModuleType:
    """The ``mlflow`` module pointed at the configured server, for its fluent API (runs, models)."""
    import mlflow

    mlflow.set_tracking_uri(mlflow_config.tracking_uri)
    return mlflow


def pipeline_run(config: PipelineConfig, run: RunInfo) -> str:
    """The MLflow run of this Airflow run, created on first use with the run's config (artifact) and its
    sha256 (tag ``config_sha256``), so a model version traces back to the exact settings it was made with."""
    mlflow_config = config.mlflow
    mlflow_client = client(mlflow_config)
    if found := find_pipeline_run(mlflow_config, run.run_id):
        return found
    experiment = mlflow_client.get_experiment_by_name(mlflow_config.experiment)
    experiment_id = (
        experiment.experiment_id if experiment else mlflow_client.create_experiment(mlflow_config.experiment)
    )
    tags = {"airflow_dag_id": run.dag_id, "airflow_run_id": run.run_id, "trigger_reason": run.reason}
    tags["config_sha256"] = config_sha256(config)
    tags |= {f"trigger.{key}": str(value) for key, value in run.trigger.items()}
    if sha := code_version():
        tags["code_version"] = sha
    run_id = mlflow_client.create_run(experiment_id, run_name=run.run_id, tags=tags).info.run_id
    mlflow_client.log_dict(run_id, asdict(config), RESOLVED_CONFIG)
    return run_id


def find_pipeline_run(mlflow_config: MlflowConfig, airflow_run_id: str) -> str | None:
    mlflow_client = client(mlflow_config)
    experiment = mlflow_client.get_experiment_by_name(mlflow_config.experiment)
    if experiment is None:
        return None
    found = mlflow_client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.airflow_run_id = '{airflow_run_id}'", max_results=1
    )
    return found[0].info.run_id if found else None


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
    if performance := result.performance:
        mlflow_client.set_tag(run_id, "performance_status", performance.status)
        if performance.current_value is not None:
            mlflow_client.log_metric(run_id, f"champion_new_labels_{performance.metric}", performance.current_value)
    if result.report_uri:
        mlflow_client.set_tag(run_id, "drift_report_uri", result.report_uri)


def window_tags(plan: WindowPlan) -> dict[str, str]:
    """``window.<slice>.<start|end|rows|ids_hash>``: the rows each model sees, on the run and its version."""
    tags = {}
    for name in ("current", "training", "holdout", "fitted"):
        window = getattr(plan, name)
        for key, value in (window.to_dict() if window else {}).items():
            if value is not None:
                tags[f"window.{name}.{key}"] = str(value)
    tags["window.rows_unlabeled"] = str(plan.rows_unlabeled)
    if plan.champion_training_end:
        tags["window.champion_training_end"] = plan.champion_training_end
    return tags


def log_windows(mlflow_config: MlflowConfig, run_id: str, plan: WindowPlan) -> None:
    mlflow_client = client(mlflow_config)
    for key, value in window_tags(plan).items():
        mlflow_client.set_tag(run_id, key, value)


def read_artifact(mlflow_config: MlflowConfig, artifact_uri: str) -> bytes:
    """An artifact's bytes, e.g. ``runs:/<run>/drift/report.html``."""
    with tempfile.TemporaryDirectory() as tmp:
        return download(mlflow_config, artifact_uri, Path(tmp)).read_bytes()


def artifact_size(mlflow_config: MlflowConfig, artifact_uri: str) -> int | None:
    """The size in bytes of a ``runs:/<run_id>/<path>`` file artifact, None if there is none."""
    run_id, _, path = artifact_uri.removeprefix("runs:/").partition("/")
    folder = path.rpartition("/")[0] or None
    found = [f.file_size for f in client(mlflow_config).list_artifacts(run_id, folder) if f.path == path]
    return found[0] if found else None


def download(mlflow_config: MlflowConfig, artifact_uri: str, folder: Path) -> Path:
    """An artifact (a file or a folder) downloaded into ``folder``: its local path."""
    from mlflow.artifacts import download_artifacts

    # a task log is no terminal: the progress bar's carriage returns became one line at level ERROR
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    return Path(
        download_artifacts(artifact_uri=artifact_uri, dst_path=str(folder), tracking_uri=mlflow_config.tracking_uri)
    )


def log_bytes(mlflow_config: MlflowConfig, run_id: str, data: bytes, artifact_path: str) -> str:
    """Store ``data`` (e.g. a PNG) as artifact ``artifact_path`` of the run; its ``runs:/`` URI."""
    folder, _, name = artifact_path.rpartition("/")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        client(mlflow_config).log_artifact(run_id, str(path), folder or None)
    return f"runs:/{run_id}/{artifact_path}"


def set_run_tag(mlflow_config: MlflowConfig, run_id: str, key: str, value: str) -> None:
    client(mlflow_config).set_tag(run_id, key, value)


def run_tag(mlflow_config: MlflowConfig, run_id: str, key: str) -> str | None:
    return client(mlflow_config).get_run(run_id).data.tags.get(key)


def run_metrics(mlflow_config: MlflowConfig, run_id: str) -> dict[str, float]:
    return dict(client(mlflow_config).get_run(run_id).data.metrics)


def log_evaluation(mlflow_config: MlflowConfig, run_id: str, evaluation: Evaluation) -> None:
    mlflow_client = client(mlflow_config)
    for name, value in evaluation.challenger.items():
        mlflow_client.log_metric(run_id, f"holdout_{name}", value)
    for name, value in (evaluation.champion or {}).items():
        mlflow_client.log_metric(run_id, f"champion_holdout_{name}", value)
    mlflow_client.log_metric(run_id, "gate_passed", float(evaluation.passed))
    mlflow_client.log_dict(run_id, evaluation.to_dict(), "evaluation.json")


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


def tags_as_strings(values: dict[str, Any]) -> dict[str, str]:
    """MLflow tags are strings; structured values go in as JSON."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items() if v is not None}


DENIED_CODES = {"PERMISSION_DENIED", "UNAUTHENTICATED", "CUSTOMER_UNAUTHORIZED"}


def denied(error: BaseException, mlflow_config: MlflowConfig, model_name: str) -> str | None:
    """One sentence for an MLflow permission error: the user, the server, what it needs; None otherwise."""
    from mlflow.exceptions import MlflowException

    if not isinstance(error, MlflowException) or error.error_code not in DENIED_CODES:
        return None
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    who = f"MLflow user {user!r}" if user else "an anonymous MLflow client (MLFLOW_TRACKING_USERNAME unset)"
    return (
        f"{who} was refused by {mlflow_config.tracking_uri} ({error.error_code}): give it EDIT on experiment "
        f"{mlflow_config.experiment!r} and MANAGE on registered model {model_name!r} (MLflow's permissions "
        f"API, or the UI's admin page), or set MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD"
    )
