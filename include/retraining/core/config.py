"""The one typed entry point for configuration.

A model is one JSON file in ``include/models/`` (its stem is the model id in the DAG ids), deep-merged
over the shared infrastructure defaults in ``configs/defaults.json``. A deployment overrides any part
with JSON documents (the ``retrain_config`` and ``retrain_config_<model>`` Airflow Variables), and a
run overrides a few knobs with its Params. Another collection and schema therefore need configuration
only, no code.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any, Literal

from include.retraining.core.records import Record, RecordError, parse

DEFAULTS_FILE = Path(__file__).parents[1] / "configs" / "defaults.json"  # storage, MLflow, mail: shared
MODELS_DIR = Path(__file__).parents[2] / "models"  # one <model>.json per model (RETRAIN_MODELS_DIR overrides)
DEFAULT_MODEL = "vehicle_insurance"  # the example model: what a bare load_config() loads
DEFAULT_CONFIG = MODELS_DIR / f"{DEFAULT_MODEL}.json"
# No logical date before it runs (Airflow skips every task), so the default lies before any data we expect;
# with catchup off an early start date never backfills.
DEFAULT_START_DATE = "2000-01-01"
METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc")
# name -> scikit-learn class, imported only when needed (config loading stays light)
ESTIMATOR_CLASSES = {
    "random_forest": ("sklearn.ensemble", "RandomForestClassifier"),
    "gradient_boosting": ("sklearn.ensemble", "HistGradientBoostingClassifier"),
    "logistic_regression": ("sklearn.linear_model", "LogisticRegression"),
}
ESTIMATORS = tuple(ESTIMATOR_CLASSES)


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range."""


@dataclass(frozen=True)
class FeatureSpec:
    name: str
    kind: Literal["numeric", "categorical"]
    categories: tuple[str, ...] = ()
    min: float | None = None
    max: float | None = None
    max_null_share: float = 0.0


@dataclass(frozen=True)
class LabelSpec:
    name: str
    classes: tuple[int, ...] = (0, 1)
    positive_class: int = 1


@dataclass(frozen=True)
class ContractConfig:
    label: LabelSpec
    features: tuple[FeatureSpec, ...]
    min_rows: int = 500
    max_quarantine_share: float = 0.05

    @property
    def numeric_features(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "numeric"]

    @property
    def categorical_features(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "categorical"]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]


@dataclass(frozen=True)
class SourceConfig:
    database: str
    collection: str
    conn_id: str = "mongo_default"
    id_field: str = "_id"
    id_type: Literal["objectid", "string", "int"] = "objectid"
    timestamp_field: str = "ingested_at"
    lookback_hours: float | None = None


@dataclass(frozen=True)
class StorageConfig:
    bucket: str
    conn_id: str = "aws_default"
    prefix: str = "retraining"


@dataclass(frozen=True)
class MonitoringConfig:
    collection: str = "drift_checks"  # one document per drift check
    state_collection: str = "monitor_state"  # the drift monitor's watermark, one document per model
    min_new_documents: int = 1000  # the monitor checks drift once this many new documents arrived
    # how late a document may arrive after its timestamp (concurrent writers, clock skew): the monitor's
    # windows end this long before now, so a late document still lands in a window exactly once
    grace_seconds: float = 120.0
    # Where both collections live; empty: the source database. A separate database lets a server whose
    # roles are per database (SecantusDB) keep the source read-only for the pipeline, too.
    database: str | None = None


@dataclass(frozen=True)
class DriftConfig:
    drift_share_threshold: float = 0.3
    max_rows: int = 20000
    seed: int = 42


@dataclass(frozen=True)
class TrainingConfig:
    estimator: str = "random_forest"
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    holdout_share: float = 0.2
    seed: int = 42
    max_rows: int | None = None  # train on a stratified sample of at most this many rows (None: all)


@dataclass(frozen=True)
class GateConfig:
    primary_metric: str = "roc_auc"
    min_improvement: float = 0.005
    floor: float = 0.6
    confidence: float = 0.9
    bootstrap_rounds: int = 300


@dataclass(frozen=True)
class MlflowConfig:
    tracking_uri: str
    experiment: str


@dataclass(frozen=True)
class NotifyConfig:
    recipients: tuple[str, ...]
    conn_id: str = "smtp_default"


@dataclass(frozen=True)
class PipelineConfig:
    model_name: str
    source: SourceConfig
    contract: ContractConfig
    storage: StorageConfig
    monitoring: MonitoringConfig
    drift: DriftConfig
    training: TrainingConfig
    gate: GateConfig
    mlflow: MlflowConfig
    notify: NotifyConfig
    start_date: str = DEFAULT_START_DATE  # ISO date: the DAGs' start date

    def __post_init__(self) -> None:
        _check_ranges(self)

    @property
    def monitoring_database(self) -> str:
        """The database of the drift checks and the monitor's state (``monitoring.database`` or the source's)."""
        return self.monitoring.database or self.source.database


