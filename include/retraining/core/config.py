"""The one typed entry point for configuration.

Defaults live in ``configs/<name>.json`` (the vehicle-insurance example). A deployment overrides any
part with a JSON document (the ``retrain_config`` Airflow Variable), and a run overrides a few knobs
with its Params. Another collection and schema therefore need configuration only, no code.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from include.retraining.core.records import RecordError, parse

CONFIG_DIR = Path(__file__).parents[1] / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "vehicle_insurance.json"
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
    """Calibrated by ``make calibrate``; ``core/drift.py`` says what each knob does."""

    numeric_method: str = "ks"  # an Evidently method name for numeric columns
    categorical_method: str = "chi2_contingency"  # ... and for categorical ones
    dataset_rule: Literal["any_column", "share"] = "any_column"
    false_alarm_rate: float = 0.01  # any_column: the share of stationary checks allowed to alarm
    drift_share_threshold: float = 0.3  # share: the share of drifted columns at which the dataset drifted
    max_rows: int = 20000
    seed: int = 42


@dataclass(frozen=True)
class PerformanceConfig:
    """Performance drift: the champion scored on newly labeled rows vs its score at registration."""

    max_drop: float = 0.02  # a drop of the primary metric this small is tolerated
    confidence: float = 0.95  # one-sided level of the bootstrap bound on the current score
    bootstrap_rounds: int = 300
    min_labels: int = 200  # fewer labeled rows (or one class only): no verdict


@dataclass(frozen=True)
class TrainingConfig:
    estimator: str = "random_forest"
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    holdout_share: float = 0.2
    seed: int = 42
    max_rows: int | None = None  # train on a stratified sample of at most this many rows (None: all)


@dataclass(frozen=True)
class GateConfig:
    """Calibrated by ``make calibrate`` (README, "Calibration"): what each default buys is measured there."""

    primary_metric: str = "roc_auc"
    min_improvement: float = 0.005  # the challenger must be ahead by this much on the holdout...
    floor: float = 0.6
    confidence: float = 0.95  # ...in this share of paired bootstrap resamples (0.9 promoted 4% of equals)
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
    performance: PerformanceConfig = field(default_factory=PerformanceConfig)

    def __post_init__(self) -> None:
        _check_ranges(self)

    @property
    def monitoring_database(self) -> str:
        """The database of the drift checks and the monitor's state (``monitoring.database`` or the source's)."""
        return self.monitoring.database or self.source.database


def load_config(*overrides: Mapping[str, Any] | None, base: Path = DEFAULT_CONFIG) -> PipelineConfig:
    """Defaults from ``base``, then each override deep-merged in order (later wins)."""
    merged: dict[str, Any] = json.loads(base.read_text())
    for override in overrides:
        merged = deep_merge(merged, override or {})
    try:
        return parse(PipelineConfig, merged, "config")
    except RecordError as error:
        raise ConfigError(str(error)) from error


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
    return replace(config, **changes)


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
        ("drift.false_alarm_rate", config.drift.false_alarm_rate),
        ("gate.confidence", config.gate.confidence),
        ("performance.confidence", config.performance.confidence),
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
    if unknown := unknown_hyperparameters(config.training):
        problems.append(
            f"training.hyperparameters {unknown} are not parameters of {config.training.estimator}: "
            "set training.hyperparameters together with training.estimator"
        )
    if not config.notify.recipients:
        problems.append("notify.recipients is empty")
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))
