"""A first model config from a sample of a collection: what ``make onboard`` writes for review.

Pure inference over sampled documents and a few whole-collection counts (the adapter reads them):
features and their kind, categories, the label's objective and classes, the ``_id`` type, the timestamp
field and how it is stored, and the window, row minimums and gate sized together from the collection's
rate (rows per day) and size. Every guess that could be wrong is listed as *unsure*, so the reviewer
knows what to check before committing the file.

The contract bounds only what is physical: a quantity never negative in the sample gets ``min: 0``;
the ranges seen in the sample are recorded in the notes (drift watches them), never turned into
quarantine bounds, which would remove the tail of the distribution (often the rare class) from training
and evaluation. Before anything is written, the config is run on the sample as the first run would see
it: the contract (``core.contract``) and the window plan (``core.windows``, the pipeline's functions),
and the traps of ``core.traps`` (a label sorted with the timestamp, one instant, a class missing).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from include.retraining.core import traps, windows
from include.retraining.core.config import (
    DEFAULTS_FILE,
    ConfigError,
    PipelineConfig,
    config_from,
    deep_merge,
    is_one_of,
    without_comments,
)
from include.retraining.core.contract import DataContractError, validate_frame
from include.retraining.core.timestamps import MILLIS_ABOVE, from_stored, is_number, stored_type

MAX_CATEGORIES = 50  # up to this many distinct strings: a closed set, listed in the contract
# more, up to this many (the most gradient boosting's native categories take), is still a category when
# each value repeats MIN_REPEATS times on average in the sample (95 airports in 5,000 flights), left open:
# a value the sample missed is not quarantined; beyond that it is free text or an identifier
MAX_OPEN_CATEGORIES = 250
MIN_REPEATS = 20
MIN_SEEN = 5  # a sample of part of a collection that saw a value fewer times has likely missed others
MAX_CLASSES = 20  # more distinct integer labels than this is a count to regress, not classes
MIN_ROWS = 500  # the pipeline's default contract.min_rows, lowered for small collections
MIN_HOLDOUT_ROWS = 100  # the pipeline's default training.min_holdout_rows, lowered the same way
FLOOR_ROWS = 20  # no minimum is set below this: fewer rows train and judge nothing
HOLDOUT_SHARE, MAX_HOLDOUT_ROWS = 0.2, 2000  # the pipeline's training.holdout_share and max_holdout_rows
WINDOW_DAYS = 90  # the sliding window `make backtest` measured (README, "Which rows each model sees")...
WINDOW_ROWS = 2000  # ...widened, for a slow collection, until it holds about this many rows
HALF_LIFE_DAYS = 7  # the recency half-life `make backtest` measured at 800 rows a day...
HALF_LIFE_ROWS = 1000  # ...lengthened, for a slow collection, until a half-life holds about this many rows
MIN_IMPROVEMENT = 0.005  # the gate's margin: of the metric (AUC, F1), or of the label's std (regression)
CONFIDENCE = 0.95  # the calibrated gate confidence (README, "Calibration": 0.9 promoted 4% of equals)
TIMESTAMP_HINTS = ("ingested", "created", "updated", "timestamp", "time", "date", "_at")
# per objective: the estimator, its hyperparameters in full, the gate's primary metric
TRAINING = {
    "binary": ("gradient_boosting", {"class_weight": "balanced"}, "roc_auc"),
    "multiclass": ("gradient_boosting", {"class_weight": "balanced"}, "macro_f1"),
    "regression": ("gradient_boosting", {}, "rmse"),
}
BOOSTING = {"max_iter": 300, "learning_rate": 0.05, "max_depth": 4, "min_samples_leaf": 20, "early_stopping": True}
PIPELINE_CONN_ID = "mongo_default"  # the pipeline reads as its own least-privilege user, whoever onboarded
# the BSON type names the adapter counts ``_id`` values by -> source.id_type
ID_TYPES = {"objectId": "objectid", "string": "string", "int": "int", "long": "int"}


@dataclass(frozen=True)
class Onboarding:
    config: dict[str, Any]
    inferred: list[str]
    unsure: list[str]
    choices: list[str] = field(default_factory=list)  # why each sized or gate value was chosen
    sample_ranges: dict[str, str] = field(default_factory=dict)  # information, not contract bounds
    run_date: str | None = None  # a logical date inside the data: the first run's


@dataclass(frozen=True)
class CollectionFacts:
    """What the adapter read: a sample, and counts over the whole collection."""

    database: str
    collection: str
    documents: int
    sample: list[dict[str, Any]]
    id_types: dict[str, int]  # BSON type name -> count
    timestamp_field: str
    timestamp_types: dict[str, int]  # "date" / "string" / "number" -> count
    earliest: datetime | None
    latest: datetime | None
    off_form: int = 0  # documents whose timestamp is in another form (or ISO layout) than the inferred one


def guess_timestamp_field(sample: list[dict[str, Any]], exclude: set[str]) -> str | None:
    """The field whose values are timestamps in most documents; names like ``*_at`` or ``*time*`` win ties."""
    scores = Counter()
    for doc in sample:
        for name, value in doc.items():
            if name not in exclude and _looks_like_a_moment(value):
                scores[name] += 1
    if not scores:
        return None
    return max(scores, key=lambda name: (scores[name], any(hint in name.lower() for hint in TIMESTAMP_HINTS)))


def _looks_like_a_moment(value: Any) -> bool:
    if isinstance(value, datetime) or (isinstance(value, str) and stored_type(value) == "iso_string"):
        return True
    # epoch numbers of 2001..2033, in seconds or milliseconds
    return is_number(value) and (1e9 <= value <= 2e9 or 1e12 <= value <= 2e12)


def timestamp_type(facts: CollectionFacts) -> tuple[str, list[str]]:
    """The stored form of most documents' timestamps, and what is unsure about it."""
    counts = facts.timestamp_types
    if not counts:
        return "date", [f"no document stores {facts.timestamp_field!r} as a date, string or number: pass TIMESTAMP="]
    bson = max(counts, key=counts.get)
    unsure = []
    if len(counts) > 1:
        mixed = ", ".join(f"{n:,} as {kind}" for kind, n in counts.items())
        unsure.append(f"{facts.timestamp_field} is stored in several forms ({mixed}): only the {bson}s are windowed")
    if bson == "date":
        return "date", unsure
    if bson == "string":
        return "iso_string", unsure
    numbers = [doc[facts.timestamp_field] for doc in facts.sample if is_number(doc.get(facts.timestamp_field))]
    millis = sum(abs(value) > MILLIS_ABOVE for value in numbers) > len(numbers) / 2
    return ("epoch_millis" if millis else "epoch_seconds"), unsure


