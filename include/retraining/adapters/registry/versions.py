"""The MLflow model registry: one version per run, lineage tags, and the ``challenger`` and ``champion``
aliases (stages are deprecated in MLflow 3; moving the champion is one alias set, checked before acting)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from include.retraining.adapters.registry.runs import client, fluent
from include.retraining.core.config import MlflowConfig
from include.retraining.core.history import Registered
from include.retraining.core.records import Registration

if TYPE_CHECKING:
    pass


CHAMPION = "champion"


CHALLENGER = "challenger"
HOLDOUT_METRIC = "holdout_metric."  # version tags: the score on its own holdout, per metric


@dataclass(frozen=True)
class Champion:
    version: str
    model_uri: str
    snapshot_uri: str | None
    model_sha256: str | None = None
    training_uri: str | None = None  # the rows it was fitted on: the drift reference
    training_end: str | None = None  # the newest timestamp among them: later rows are new to it
    holdout_metrics: dict[str, float] = field(default_factory=dict)  # its scores when it was registered

    @property
    def reference_uri(self) -> str | None:
        """Its training rows; a version registered before they were recorded has its whole snapshot."""
        return self.training_uri or self.snapshot_uri


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
        training_uri=version.tags.get("training_uri"),
        training_end=version.tags.get("window.fitted.end") or version.tags.get("window.training.end"),
        holdout_metrics={
            key.removeprefix(HOLDOUT_METRIC): float(value)
            for key, value in version.tags.items()
            if key.startswith(HOLDOUT_METRIC)
        },
    )


def register(
    mlflow_config: MlflowConfig,
    model_name: str,
    model_uri: str,
    run_id: str,
    tags: dict[str, str],
    description: str | None = None,
) -> Registration:
    """The model version of this MLflow run with its lineage tags and description, aliased ``challenger``:
    found if a try already created it."""
    mlflow_client = client(mlflow_config)
    version = run_version(mlflow_config, model_name, run_id)
    if version is None:
        version = str(fluent(mlflow_config).register_model(model_uri, model_name, tags=tags).version)
    if description:
        mlflow_client.update_model_version(model_name, version, description=description)
    mlflow_client.set_registered_model_alias(model_name, CHALLENGER, version)
    return Registration(model_name=model_name, version=version, model_uri=model_uri, tags=tags)


def run_version(mlflow_config: MlflowConfig, model_name: str, run_id: str) -> str | None:
    """The version registered from MLflow run ``run_id``, if any (one per run)."""
    found = client(mlflow_config).search_model_versions(f"name = '{model_name}' and run_id = '{run_id}'")
    return str(min(int(v.version) for v in found)) if found else None


def append_to_description(mlflow_config: MlflowConfig, model_name: str, version: str, text: str) -> None:
    """Add ``text`` to the version's description once (a retried task does not repeat it)."""
    mlflow_client = client(mlflow_config)
    current = mlflow_client.get_model_version(model_name, version).description or ""
    if text not in current:
        mlflow_client.update_model_version(model_name, version, description=f"{current} {text}".strip())


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


def version_url(mlflow_config: MlflowConfig, model_name: str, version: str) -> str:
    """The model version's page in the MLflow UI."""
    from urllib.parse import quote

    return f"{mlflow_config.tracking_uri.rstrip('/')}/#/models/{quote(model_name)}/versions/{version}"


def registered_versions(mlflow_config: MlflowConfig, model_name: str, limit: int) -> list[Registered]:
    """The ``limit`` newest versions of the model and when each was registered, oldest first."""
    from datetime import UTC, datetime

    found = client(mlflow_config).search_model_versions(
        f"name = '{model_name}'", max_results=limit, order_by=["creation_timestamp DESC"]
    )
    return [
        Registered(str(v.version), datetime.fromtimestamp(v.creation_timestamp / 1000, UTC)) for v in reversed(found)
    ]
