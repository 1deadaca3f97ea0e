"""Everything that touches MLflow: tracking runs, models, the registry and its aliases.

One MLflow run per pipeline run (found again by its Airflow run id, so a retried task reuses it)
holds the drift report, the training parameters and metrics, the model and the evaluation.
Registry stages are deprecated in MLflow 3: ``challenger`` and ``champion`` are aliases, and moving
the champion is one alias set, never delete-then-set.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
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
MODEL_FILE = "model.skops"  # what mlflow.sklearn writes with skops serialisation
DRIFT_REPORT = "drift/report.html"
# The types skops may load beyond its defaults: exactly what the estimators of core/training.py need
# (tests/unit/test_training.py keeps this in step). Never read from an artifact: whoever can write the
# bucket could otherwise name any callable and have it run when the model loads.
TRUSTED_TYPES = (
    "numpy.dtype",
    "sklearn.tree._tree.Tree",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
)


@contextmanager
def _quiet_skops() -> Iterator[None]:
    """skops finds a function's module by reading an attribute of every imported module; on Airflow's
    deprecated modules each read warns (about 1,100 lines per training log). Silenced only here, where
    it arises: the same warning from our own code still shows."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"skops\.io\._utils")
        yield


class UntrustedModelError(RuntimeError):
    """A model artifact changed after registration or holds types outside the allowlist."""


@dataclass(frozen=True)
class Champion:
    version: str
    model_uri: str
    snapshot_uri: str | None
    model_sha256: str | None = None


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
    if found := find_pipeline_run(mlflow_config, run.run_id):
        return found
    experiment = mlflow_client.get_experiment_by_name(mlflow_config.experiment)
    experiment_id = (
        experiment.experiment_id if experiment else mlflow_client.create_experiment(mlflow_config.experiment)
    )
    tags = {"airflow_dag_id": run.dag_id, "airflow_run_id": run.run_id, "trigger_reason": run.reason}
    tags |= {f"trigger.{key}": str(value) for key, value in run.trigger.items()}
    if sha := code_version():
        tags["code_version"] = sha
    return mlflow_client.create_run(experiment_id, run_name=run.run_id, tags=tags).info.run_id


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
        model_sha256=version.tags.get("model_sha256"),
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
    """Log parameters, metrics, the snapshot's lineage and the model; return the model's uri.

    Call ``logged_model`` first: a retried task must not log a second model into the run."""
    from mlflow.models import infer_signature

    mlflow = fluent(mlflow_config)
    features = train.drop(columns=[label])
    with mlflow.start_run(run_id=run_id), _quiet_skops():
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
            skops_trusted_types=list(TRUSTED_TYPES),
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


def logged_model(mlflow_config: MlflowConfig, run_id: str) -> str | None:
    """The uri of the model this MLflow run already logged (READY), if any."""
    mlflow_client = client(mlflow_config)
    experiment_id = mlflow_client.get_run(run_id).info.experiment_id
    found = mlflow_client.search_logged_models(
        [experiment_id], filter_string=f"source_run_id = '{run_id}' AND name = '{MODEL_ARTIFACT}'"
    )
    ready = [model for model in found if str(model.status) == "READY"]
    return ready[0].model_uri if ready else None


def model_digest(mlflow_config: MlflowConfig, model_uri: str) -> str:
    """sha256 of the stored model file, recorded at registration and checked before every load."""
    with _downloaded(mlflow_config, model_uri) as model_file:
        return hashlib.sha256(model_file.read_bytes()).hexdigest()