def id_type(counts: dict[str, int]) -> str:
    kinds = {ID_TYPES.get(bson, "auto") for bson in counts}
    return kinds.pop() if len(kinds) == 1 else "auto"


def label_spec(name: str, values: list[Any]) -> tuple[dict[str, Any], list[str]]:
    """The label's objective and classes (their real type, sorted); a regression target bounded only by its
    sign."""
    present = [value for value in values if value is not None]
    if not present:
        raise ValueError(f"label {name!r}: no sampled document has it; check LABEL= (field names are case-sensitive)")
    distinct = sorted(set(present), key=lambda value: (not is_number(value), value if is_number(value) else str(value)))
    unsure = []
    if all(isinstance(value, bool) for value in distinct) or all(isinstance(value, str) for value in distinct):
        objective = "binary" if len(distinct) == 2 else "multiclass"
        if len(distinct) > MAX_CATEGORIES:
            raise ValueError(f"label {name!r}: {len(distinct)} distinct strings in the sample, too many classes")
    elif all(is_number(value) for value in distinct):
        integral = all(float(value).is_integer() for value in distinct)
        objective = "regression"
        if integral and len(distinct) == 2:
            objective = "binary"
        elif integral and len(distinct) <= MAX_CLASSES:
            objective = "multiclass"
            unsure.append(f"{name}: {len(distinct)} integer values read as classes; a count to predict is regression")
    else:
        kinds = sorted({type(value).__name__ for value in distinct})
        raise ValueError(f"label {name!r} mixes value types {kinds}: clean the label first")
    if objective == "regression":
        return {"name": name, "objective": "regression"} | sign_bound(present), unsure
    classes = [int(value) if is_number(value) and not isinstance(value, bool) else value for value in distinct]
    spec: dict[str, Any] = {"name": name, "objective": objective, "classes": classes}
    if objective == "binary":
        counts = Counter(present)
        spec["positive_class"] = positive_class(classes, counts)
        if not ({True, False} == set(classes) or {0, 1} == set(classes)):
            unsure.append(f"{name}: positive_class {spec['positive_class']!r} is the rarer class; check it")
    return spec, unsure