@dataclass(frozen=True)
class ResolvedConfig(Record):
    """A run's config as its first task resolved it: the XCom every later task of the run reads."""

    model: str
    sha256: str
    config: PipelineConfig

    def __post_init__(self) -> None:
        if self.sha256 != config_sha256(self.config):
            raise RecordError(
                f"resolved config of {self.model}: sha256 {self.sha256[:12]} does not match its content "
                f"({config_sha256(self.config)[:12]}): the record was edited; re-run the run's first task"
            )


def resolved(model: str, config: PipelineConfig) -> ResolvedConfig:
    return ResolvedConfig(model, config_sha256(config), config)


def config_sha256(config: PipelineConfig) -> str:
    """The hash of the config's content (canonical JSON): equal hashes, equal configs."""
    canonical = json.dumps(asdict(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def load_config(*overrides: Mapping[str, Any] | None, base: Path = DEFAULT_CONFIG) -> PipelineConfig:
    """The model file ``base`` over the shared defaults, then each override deep-merged in order (later wins)."""
    return config_from(merged_config(base, *overrides))


def merged_config(base: Path, *overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    merged = deep_merge(json.loads(DEFAULTS_FILE.read_text()), read_model_file(base))
    for override in overrides:
        merged = deep_merge(merged, override or {})
    return merged


def read_model_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except ValueError as error:
        raise ConfigError(f"{path.name} is not valid JSON ({error}): fix the file") from error
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path.name} holds a {type(data).__name__}, not a JSON object: fix the file")
    return data


def config_from(merged: Mapping[str, Any], check_estimator: bool = True) -> PipelineConfig:
    """The typed config; ``check_estimator=False`` skips importing scikit-learn to check the
    hyperparameters (DAG parse time: the run's first task checks them)."""
    try:
        config = parse(PipelineConfig, merged, "config")
    except RecordError as error:
        raise ConfigError(str(error)) from error
    if check_estimator:
        check_hyperparameters(config.training)
    return config


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def with_overrides(config: PipelineConfig, **sections: Mapping[str, Any]) -> PipelineConfig:
    """A copy with some fields of some sections replaced, e.g. ``gate={"floor": 0.7}``."""
    changes = {name: replace(getattr(config, name), **values) for name, values in sections.items()}
    changed = replace(config, **changes)
    check_hyperparameters(changed.training)
    return changed


def estimator_class(name: str) -> type:
    module, class_name = ESTIMATOR_CLASSES[name]
    return getattr(importlib.import_module(module), class_name)


def unknown_hyperparameters(training: TrainingConfig) -> list[str]:
    """Caught at load time, so a wrong key fails before any data is read, not at the train task."""
    if training.estimator not in ESTIMATOR_CLASSES:
        return []
    return sorted(set(training.hyperparameters) - set(estimator_class(training.estimator)().get_params()))


def _check_ranges(config: PipelineConfig) -> None:
    problems = []
    if config.gate.primary_metric not in METRICS:
        problems.append(f"gate.primary_metric {config.gate.primary_metric!r} is not one of {list(METRICS)}")
    if config.training.estimator not in ESTIMATORS:
        problems.append(f"training.estimator {config.training.estimator!r} is not one of {list(ESTIMATORS)}")
    for name, value in (
        ("contract.max_quarantine_share", config.contract.max_quarantine_share),
        ("drift.drift_share_threshold", config.drift.drift_share_threshold),
        ("gate.confidence", config.gate.confidence),
    ):
        if not 0 <= value <= 1:
            problems.append(f"{name} must be within [0, 1], got {value}")
    if not 0 < config.training.holdout_share < 1:
        problems.append(f"training.holdout_share must be within (0, 1), got {config.training.holdout_share}")
    if config.training.max_rows is not None and config.training.max_rows < 1:
        problems.append(f"training.max_rows must be at least 1, got {config.training.max_rows}")
    if len(config.contract.label.classes) < 2:
        problems.append("contract.label.classes needs at least two classes")
    if not config.contract.features:
        problems.append("contract.features is empty")
    if not config.notify.recipients:
        problems.append("notify.recipients is empty")
    try:
        date.fromisoformat(config.start_date)
    except (TypeError, ValueError):
        problems.append(f"start_date {config.start_date!r} is not an ISO date: write it as YYYY-MM-DD")
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))


def check_hyperparameters(training: TrainingConfig) -> None:
    if unknown := unknown_hyperparameters(training):
        raise ConfigError(
            f"invalid configuration: training.hyperparameters {unknown} are not parameters of "
            f"{training.estimator}: set training.hyperparameters together with training.estimator"
        )
