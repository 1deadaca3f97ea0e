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
from dataclasses import asdict, field, replace
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass

from include.retraining.core.records import RECORD, Record, RecordError, coerce, explain
from include.retraining.core.timestamps import TimestampType

DEFAULTS_FILE = Path(__file__).parents[1] / "configs" / "defaults.json"  # storage, MLflow, mail: shared
MODELS_DIR = Path(__file__).parents[2] / "models"  # one <model>.json per model (RETRAIN_MODELS_DIR overrides)
DEFAULT_MODEL = "vehicle_insurance"  # the example model: what a bare load_config() loads
DEFAULT_CONFIG = MODELS_DIR / f"{DEFAULT_MODEL}.json"
# No logical date before it runs (Airflow skips every task), so the default lies before any data we expect;
# with catchup off an early start date never backfills.
DEFAULT_START_DATE = "2000-01-01"
OBJECTIVES = ("binary", "multiclass", "regression")
Objective = Literal["binary", "multiclass", "regression"]
HIGHER, LOWER = "higher", "lower"
# objective -> its metrics and which way is better; the first is the default gate.primary_metric
METRICS: dict[str, dict[str, str]] = {
    "binary": {
        "roc_auc": HIGHER,
        "pr_auc": HIGHER,
        "f1": HIGHER,
        "precision": HIGHER,
        "recall": HIGHER,
        "accuracy": HIGHER,
    },
    "multiclass": {"macro_f1": HIGHER, "balanced_accuracy": HIGHER, "log_loss": LOWER, "roc_auc_ovr": HIGHER},
    "regression": {"rmse": LOWER, "mae": LOWER, "r2": HIGHER},
}
SCALED_METRICS = ("rmse", "mae")  # in the label's units: gate.min_improvement_unit label_std may scale them
# name -> the scikit-learn class per family, imported only when needed (config loading stays light)
ESTIMATOR_CLASSES = {
    "random_forest": {
        "classification": ("sklearn.ensemble", "RandomForestClassifier"),
        "regression": ("sklearn.ensemble", "RandomForestRegressor"),
    },
    "gradient_boosting": {
        "classification": ("sklearn.ensemble", "HistGradientBoostingClassifier"),
        "regression": ("sklearn.ensemble", "HistGradientBoostingRegressor"),
    },
    "logistic_regression": {"classification": ("sklearn.linear_model", "LogisticRegression")},
    "ridge": {"regression": ("sklearn.linear_model", "Ridge")},
}
ESTIMATORS = tuple(ESTIMATOR_CLASSES)
Estimator = Literal["random_forest", "gradient_boosting", "logistic_regression", "ridge"]  # ESTIMATOR_CLASSES' keys
LabelKind = Literal["int", "str", "bool", "float"]
# Evidently 0.7's registered two-sample tests per column type (tests/unit/test_config.py checks the lists
# against Evidently's registry); chi2_contingency is ours, registered by core/drift.py
NumericMethod = Literal[
    "anderson", "cramer_von_mises", "ed", "empirical_mmd", "es", "hellinger", "jensenshannon", "kl_div", "ks",
    "mannw", "psi", "t_test", "wasserstein",
]  # fmt: skip
CategoricalMethod = Literal[
    "chi2_contingency", "TVD", "chisquare", "fisher_exact", "g_test", "hellinger", "jensenshannon", "kl_div",
    "psi", "z",
]  # fmt: skip
# The configuration is what people write: types are strict (no "500" for 500, no 1 for true, unknown keys
# refused); a JSON list is still read as the declared tuple.
SECTION = ConfigDict(extra="forbid", strict=True)
LIST = Field(default=(), strict=False)
Name = Annotated[str, Field(min_length=1)]


class ConfigError(ValueError):
    """A configuration value is missing, unknown or out of range."""


@dataclass(frozen=True, config=SECTION)
class FeatureSpec:
    name: Name
    kind: Literal["numeric", "categorical"]
    categories: tuple[str, ...] = LIST
    min: float | None = None
    max: float | None = None
    max_null_share: float = Field(0.0, ge=0, le=1)


