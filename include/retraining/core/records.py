"""The small records each stage returns and the next consumes.

They are frozen dataclasses of JSON types only, so ``to_dict()`` is the XCom value and ``parse``
rebuilds the record on the other side. DataFrames never travel through XCom: a record points at a
Parquet snapshot on S3 instead.
"""

from __future__ import annotations

import difflib
import functools
import json
from collections.abc import Mapping
from dataclasses import asdict, field, fields, is_dataclass
from types import UnionType
from typing import Any, Literal, Self, Union, get_args, get_origin, get_type_hints

from pydantic import ConfigDict, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass

# Records are built by our own stages and rebuilt from their XCom JSON: types are checked (a number is not
# taken for a string, an unknown key is refused), and a JSON list becomes the declared tuple.
RECORD = ConfigDict(extra="forbid")


class RecordError(ValueError):
    """A mapping does not have the shape of the record it should become."""


def parse[T](cls: type[T], data: Any, path: str = "record") -> T:
    """Build ``cls`` from a JSON-like mapping, nested records and tuples included, every value type-checked."""
    return coerce(cls, data, path)


def coerce(hint: Any, value: Any, path: str) -> Any:
    """``value`` (JSON types: an XCom, a config document) as the type ``hint`` names (a record, an optional
    record, a literal...), or a RecordError naming each offending key path, the value and the fix. It is
    read as the JSON it is, so a strict section (the configuration) takes a JSON list for a tuple and an
    object for a nested section, and still refuses "500" for 500."""
    if is_dataclass(value):
        return value
    try:
        return _adapter(hint).validate_json(json.dumps(value))
    except (TypeError, ValueError) as error:
        if not isinstance(error, ValidationError):  # not JSON at all
            raise RecordError(f"{path}: {type(value).__name__} is not a JSON value: {error}") from error
        raise RecordError(explain(error, path, hint)) from error


@functools.cache
def _adapter(hint: Any) -> TypeAdapter:
    return TypeAdapter(hint)


def explain(error: ValidationError, root: str, hint: Any) -> str:
    """One sentence per problem: ``<root>.<key path>: <what is wrong>, got <value>: <the fix>``."""
    return "; ".join(_problem(item, root, hint) for item in error.errors(include_url=False))


def _problem(item: Mapping[str, Any], root: str, hint: Any) -> str:
    loc = [part for part in item["loc"] if not _is_union_branch(part)]
    where = root + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    kind, ctx = item["type"], item.get("ctx") or {}
    if kind in ("missing", "missing_argument"):
        return f"{where} is missing: add it"
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        return f"{where}: unknown key: {_spelling_fix(hint, loc)}"
    if kind == "value_error":
        return f"{where}: {ctx.get('error', item['msg'])}" if loc else str(ctx.get("error", item["msg"]))
    got = repr(item["input"])
    got = got if len(got) <= 80 else got[:77] + "..."
    return f"{where}: got {got}, {_expectation(kind, ctx, item['msg'])}"


# pydantic error type -> what the value should have been, phrased as the fix
_EXPECTED = {
    "int_type": "expected a whole number: write it without quotes or decimals",
    "int_parsing": "expected a whole number: write it without quotes or decimals",
    "int_from_float": "expected a whole number: write it without quotes or decimals",
    "float_type": "expected a number: write it without quotes",
    "float_parsing": "expected a number: write it without quotes",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "string_type": "expected a string: write it in quotes",
    "tuple_type": "expected a list: write it as [...]",
    "list_type": "expected a list: write it as [...]",
    "dict_type": "expected an object: write it as {...}",
    "dataclass_type": "expected an object: write it as {...}",
    "dataclass_exact_type": "expected an object: write it as {...}",
    "finite_number": "expected a finite number",
}
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}


def _expectation(kind: str, ctx: Mapping[str, Any], message: str) -> str:
    if kind in _EXPECTED:
        return _EXPECTED[kind]
    if kind in _BOUNDS:
        return f"out of range: use a value {_BOUNDS[kind]} {next(iter(ctx.values()))}"
    if kind == "literal_error":
        return f"not one of {ctx['expected']}: use one of them"
    if kind == "too_short":
        return f"too short: list at least {ctx['min_length']}"
    if kind == "string_too_short":
        return "empty: write a name"
    return message[:1].lower() + message[1:]


def _is_union_branch(part: Any) -> bool:
    """pydantic names the branch of ``X | None`` it tried in the location (e.g. ``float``): not a key."""
    return isinstance(part, str) and (part in {"none", "int", "float", "str", "bool"} or "[" in part)


def _spelling_fix(hint: Any, loc: list[Any]) -> str:
    allowed = _keys_at(hint, loc[:-1])
    if allowed is None:
        return "remove it"
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1, cutoff=0.75)
    guess = f"did you mean {close[0]!r}? " if close else ""
    return f"{guess}remove it or fix its spelling; allowed: {sorted(allowed)}"