def sign_bound(numbers: list[Any]) -> dict[str, float]:
    """The one bound a sample can tell for sure: a quantity it never saw negative is not negative."""
    return {"min": 0.0} if min(numbers) >= 0 else {}


def observed_range(numbers: list[Any]) -> str:
    """What the sample held, for the notes: the reviewer sees the scale, drift watches the distribution."""
    whole = all(float(value).is_integer() for value in numbers)
    return f"{min(numbers):g} .. {max(numbers):g}" + (", whole numbers" if whole else "")


@dataclass(frozen=True)
class Features:
    specs: list[dict[str, Any]]
    notes: list[str]
    ranges: dict[str, str]


def feature_specs(sample: list[dict[str, Any]], exclude: set[str], complete: bool = True) -> Features:
    """One spec per top-level field of the sample (minus ``exclude``): numeric or categorical; calendar
    columns whose cycle outlasts a week and identifiers are left out, each with a note."""
    names = sorted({name for doc in sample for name in doc} - exclude)
    features, notes, ranges = [], [], {}
    for name in names:
        values = [doc.get(name) for doc in sample]
        column = pd.Series([value if is_number(value) else None for value in values], dtype=float)
        if (kind := traps.calendar_kind(name, column)) and column.notna().all():
            notes.append(traps.calendar_note(name, kind))
            if kind in traps.DRIFTING_CALENDAR:
                continue
        elif column.notna().all() and traps.is_identifier(column):
            notes.append(traps.identifier_note(name))
            continue
        spec, note = feature_spec(name, values, complete)
        if spec:
            features.append(spec)
            if spec["kind"] == "numeric":
                ranges[name] = observed_range([value for value in values if is_number(value)])
        if note:
            notes.append(note)
    return Features(features, notes, ranges)


def feature_spec(name: str, values: list[Any], complete: bool = True) -> tuple[dict[str, Any] | None, str | None]:
    """``complete``: the sample is the whole collection (no value can have been missed)."""
    present = [value for value in values if value is not None]
    if not present:
        return None, f"{name}: always missing in the sample, left out"
    numbers = [value for value in present if is_number(value) and math.isfinite(value)]
    strings = [value for value in present if isinstance(value, str)]
    spec: dict[str, Any] | None = None
    notes = []
    if len(numbers) == len(present):
        spec = {"name": name, "kind": "numeric"} | sign_bound(numbers)
    elif len(strings) == len(present):
        spec, note = categorical_spec(name, strings, complete)
        if spec is None:
            return None, note
        notes += [note] if note else []
    else:
        kinds = sorted({type(value).__name__ for value in present})
        return None, f"{name}: values of types {kinds} (neither all numbers nor all strings), left out"
    null_share = 1 - len(present) / len(values)
    if null_share:
        spec["max_null_share"] = round(min(1.0, 2 * null_share + 0.01), 2)
        notes.append(
            f"{name}: {null_share:.1%} missing in the sample; max_null_share {spec['max_null_share']} allows twice that"
        )
    return spec, "; ".join(notes) or None


def categorical_spec(name: str, strings: list[str], complete: bool = True) -> tuple[dict[str, Any] | None, str | None]:
    """A closed set of up to ``MAX_CATEGORIES`` values when the sample is the whole collection or saw each
    value ``MIN_SEEN`` times; else, while the values repeat (cardinality small next to the rows), an open
    category: a value the sample missed is learned as unknown instead of quarantined; else free text."""
    counts = Counter(strings)
    categories = sorted(counts)
    rare = sum(count < MIN_SEEN for count in counts.values())
    if len(categories) <= MAX_CATEGORIES and (complete or not rare):
        return {"name": name, "kind": "categorical", "categories": categories}, None
    open_note = "left open (no categories list), so a value the sample missed is learned as unknown, not quarantined"
    if len(categories) <= MAX_CATEGORIES:
        return {"name": name, "kind": "categorical"}, (
            f"{name}: {rare} of its {len(categories)} values seen fewer than {MIN_SEEN} times in the sample, "
            f"so more may exist: {open_note}"
        )
    if len(categories) <= MAX_OPEN_CATEGORIES and len(categories) * MIN_REPEATS <= len(strings):
        return {"name": name, "kind": "categorical"}, (
            f"{name}: {len(categories)} distinct strings in {len(strings):,} values, each seen "
            f"{len(strings) / len(categories):.0f} times on average: a category, {open_note}"
        )
    return None, (
        f"{name}: {len(categories)} distinct strings in {len(strings):,} values (free text or an identifier?), left out"
    )