@dataclass(frozen=True, config=SECTION)
class LabelSpec:
    """The label and the task it poses. ``classes`` (binary, multiclass) are ints, strings or bools, in the
    given order; ``positive_class`` (binary) defaults to the last class; ``min``/``max`` bound a regression
    target."""

    name: Name
    objective: Objective = "binary"
    classes: tuple[Any, ...] = LIST
    positive_class: Any = None
    min: float | None = None
    max: float | None = None

    def __post_init__(self) -> None:
        if self.objective == "binary" and self.positive_class is None and self.classes:
            object.__setattr__(self, "positive_class", self.classes[-1])

    @property
    def is_classification(self) -> bool:
        return self.objective != "regression"

    @property
    def kind(self) -> LabelKind:
        """The type the label keeps end to end: the classes' kind, or float for a regression target."""
        if not self.is_classification:
            return "float"
        return value_kind(self.classes[0]) if self.classes else "int"  # type: ignore[return-value]


def value_kind(value: Any) -> str:
    """int, str, bool or the type's name; bool first: in Python a bool is also an int."""
    if isinstance(value, bool):
        return "bool"
    return {int: "int", str: "str"}.get(type(value), type(value).__name__)


@dataclass(frozen=True, config=SECTION)
class ContractConfig:
    label: LabelSpec
    features: tuple[FeatureSpec, ...] = Field(strict=False, min_length=1)
    min_rows: int = Field(500, ge=1)
    max_quarantine_share: float = Field(0.05, ge=0, le=1)

    @property
    def numeric_features(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "numeric"]

    @property
    def categorical_features(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "categorical"]

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]


@dataclass(frozen=True, config=SECTION)
class SourceConfig:
    database: Name
    collection: Name
    conn_id: str = "mongo_default"
    id_field: str = "_id"
    id_type: Literal["objectid", "string", "int", "auto"] = "objectid"  # auto: any BSON type, read as text
    timestamp_field: str = "ingested_at"
    timestamp_type: TimestampType = "date"  # how the field is stored: see core/timestamps.py
    lookback_hours: float | None = Field(None, gt=0)


@dataclass(frozen=True, config=SECTION)
class StorageConfig:
    bucket: Name
    conn_id: str = "aws_default"
    prefix: str = "retraining"


@dataclass(frozen=True, config=SECTION)
class MonitoringConfig:
    collection: str = "drift_checks"  # one document per drift check
    state_collection: str = "monitor_state"  # the drift monitor's watermark, one document per model
    min_new_documents: int = Field(1000, ge=1)  # the monitor checks drift once this many new documents arrived
    # how late a document may arrive after its timestamp (concurrent writers, clock skew): the monitor's
    # windows end this long before now, so a late document still lands in a window exactly once
    grace_seconds: float = Field(120.0, ge=0)
    # Where both collections live; empty: the source database. A separate database lets a server whose
    # roles are per database (SecantusDB) keep the source read-only for the pipeline, too.
    database: str | None = None


@dataclass(frozen=True, config=SECTION)
class DriftConfig:
    """Calibrated by ``make calibrate``; ``core/drift.py`` says what each knob does."""

    numeric_method: NumericMethod = "ks"  # an Evidently method name for numeric columns
    categorical_method: CategoricalMethod = "chi2_contingency"  # ... and for categorical ones
    dataset_rule: Literal["any_column", "share"] = "any_column"
    # any_column: the share of stationary checks allowed to alarm
    false_alarm_rate: float = Field(0.01, gt=0, le=0.5)
    # share: the share of drifted columns at which the dataset drifted
    drift_share_threshold: float = Field(0.3, gt=0, le=1)
    max_rows: int = Field(20000, ge=100)
    seed: int = 42
    # any_drift: data drift alone retrains; performance_when_labeled: when the new rows' labels have arrived
    # and the champion's score on them held, data drift alerts but does not retrain (the inputs moved in a
    # way the model already handles); without enough labels data drift still retrains
    retrain_on: Literal["any_drift", "performance_when_labeled"] = "any_drift"


@dataclass(frozen=True, config=SECTION)
class ScoringConfig:
    """The score DAG: the champion's predictions for the documents it never saw, one per (document, version)."""

    collection: str = "predictions"  # in the monitoring database, beside the drift checks
    batch_size: int = Field(5000, ge=100, le=1_000_000)  # documents read, scored and written at a time