def _keys_at(hint: Any, loc: list[Any]) -> list[str] | None:
    """The field names of the record reached from ``hint`` by ``loc``, or None if that is no record."""
    for part in [*loc, None]:
        if get_origin(hint) in (Union, UnionType):
            hint = next((arg for arg in get_args(hint) if arg is not type(None)), hint)
        if get_origin(hint) is tuple and isinstance(part, int):
            hint = get_args(hint)[0]
            continue
        if not is_dataclass(hint):
            return None
        if part is None:
            return [f.name for f in fields(hint)]
        hint = get_type_hints(hint).get(part)
    return None


class Record:
    """Mixin: the XCom form of a record and back."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return parse(cls, data, cls.__name__)


@dataclass(frozen=True, config=RECORD)
class RunInfo(Record):
    """Who runs the pipeline and for which point in time."""

    dag_id: str
    run_id: str
    run_end: str  # ISO timestamp: the extract window ends here
    reason: str = "scheduled"  # why this run exists: scheduled, manual, drift_monitor, ...
    trigger: dict[str, Any] = field(default_factory=dict)  # conf from whoever triggered the run
    force_retrain: bool = False  # the force_retrain Param
    monitor_check: DriftResult | None = None  # the drift check drift_monitor ran on this run's window


@dataclass(frozen=True, config=RECORD)
class NewData(Record):
    """What woke the drift monitor: ``count`` documents in the window (watermark, latest]."""

    count: int
    watermark: str
    latest: str
    future: int = 0  # documents stamped beyond now + grace, left out of every window until then


@dataclass(frozen=True, config=RECORD)
class Snapshot(Record):
    uri: str
    rows: int
    content_hash: str
    window_start: str | None
    window_end: str
    columns: tuple[str, ...]


@dataclass(frozen=True, config=RECORD)
class ValidationReport(Record):
    snapshot: Snapshot  # the rows that passed; what training and drift read
    rows_in: int
    rows_quarantined: int
    quarantine_uri: str | None
    problems: tuple[str, ...]
    rows_unlabeled: int = 0  # valid rows awaiting their label: checked for drift, not trained or scored on


@dataclass(frozen=True, config=RECORD)
class Slice(Record):
    """A recorded window: its bounds (ISO timestamps, both inclusive), its rows and a hash of their ids."""

    start: str | None
    end: str | None
    rows: int
    ids_hash: str


@dataclass(frozen=True, config=RECORD)
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


@dataclass(frozen=True, config=RECORD)
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
    served_rows: int = 0  # of labeled_rows, those scored from the prediction the score DAG served (the rest re-scored)

    @property
    def drifted(self) -> bool:
        return self.status == "drift"


@dataclass(frozen=True, config=RECORD)
class ColumnDrift(Record):
    column: str
    method: str
    score: float
    threshold: float
    drifted: bool
    shift: str | None = None  # how far it moved, e.g. "mean 38.9 -> 64.2, sd 15.1 -> 15.0" (core.drift)


@dataclass(frozen=True, config=RECORD)
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


@dataclass(frozen=True, config=RECORD)
class Decision(Record):
    retrain: bool
    reason: str


@dataclass(frozen=True, config=RECORD)
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


@dataclass(frozen=True, config=RECORD)
class Evaluation(Record):
    primary_metric: str
    challenger: dict[str, float]
    champion: dict[str, float] | None
    champion_version: str | None
    improvement: float | None
    confidence: float | None  # bootstrap share of holdout resamples where the challenger wins
    passed: bool
    reason: str


@dataclass(frozen=True, config=RECORD)
class Registration(Record):
    model_name: str
    version: str
    model_uri: str
    tags: dict[str, str]


@dataclass(frozen=True, config=RECORD)
class Approval(Record):
    """A person's answer to a promotion's approval request (``gate.approval`` required; ``core.approval``)."""

    outcome: Literal["approved", "rejected", "timed_out", "not_asked"]
    reason: str  # e.g. "rejected by admin at 2026-12-07 03:40:12 UTC", "no answer within 12 h"
    by: str | None = None  # who answered
    at: str | None = None  # ISO: when the answer (or the timeout) came

    @property
    def asked(self) -> bool:
        return self.outcome != "not_asked"


@dataclass(frozen=True, config=RECORD)
class Promotion(Record):
    promoted: bool
    champion_version: str | None
    previous_champion: str | None
    reason: str


@dataclass(frozen=True, config=RECORD)
class Scoring(Record):
    """What a score run did: the champion's predictions for the documents of its open window."""

    model_version: str | None  # the champion that scored; None: there is none yet, nothing was scored
    window_start: str | None  # ISO: the champion's training data ends here (the open window is after it)
    window_end: str
    documents: int  # in the open window
    scored: int  # predictions written by this run
    already_scored: int  # documents that had a prediction from this version already
    unscorable: int  # documents that break the contract's feature checks: no prediction
    batches: int
    collection: str  # database.collection of the predictions