def run_date(facts: CollectionFacts) -> str | None:
    """The logical date of the first run: the newest document's day (at least a day after the earliest), so
    the window holds the data."""
    if facts.latest is None or facts.earliest is None:
        return None
    return max(facts.latest.date(), (facts.earliest + timedelta(days=1)).date()).isoformat()


def rows_per_day(facts: CollectionFacts) -> float:
    days = max((facts.latest - facts.earliest) / timedelta(days=1), 1.0)
    return facts.documents / days


@dataclass(frozen=True)
class Sizing:
    """The window, the row minimums and the monitor's trigger, chosen together from the collection."""

    window_days: float
    half_life_days: float
    min_rows: int
    min_holdout_rows: int
    min_new_documents: int
    choices: list[str]


def sizing(facts: CollectionFacts, frame: pd.DataFrame, label: str, end: datetime) -> Sizing:
    """The measured 90-day window, widened for a slow collection until it holds ``WINDOW_ROWS`` (or all of
    the data); the minimums from the labeled rows that window holds at the first run, as the sample
    estimates them; the half-life long enough to weigh ``HALF_LIFE_ROWS`` rows."""
    rate = rows_per_day(facts)
    span = math.ceil((facts.latest - facts.earliest) / timedelta(days=1)) + 1
    window = max(WINDOW_DAYS, min(math.ceil(WINDOW_ROWS / rate), span))
    half_life = HALF_LIFE_DAYS if rate * HALF_LIFE_DAYS >= HALF_LIFE_ROWS else math.ceil(HALF_LIFE_ROWS / rate)
    labeled = in_window(frame, facts.timestamp_field, end, window)[label].notna().sum()
    expected = round(labeled * facts.documents / len(frame))  # labeled rows of the whole collection
    min_holdout = min(MIN_HOLDOUT_ROWS, max(FLOOR_ROWS, expected // 10))
    holdout = min(expected, max(math.ceil(HOLDOUT_SHARE * expected), min_holdout), MAX_HOLDOUT_ROWS)
    min_rows = min(MIN_ROWS, max(FLOOR_ROWS, (expected - holdout) // 2))
    choices = [
        f"{facts.documents:,} documents over {span:,} days: {rate:,.1f} rows a day",
        f"training.window_days {window:g}: {window_reason(window, rate, span)}",
        f"training.recency_half_life_days {half_life:g}: "
        + (
            f"the measured {HALF_LIFE_DAYS} days weigh {rate * HALF_LIFE_DAYS:,.0f} rows"
            if half_life == HALF_LIFE_DAYS
            else f"lengthened from {HALF_LIFE_DAYS} days so a half-life holds about {HALF_LIFE_ROWS:,} rows"
        ),
        f"about {expected:,} labeled rows in the first run's window (ending {end.date()}): the holdout takes "
        f"{holdout:,}; training.min_holdout_rows {min_holdout:,} and contract.min_rows {min_rows:,} (half the "
        f"training rows, at most the pipeline's {MIN_ROWS}) leave room for a smaller window",
        f"monitoring.min_new_documents {min(1000, min_rows):,}: the drift check needs contract.min_rows new rows "
        f"(about {min_rows / rate:,.1f} days at this rate)",
    ]
    return Sizing(window, half_life, min_rows, min_holdout, min(1000, min_rows), choices)


def window_reason(window: float, rate: float, span: int) -> str:
    if window > WINDOW_DAYS:
        return f"widened from {WINDOW_DAYS} to hold about {WINDOW_ROWS:,} rows (or all {span:,} days of the data)"
    if rate * WINDOW_DAYS >= WINDOW_ROWS:
        return f"the measured {WINDOW_DAYS} days hold {rate * WINDOW_DAYS:,.0f} rows at this rate"
    return f"the measured {WINDOW_DAYS} days, longer than the data's {span:,} days"


def in_window(frame: pd.DataFrame, stamp: str, end: datetime, days: float) -> pd.DataFrame:
    stamps = frame[stamp]
    return frame.loc[(stamps > end - timedelta(days=days)) & (stamps <= end)]


def sample_frame(facts: CollectionFacts, stamp_type: str) -> pd.DataFrame:
    """The sample as the extract reads it: one row per document, the timestamp as a UTC datetime (documents
    whose timestamp is in another form are left out, as no window finds them)."""
    rows = []
    for doc in facts.sample:
        try:
            moment = from_stored(doc.get(facts.timestamp_field), stamp_type)
        except (ValueError, OverflowError):
            continue
        rows.append({**doc, "_id": str(doc.get("_id")), facts.timestamp_field: moment})
    frame = pd.DataFrame(rows)
    if frame.empty:
        raise ValueError(f"no sampled document has a {stamp_type} in {facts.timestamp_field}: pass TIMESTAMP=")
    frame[facts.timestamp_field] = pd.to_datetime(frame[facts.timestamp_field], utc=True)
    return frame


def propose(facts: CollectionFacts, label: str, model: str) -> Onboarding:
    """The config for ``model``, with what was inferred and what a reviewer should check. Refuses (a
    ``ValueError`` naming the fix) a dataset whose config could not run."""
    stamp = facts.timestamp_field
    id_kind = id_type(facts.id_types)
    stamp_type, unsure = timestamp_type(facts)
    frame = sample_frame(facts, stamp_type)
    if instant := traps.single_instant(frame[stamp], stamp):
        raise ValueError(instant)
    label_values = [doc.get(label) for doc in facts.sample]
    label_fields, label_unsure = label_spec(label, label_values)
    found = feature_specs(facts.sample, {"_id", label, stamp}, complete=len(facts.sample) >= facts.documents)
    if not found.specs:
        raise ValueError(f"no usable feature in {facts.database}.{facts.collection}: {'; '.join(found.notes)}")
    objective = label_fields["objective"]
    if sorted_label := traps.label_sorted_with_time(frame, label, stamp, objective != "regression"):
        if objective != "regression":
            raise ValueError(sorted_label)
        unsure.append(sorted_label)
    date = run_date(facts)
    end = datetime.fromisoformat(date).replace(tzinfo=UTC)
    sized = sizing(facts, frame, label, end)
    gate, gate_choices = gate_section(objective)
    config = {
        "model_name": model,
        "start_date": facts.earliest.date().isoformat() if facts.earliest else None,
        "source": {
            "conn_id": PIPELINE_CONN_ID,
            "database": facts.database,
            "collection": facts.collection,
            "id_field": "_id",
            "id_type": id_kind,
            "timestamp_field": stamp,
            "timestamp_type": stamp_type,
            "lookback_hours": None,
        },
        "contract": {
            "label": label_fields,
            "features": found.specs,
            "min_rows": sized.min_rows,
            "max_quarantine_share": 0.05,
        },
        "monitoring": {"min_new_documents": sized.min_new_documents},
        "training": training_section(objective, sized),
        "gate": gate,
        "mlflow": {"experiment": model},
    }
    first_run = first_run_check(config, facts, frame, end)
    kinds = Counter(feature["kind"] for feature in found.specs)
    label_range = f" {observed_range([v for v in label_values if is_number(v)])}" if objective == "regression" else ""
    inferred = [
        f"{facts.documents:,} documents, {len(facts.sample):,} sampled",
        f"_id: {id_kind} ({_counts(facts.id_types)})",
        f"timestamp: {stamp} stored as {stamp_type}, {facts.earliest} .. {facts.latest}",
        f"label: {label} {objective}"
        + (f" classes {label_fields['classes']}" if "classes" in label_fields else label_range),
        f"features: {kinds['numeric']} numeric, {kinds['categorical']} categorical",
        f"contract.min_rows {sized.min_rows}; training.min_holdout_rows {sized.min_holdout_rows}; "
        f"training.window_days {sized.window_days:g}; gate metric {gate['primary_metric']}",
        first_run,
    ]
    if facts.off_form:
        unsure.append(f"{stamp}: {facts.off_form:,} documents store it in another form or layout; no window finds them")
    return Onboarding(
        config,
        inferred,
        unsure + label_unsure + found.notes,
        choices=sized.choices + gate_choices,
        sample_ranges=found.ranges,
        run_date=date,
    )


def first_run_check(config: dict[str, Any], facts: CollectionFacts, frame: pd.DataFrame, end: datetime) -> str:
    """The config over the shared defaults, typed as the pipeline loads it, then run on the sample as the
    first run at ``end`` reads it: the contract, the window plan, every class on both sides of the split.
    The row minimums are scaled to the sample's share of the collection. A sentence of what it found, or a
    ``ValueError`` naming what would fail and the fix."""
    try:
        typed = config_from(without_comments(deep_merge(json.loads(DEFAULTS_FILE.read_text()), config)))
    except ConfigError as error:
        raise ValueError(f"the written config would not load: {error}") from error
    share = len(frame) / facts.documents
    scaled = replace(typed.contract, min_rows=max(1, math.floor(typed.contract.min_rows * share)))
    training = replace(typed.training, min_holdout_rows=max(1, math.floor(typed.training.min_holdout_rows * share)))
    stamp = facts.timestamp_field
    window = in_window(frame, stamp, end, typed.training.window_days)
    columns = ["_id", stamp, typed.contract.label.name, *typed.contract.feature_names]
    rows = window.reindex(columns=columns)
    try:
        outcome = validate_frame(rows, scaled, "_id")
    except DataContractError as error:
        raise ValueError(f"the first run at {end.date()} would fail validate: {error}") from error
    plan = windows.plan(outcome.valid, scaled, training, "_id", stamp, None)
    if plan.problem:
        raise ValueError(f"the first run at {end.date()} could not train: {plan.problem}")
    if missing := class_gaps(outcome.valid, typed, training, stamp):
        raise ValueError(f"the first run at {end.date()} would train blind: {missing}")
    return (
        f"checked on the sample: the first run at {end.date()} validates {len(outcome.valid):,} of "
        f"{len(rows):,} sampled rows in its window ({len(outcome.quarantined):,} quarantined), trains on "
        f"{plan.training.rows:,} and holds out {plan.holdout.rows:,}"
    )


def class_gaps(valid: pd.DataFrame, config: PipelineConfig, training: Any, stamp: str) -> str | None:
    label = config.contract.label
    if not label.is_classification:
        return None
    train, holdout = windows.split(valid, config.contract, training, stamp, None)
    return traps.classes_missing(train[label.name], holdout[label.name], list(label.classes))


def positive_class(classes: list[Any], counts: Counter) -> Any:
    """True of bools, 1 of 0/1, else the rarer class (what a binary task usually looks for). Membership by
    type (``is_one_of``): in Python ``True in [0, 1]`` holds."""
    for preferred in (True, 1):
        if is_one_of(preferred, classes):
            return preferred
    return min(classes, key=counts.get)


def training_section(objective: str, sized: Sizing) -> dict[str, Any]:
    """The estimator for the objective, and the window and minimums ``sizing`` chose."""
    estimator, extra, _ = TRAINING[objective]
    return {
        "estimator": estimator,
        "hyperparameters": BOOSTING | extra,
        "holdout_share": HOLDOUT_SHARE,
        "min_holdout_rows": sized.min_holdout_rows,
        "window_days": sized.window_days,
        "recency_half_life_days": sized.half_life_days,
        "seed": 42,
        "max_rows": 200000,
    }


def gate_section(objective: str) -> tuple[dict[str, Any], list[str]]:
    """The primary metric per objective, a margin that means the same on every scale, the calibrated
    confidence, and no floor: what a useless model scores is the reviewer's call, not the sample's."""
    metric = TRAINING[objective][2]
    gate: dict[str, Any] = {"primary_metric": metric, "min_improvement": MIN_IMPROVEMENT}
    if objective == "regression":
        gate["min_improvement_unit"] = "label_std"
        margin = (
            f"gate.min_improvement {MIN_IMPROVEMENT} in units of the holdout label's standard deviation "
            f"(gate.min_improvement_unit label_std): the challenger's {metric} must be lower by "
            f"{MIN_IMPROVEMENT:.1%} of the label's spread, whatever its unit (grams, minutes)"
        )
    else:
        margin = f"gate.min_improvement {MIN_IMPROVEMENT} of {metric}, a unitless score"
    gate |= {"confidence": CONFIDENCE, "bootstrap_rounds": 300}
    return gate, [
        margin,
        f"gate.confidence {CONFIDENCE}: the calibrated value (README, Calibration)",
        "no gate.floor: the first challenger becomes champion; add one if a model must reach a known score",
    ]


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {kind}" for kind, n in counts.items())
