"""The small records each stage returns and the next consumes.

They are frozen dataclasses of JSON types only, so ``to_dict()`` is the XCom value and ``parse``
rebuilds the record on the other side. DataFrames never travel through XCom: a record points at a
Parquet snapshot on S3 instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from types import UnionType
from typing import Any, Literal, Self, Union, get_args, get_origin, get_type_hints


class RecordError(ValueError):
    """A mapping does not have the shape of the record it should become."""


def parse[T](cls: type[T], data: Any, path: str = "record") -> T:
    """Build dataclass ``cls`` from a JSON-like mapping, recursing into nested records and tuples."""
    if not isinstance(data, Mapping):
        raise RecordError(f"{path}: expected an object, got {type(data).__name__}")
    hints = get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise RecordError(f"{path}: unknown key(s) {unknown}; allowed: {sorted(known)}")
    kwargs = {name: coerce(hints[name], data[name], f"{path}.{name}") for name in known if name in data}
    try:
        return cls(**kwargs)
    except TypeError as error:  # a required key is missing
        raise RecordError(f"{path}: {error}") from error


def coerce(hint: Any, value: Any, path: str) -> Any:
    """``value`` as the type ``hint`` names: records are rebuilt, tuples and literals checked, the rest kept."""
    origin = get_origin(hint)
    if origin in (Union, UnionType):
        options = [arg for arg in get_args(hint) if arg is not type(None)]
        if value is None:
            return None
        if len(options) == 1:
            return coerce(options[0], value, path)
        return value
    if is_dataclass(hint):
        return parse(hint, value, path)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise RecordError(f"{path}: expected a list, got {value!r}")
        item_hint = get_args(hint)[0]
        return tuple(coerce(item_hint, item, f"{path}[{i}]") for i, item in enumerate(value))
    if origin is Literal and value not in get_args(hint):
        raise RecordError(f"{path}: {value!r} is not one of {list(get_args(hint))}")
    return value


class Record:
    """Mixin: the XCom form of a record and back."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return parse(cls, data, cls.__name__)


@dataclass(frozen=True)
class RunInfo(Record):
    """Who runs the pipeline and for which point in time."""

    dag_id: str
    run_id: str
    run_end: str  # ISO timestamp: the extract window ends here
    reason: str = "scheduled"  # why this run exists: scheduled, manual, drift_monitor, ...
    trigger: dict[str, Any] = field(default_factory=dict)  # conf from whoever triggered the run
    force_retrain: bool = False  # the force_retrain Param
    monitor_check: DriftResult | None = None  # the drift check drift_monitor ran on this run's window


@dataclass(frozen=True)
class NewData(Record):
    """What woke the drift monitor: ``count`` documents in the window (watermark, latest]."""

    count: int
    watermark: str
    latest: str
    future: int = 0  # documents stamped beyond now + grace, left out of every window until then


@dataclass(frozen=True)
class Snapshot(Record):
    uri: str
    rows: int
    content_hash: str
    window_start: str | None
    window_end: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class ValidationReport(Record):
    snapshot: Snapshot  # the rows that passed; what training and drift read
    rows_in: int
    rows_quarantined: int
    quarantine_uri: str | None
    problems: tuple[str, ...]
    rows_unlabeled: int = 0  # valid rows awaiting their label: checked for drift, not trained or scored on


@dataclass(frozen=True)
class Slice(Record):
    """A recorded window: its bounds (ISO timestamps, both inclusive), its rows and a hash of their ids."""

    start: str | None
    end: str | None
    rows: int
    ids_hash: str


@dataclass(frozen=True)
class WindowPlan(Record):
    current: Slice
    training: Slice
    holdout: Slice
    rows_unlabeled: int  # in the current slice: valid for drift, kept out of training and evaluation
    champion_training_end: str | None  # the holdout starts strictly after it
    problem: str | None = None  # why no challenger can be trained and judged on this window, if so
    fitted: Slice | None = None  # the rows the registered version was fitted on (set by the refit stage)

    @property
    def trainable(self) -> bool:
        return self.problem is None


@dataclass(frozen=True)
class PerformanceDrift(Record):
    """The champion scored on newly labeled rows, against its own holdout score at registration."""

    status: Literal["drift", "no_drift", "undetermined"]
    metric: str
    reference_value: float | None  # the champion's holdout score when it was registered
    current_value: float | None  # its score on the labeled rows of the new window
    lower: float | None  # bootstrap interval of current_value at the configured confidence (each side)
    upper: float | None
    labeled_rows: int  # rows with a label and a finite score (the rest are ignored)
    reason: str

    @property
    def drifted(self) -> bool:
        return self.status == "drift"


@dataclass(frozen=True)
class ColumnDrift(Record):
    column: str
    method: str
    score: float
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class DriftResult(Record):
    # no_new_data: fewer than contract.min_rows rows are newer than the champion's training data
    status: Literal["drift", "no_drift", "no_reference", "no_new_data"]
    drift_share: float
    drifted_columns: int
    columns: tuple[ColumnDrift, ...]
    threshold: float
    rows_current: int
    rows_reference: int
    current_uri: str
    reference_uri: str | None
    champion_version: str | None
    report_uri: str | None
    mlflow_run_id: str | None
    check_id: str | None = None
    windows: WindowPlan | None = None  # which rows each model sees (the retrain DAG's check only)
    performance: PerformanceDrift | None = None  # the champion on the window's labeled rows (concept drift)

    @property
    def drifted(self) -> bool:
        """Data drift: the inputs moved."""
        return self.status == "drift"

    @property
    def performance_drifted(self) -> bool:
        """Concept drift: the champion got worse on the labels that arrived."""
        return self.performance is not None and self.performance.drifted

    @property
    def alarm(self) -> bool:
        """Either kind of drift: a reason to alert and retrain."""
        return self.drifted or self.performance_drifted

    @property
    def drifted_column_names(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]


@dataclass(frozen=True)
class Decision(Record):
    retrain: bool
    reason: str


@dataclass(frozen=True)
class TrainingResult(Record):
    mlflow_run_id: str
    model_uri: str
    model_sha256: str  # of the stored model file; checked before every load
    holdout_uri: str
    rows_train: int
    rows_holdout: int
    params: dict[str, Any]
    metrics: dict[str, float]
    training_uri: str | None = None  # the rows fitted on: the drift reference once registered
    windows: WindowPlan | None = None
    refitted: bool = False  # fitted again on training + holdout after the gate passed (training.refit)


@dataclass(frozen=True)
class Evaluation(Record):
    primary_metric: str
    challenger: dict[str, float]
    champion: dict[str, float] | None
    champion_version: str | None
    improvement: float | None
    confidence: float | None  # bootstrap share of holdout resamples where the challenger wins
    passed: bool
    reason: str


@dataclass(frozen=True)
class Registration(Record):
    model_name: str
    version: str
    model_uri: str
    tags: dict[str, str]


@dataclass(frozen=True)
class Promotion(Record):
    promoted: bool
    champion_version: str | None
    previous_champion: str | None
    reason: str