@dataclass(frozen=True, config=SECTION)
class PerformanceConfig:
    """Performance drift: the champion scored on newly labeled rows vs its score at registration."""

    max_drop: float = Field(0.02, ge=0)  # a drop of the primary metric this small is tolerated
    confidence: float = Field(0.95, gt=0.5, lt=1)  # one-sided level of the bootstrap bound on the current score
    bootstrap_rounds: int = Field(300, ge=10)
    min_labels: int = Field(200, ge=10)  # fewer labeled rows (or one class only): no verdict


@dataclass(frozen=True, config=SECTION)
class TrainingConfig:
    estimator: Estimator = "random_forest"
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    # the out-of-time holdout: the newest share of the labeled rows newer than the champion's training data
    # (at least min_holdout_rows of them); both models are scored on it. The older new rows are trained on,
    # so a challenger learns what changed (README, "Which rows each model sees"; chosen by `make backtest`)
    holdout_share: float = Field(0.2, gt=0, lt=1)
    min_holdout_rows: int = Field(100, ge=1)
    # and at most this many (None: no cap): after a long calm, 20% of the new rows would be weeks of them,
    # and a challenger fitted before those weeks could not have learned a change that began in them
    max_holdout_rows: int | None = Field(2000, ge=1)
    # after the gate passed, the challenger is fitted again on its training rows plus the holdout (same
    # hyperparameters): the version registered has seen every labeled row up to the run's end
    refit: bool = True
    # weight each training row by 0.5 ** (its age in days / this): recent rows count more; None: equal weights
    recency_half_life_days: float | None = Field(None, gt=0)
    # on performance drift (the champion's relation to the label broke) the challenger learns only from the
    # rows newer than the champion's, when there are contract.min_rows of them: the older labels now mislead
    forget_on_performance_drift: bool = True
    seed: int = 42
    max_rows: int | None = Field(None, ge=1)  # train on a stratified sample of at most this many rows (None: all)
    # the extract, when source.lookback_hours is not set: a sliding window of this many days up to the
    # run's end; None: expanding (every document up to the run's end, which grows every night)
    window_days: float | None = Field(90.0, gt=0)


@dataclass(frozen=True, config=SECTION)
class GateConfig:
    """Read in the primary metric's direction: for a lower-is-better metric (RMSE, MAE, log-loss) ``floor``
    is the worst acceptable value, a ceiling, and ``min_improvement`` how much lower the challenger must
    score. ``primary_metric`` defaults to the objective's first metric; ``floor`` None: no floor.
    ``make calibrate`` (README, "Calibration") measures what the margin and confidence defaults buy."""

    primary_metric: str | None = None
    min_improvement: float = Field(0.005, ge=0)  # the challenger must be ahead by this much on the holdout...
    # ...read in the metric's own units, or (rmse, mae) in units of the holdout label's standard deviation:
    # a margin that means the same whether the label is in grams or in tonnes
    min_improvement_unit: Literal["metric", "label_std"] = "metric"
    floor: float | None = None
    # ...in this share of paired bootstrap resamples (0.9 promoted 4% of equals)
    confidence: float = Field(0.95, ge=0.5, lt=1)
    bootstrap_rounds: int = Field(300, ge=10)
    # required: a person approves each challenger the gate passed before it becomes champion (the retrain DAG
    # gains approval_request and approve before promote). The model's file decides it, as it decides the DAG's
    # shape at parse time; a run whose overrides require it on a DAG built without the approval step promotes nothing
    approval: Literal["automatic", "required"] = "automatic"
    # no answer within this time is a refusal; a waiting run holds the DAG's one active run, so keep it below
    # the schedule's interval (fractions allowed: 0.01 h = 36 s)
    approval_timeout_hours: float = Field(12.0, gt=0, le=168)


@dataclass(frozen=True, config=SECTION)
class MlflowConfig:
    tracking_uri: Name
    experiment: Name


@dataclass(frozen=True, config=SECTION)
class NotifyConfig:
    recipients: tuple[str, ...] = Field(strict=False, min_length=1)
    conn_id: str = "smtp_default"