def load_model(mlflow_config: MlflowConfig, model_uri: str, sha256: str | None) -> Any:
    """Load a model we registered: the file must still have its recorded hash, and skops may only
    instantiate the project's allowlisted types."""
    import skops.io

    if not sha256:
        raise UntrustedModelError(
            f"{model_uri} has no recorded model_sha256: only versions registered by this pipeline load; "
            "retrain (force_retrain) to register a verifiable version"
        )
    with _downloaded(mlflow_config, model_uri) as model_file:
        data = model_file.read_bytes()
    if (actual := hashlib.sha256(data).hexdigest()) != sha256:
        raise UntrustedModelError(
            f"{model_uri}: {MODEL_FILE} has sha256 {actual[:12]}..., registered {sha256[:12]}...: "
            "the artifact changed after registration; refusing to load it"
        )
    with _quiet_skops():
        untrusted = sorted(set(skops.io.get_untrusted_types(data=data)) - set(TRUSTED_TYPES))
        if untrusted:
            raise UntrustedModelError(f"{model_uri} holds types outside the allowlist {untrusted}; refusing to load it")
        return skops.io.loads(data, trusted=list(TRUSTED_TYPES))


@contextmanager
def _downloaded(mlflow_config: MlflowConfig, model_uri: str) -> Iterator[Path]:
    from mlflow.artifacts import download_artifacts

    with tempfile.TemporaryDirectory() as tmp:
        folder = download_artifacts(artifact_uri=model_uri, dst_path=tmp, tracking_uri=mlflow_config.tracking_uri)
        yield Path(folder) / MODEL_FILE


def log_evaluation(mlflow_config: MlflowConfig, run_id: str, evaluation: Evaluation) -> None:
    mlflow_client = client(mlflow_config)
    for name, value in evaluation.challenger.items():
        mlflow_client.log_metric(run_id, f"holdout_{name}", value)
    for name, value in (evaluation.champion or {}).items():
        mlflow_client.log_metric(run_id, f"champion_holdout_{name}", value)
    mlflow_client.log_metric(run_id, "gate_passed", float(evaluation.passed))
    mlflow_client.log_dict(run_id, evaluation.to_dict(), "evaluation.json")


def register(
    mlflow_config: MlflowConfig, model_name: str, model_uri: str, run_id: str, tags: dict[str, str]
) -> Registration:
    """The model version of this MLflow run, aliased ``challenger``: found if a try already created it."""
    mlflow_client = client(mlflow_config)
    version = run_version(mlflow_config, model_name, run_id)
    if version is None:
        version = str(fluent(mlflow_config).register_model(model_uri, model_name, tags=tags).version)
    mlflow_client.set_registered_model_alias(model_name, CHALLENGER, version)
    return Registration(model_name=model_name, version=version, model_uri=model_uri, tags=tags)


def run_version(mlflow_config: MlflowConfig, model_name: str, run_id: str) -> str | None:
    """The version registered from MLflow run ``run_id``, if any (one per run)."""
    found = client(mlflow_config).search_model_versions(f"name = '{model_name}' and run_id = '{run_id}'")
    return str(min(int(v.version) for v in found)) if found else None


def set_champion(mlflow_config: MlflowConfig, model_name: str, version: str, reason: str) -> None:
    """Tag, then move the alias: the alias set is the act, so a retry after a failed tag call acts again."""
    mlflow_client = client(mlflow_config)
    mlflow_client.set_model_version_tag(model_name, version, "promotion_reason", reason)
    mlflow_client.set_registered_model_alias(model_name, CHAMPION, version)


def set_version_tags(mlflow_config: MlflowConfig, model_name: str, version: str, tags: dict[str, str]) -> None:
    mlflow_client = client(mlflow_config)
    for key, value in tags.items():
        mlflow_client.set_model_version_tag(model_name, version, key, value)


def version_tags(mlflow_config: MlflowConfig, model_name: str, version: str) -> dict[str, str]:
    return dict(client(mlflow_config).get_model_version(model_name, version).tags)


def finish_run(mlflow_config: MlflowConfig, run_id: str) -> None:
    client(mlflow_config).set_terminated(run_id, "FINISHED")


def run_url(mlflow_config: MlflowConfig, run_id: str) -> str:
    experiment_id = client(mlflow_config).get_run(run_id).info.experiment_id
    return f"{mlflow_config.tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def tags_as_strings(values: dict[str, Any]) -> dict[str, str]:
    """MLflow tags are strings; structured values go in as JSON."""
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items() if v is not None}