@dataclass(frozen=True, config=SECTION)
class PipelineConfig:
    model_name: Name
    source: SourceConfig
    contract: ContractConfig
    storage: StorageConfig
    monitoring: MonitoringConfig
    drift: DriftConfig
    training: TrainingConfig
    gate: GateConfig
    mlflow: MlflowConfig
    notify: NotifyConfig
    start_date: str = DEFAULT_START_DATE  # ISO date: the DAGs' start date (onboarding: the earliest document's day)
    performance: PerformanceConfig = field(default_factory=PerformanceConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)

    def __post_init__(self) -> None:
        _check_ranges(self)
        if self.gate.primary_metric is None:  # resolved once here, so every stage reads the same metric
            default = next(iter(METRICS[self.contract.label.objective]))
            object.__setattr__(self, "gate", replace(self.gate, primary_metric=default))

    @property
    def objective(self) -> Objective:
        return self.contract.label.objective

    @property
    def monitoring_database(self) -> str:
        """The database of the drift checks and the monitor's state (``monitoring.database`` or the source's)."""
        return self.monitoring.database or self.source.database


@dataclass(frozen=True, config=RECORD)
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
    """The model file ``base`` over the shared defaults, then each override deep-merged in order (later wins).
    Keys starting with ``_`` are comments (JSON has none), e.g. the ``_onboarding`` notes of ``make onboard``."""
    return config_from(merged_config(base, *overrides))


def merged_config(base: Path, *overrides: Mapping[str, Any] | None) -> dict[str, Any]:
    merged = deep_merge(json.loads(DEFAULTS_FILE.read_text()), read_model_file(base))
    for override in overrides:
        merged = deep_merge(merged, override or {})
    return without_comments(merged)


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
        config = coerce(PipelineConfig, merged, "config")
    except RecordError as error:
        raise ConfigError(f"invalid configuration: {error}".replace(": invalid configuration:", ":")) from error
    if check_estimator:
        check_hyperparameters(config.training, config.objective)
    return config


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def without_comments(document: Mapping[str, Any]) -> dict[str, Any]:
    return {
        key: without_comments(value) if isinstance(value, Mapping) else value
        for key, value in document.items()
        if not key.startswith("_")
    }


def with_overrides(config: PipelineConfig, **sections: Mapping[str, Any]) -> PipelineConfig:
    """A copy with some fields of some sections replaced, e.g. ``gate={"floor": 0.7}``."""
    changes = {name: _replaced(getattr(config, name), f"config.{name}", values) for name, values in sections.items()}
    changed = _replaced(config, "config", changes)
    check_hyperparameters(changed.training, changed.objective)
    return changed


def _replaced[T](section: T, path: str, values: Mapping[str, Any]) -> T:
    try:
        return replace(section, **values)  # type: ignore[type-var]
    except ValidationError as error:
        raise ConfigError("invalid configuration: " + explain(error, path, type(section))) from error


def family(objective: str) -> str:
    return "regression" if objective == "regression" else "classification"


def estimator_class(name: str, objective: str = "binary") -> type:
    module, class_name = ESTIMATOR_CLASSES[name][family(objective)]
    return getattr(importlib.import_module(module), class_name)


def estimators_for(objective: str) -> list[str]:
    return [name for name, classes in ESTIMATOR_CLASSES.items() if family(objective) in classes]


def lower_is_better(metric: str) -> bool:
    return any(metrics.get(metric) == LOWER for metrics in METRICS.values())


def unknown_hyperparameters(training: TrainingConfig, objective: str = "binary") -> list[str]:
    """Caught at load time, so a wrong key fails before any data is read, not at the train task."""
    if training.estimator not in estimators_for(objective):
        return []
    parameters = estimator_class(training.estimator, objective)().get_params()
    return sorted(set(training.hyperparameters) - set(parameters))


def _check_ranges(config: PipelineConfig) -> None:
    objective = config.contract.label.objective
    problems = [*label_problems(config.contract.label)]
    metric = config.gate.primary_metric
    if metric is not None and metric not in METRICS[objective]:
        problems.append(
            f"gate.primary_metric {metric!r} is not a metric of objective {objective}: "
            f"use one of {list(METRICS[objective])} (or leave it out for {next(iter(METRICS[objective]))})"
        )
    scaled = metric or next(iter(METRICS[objective]))  # the default primary metric is resolved after this check
    if config.gate.min_improvement_unit == "label_std" and scaled not in SCALED_METRICS:
        problems.append(
            f"gate.min_improvement_unit label_std scales an error in the label's units ({list(SCALED_METRICS)}), "
            f"not {scaled}: set gate.min_improvement_unit to metric"
        )
    estimator = config.training.estimator
    if estimator not in estimators_for(objective):
        problems.append(
            f"training.estimator {estimator!r} has no {family(objective)} variant for objective {objective}: "
            f"use one of {estimators_for(objective)}"
        )
    problems.extend(_training_range_problems(config.training))
    if duplicates := sorted(
        {name for name in config.contract.feature_names if config.contract.feature_names.count(name) > 1}
    ):
        problems.append(f"contract.features lists {duplicates} more than once: keep one entry per column")
    if config.contract.label.name in config.contract.feature_names:
        problems.append(
            f"contract.label.name {config.contract.label.name!r} is also a feature: remove it from contract.features"
        )
    try:
        date.fromisoformat(config.start_date)
    except (TypeError, ValueError):
        problems.append(f"start_date {config.start_date!r} is not an ISO date: write it as YYYY-MM-DD")
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))


def _training_range_problems(training: TrainingConfig) -> list[str]:
    if training.max_holdout_rows is not None and training.max_holdout_rows < training.min_holdout_rows:
        return [
            f"training.max_holdout_rows ({training.max_holdout_rows}) must be at least training.min_holdout_rows "
            f"({training.min_holdout_rows}), or null for no cap"
        ]
    return []


def label_problems(label: LabelSpec) -> list[str]:
    """The label's declaration checked against its objective, before any data is read."""
    if label.objective not in OBJECTIVES:
        return []  # the record parser already refused it
    if not label.is_classification:
        return _regression_label_problems(label)
    problems = []
    classes = list(label.classes)
    kinds = sorted({value_kind(value) for value in classes})
    if len(classes) < 2:
        problems.append(f"contract.label.classes needs at least two classes for objective {label.objective}")
    elif label.objective == "binary" and len(classes) != 2:
        problems.append(
            f"contract.label.classes has {len(classes)} classes {classes}: objective binary needs exactly two; "
            "set contract.label.objective to multiclass"
        )
    if set(kinds) - {"int", "str", "bool"}:
        problems.append(
            f"contract.label.classes {classes} holds {kinds}: classes are ints, strings or bools "
            "(a numeric target to predict is objective regression)"
        )
    elif len(kinds) > 1:
        problems.append(
            f"contract.label.classes {classes} mixes {kinds}: a label has one type; write every class as the "
            "documents store it"
        )
    if len({(value_kind(value), value) for value in classes}) < len(classes):
        problems.append(f"contract.label.classes {classes} repeats a class: list each once")
    if label.objective == "binary" and classes and not is_one_of(label.positive_class, classes):
        problems.append(
            f"contract.label.positive_class {label.positive_class!r} is not one of contract.label.classes "
            f"{classes}: set it to one of them (of the same type)"
        )
    if label.objective == "multiclass" and label.positive_class is not None:
        problems.append("contract.label.positive_class is for objective binary only: remove it for multiclass")
    if label.min is not None or label.max is not None:
        problems.append(
            f"contract.label.min/max bound a regression target: remove them for objective {label.objective}"
        )
    return problems


def _regression_label_problems(label: LabelSpec) -> list[str]:
    problems = []
    if label.classes:
        problems.append(
            "contract.label.classes is for objective binary or multiclass: remove it for objective regression"
        )
    if label.positive_class is not None:
        problems.append("contract.label.positive_class is for objective binary only: remove it for regression")
    for bound in ("min", "max"):
        value = getattr(label, bound)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            problems.append(f"contract.label.{bound} must be a number, got {value!r}")
    if not problems and label.min is not None and label.max is not None and label.min > label.max:
        problems.append(f"contract.label.min {label.min:g} is above contract.label.max {label.max:g}: swap them")
    return problems


def is_one_of(value: Any, classes: list[Any]) -> bool:
    """Membership by type and value: ``True == 1`` in Python, but a bool class is not an int class."""
    return any(value_kind(value) == value_kind(item) and value == item for item in classes)


def check_hyperparameters(training: TrainingConfig, objective: str = "binary") -> None:
    if unknown := unknown_hyperparameters(training, objective):
        raise ConfigError(
            f"invalid configuration: training.hyperparameters {unknown} are not parameters of "
            f"{training.estimator} for objective {objective}: set training.hyperparameters together with "
            "training.estimator"
        )
