"""A first model config from a sample of a collection: what ``make onboard`` writes for review.

Pure inference over sampled documents and a few whole-collection counts (the adapter reads them):
features and their kind, categories and plausible ranges, the label's objective and classes, the
``_id`` type, the timestamp field and how it is stored. Every guess that could be wrong is listed
as *unsure*, so the reviewer knows what to check before committing the file.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from include.retraining.core.config import is_one_of
from include.retraining.core.timestamps import MILLIS_ABOVE, is_number, stored_type

MAX_CATEGORIES = 50  # more distinct strings than this is free text or an identifier, not a category
MAX_CLASSES = 20  # more distinct integer labels than this is a count to regress, not classes
MIN_ROWS = 500  # the pipeline's default contract.min_rows, lowered for small collections
MIN_HOLDOUT_ROWS = 100  # the pipeline's default training.min_holdout_rows, lowered the same way
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
    """The label's objective and classes (their real type, sorted) or range."""
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
        low, high = plausible_range([float(value) for value in present])
        return {"name": name, "objective": "regression", "min": low, "max": high}, unsure
    classes = [int(value) if is_number(value) and not isinstance(value, bool) else value for value in distinct]
    spec: dict[str, Any] = {"name": name, "objective": objective, "classes": classes}
    if objective == "binary":
        counts = Counter(present)
        spec["positive_class"] = positive_class(classes, counts)
        if not ({True, False} == set(classes) or {0, 1} == set(classes)):
            unsure.append(f"{name}: positive_class {spec['positive_class']!r} is the rarer class; check it")
    return spec, unsure


def feature_specs(sample: list[dict[str, Any]], exclude: set[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """One spec per top-level field of the sample (minus ``exclude``): numeric or categorical."""
    names = sorted({name for doc in sample for name in doc} - exclude)
    features, unsure = [], []
    for name in names:
        values = [doc.get(name) for doc in sample]
        spec, note = feature_spec(name, values)
        if spec:
            features.append(spec)
        if note:
            unsure.append(note)
    return features, unsure


def feature_spec(name: str, values: list[Any]) -> tuple[dict[str, Any] | None, str | None]:
    present = [value for value in values if value is not None]
    if not present:
        return None, f"{name}: always missing in the sample, left out"
    numbers = [value for value in present if is_number(value) and math.isfinite(value)]
    strings = [value for value in present if isinstance(value, str)]
    spec: dict[str, Any] | None = None
    note = None
    if len(numbers) == len(present):
        low, high = plausible_range([float(value) for value in numbers])
        spec = {"name": name, "kind": "numeric", "min": low, "max": high}
    elif len(strings) == len(present):
        categories = sorted(set(strings))
        if len(categories) > MAX_CATEGORIES:
            return None, f"{name}: {len(categories)} distinct strings (free text or an identifier?), left out"
        spec = {"name": name, "kind": "categorical", "categories": categories}
    else:
        kinds = sorted({type(value).__name__ for value in present})
        return None, f"{name}: values of types {kinds} (neither all numbers nor all strings), left out"
    null_share = 1 - len(present) / len(values)
    if null_share:
        spec["max_null_share"] = round(min(1.0, 2 * null_share + 0.01), 2)
        note = (
            f"{name}: {null_share:.1%} missing in the sample; max_null_share {spec['max_null_share']} allows twice that"
        )
    return spec, note


def plausible_range(values: list[float]) -> tuple[float, float]:
    """Generous bounds: the 1st-99th percentile span widened by itself on each side, never narrower than the
    sample, and never below zero for a quantity the sample never saw negative. Outside them is broken data,
    not drift."""
    ordered = sorted(values)
    low_q, high_q = _quantile(ordered, 0.01), _quantile(ordered, 0.99)
    span = (high_q - low_q) or abs(high_q) or 1.0
    low, high = min(ordered[0], low_q - span), max(ordered[-1], high_q + span)
    if ordered[0] >= 0:
        low = max(low, 0.0)
    return _round(low, math.floor), _round(high, math.ceil)


def _quantile(ordered: list[float], share: float) -> float:
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _round(value: float, direction: Any) -> float:
    """Outward to three significant digits: 31417.2 -> 31500.0 (ceil), -0.01234 -> -0.0124 (floor)."""
    if value == 0:
        return 0.0
    digits = 2 - math.floor(math.log10(abs(value)))
    step = 10.0**-digits
    return round(direction(value / step) * step, max(digits, 0))


def propose(facts: CollectionFacts, label: str, model: str) -> Onboarding:
    """The config for ``model``, with what was inferred and what a reviewer should check."""
    stamp = facts.timestamp_field
    id_kind = id_type(facts.id_types)
    stamp_type, unsure = timestamp_type(facts)
    label_values = [doc.get(label) for doc in facts.sample]
    label_fields, label_unsure = label_spec(label, label_values)
    features, feature_unsure = feature_specs(facts.sample, {"_id", label, stamp})
    if not features:
        raise ValueError(f"no usable feature in {facts.database}.{facts.collection}: {'; '.join(feature_unsure)}")
    objective = label_fields["objective"]
    min_rows = min(MIN_ROWS, max(20, facts.documents // 4))
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
        "contract": {"label": label_fields, "features": features, "min_rows": min_rows, "max_quarantine_share": 0.05},
        "training": training_section(objective, facts.documents),
        "gate": gate_section(objective, label_fields, label_values),
        "mlflow": {"experiment": model},
    }
    kinds = Counter(feature["kind"] for feature in features)
    inferred = [
        f"{facts.documents:,} documents, {len(facts.sample):,} sampled",
        f"_id: {id_kind} ({_counts(facts.id_types)})",
        f"timestamp: {stamp} stored as {stamp_type}, {facts.earliest} .. {facts.latest}",
        f"label: {label} {objective}"
        + (
            f" classes {label_fields['classes']}"
            if "classes" in label_fields
            else f" in [{label_fields['min']}, {label_fields['max']}]"
        ),
        f"features: {kinds['numeric']} numeric, {kinds['categorical']} categorical",
        f"contract.min_rows {min_rows}; training.min_holdout_rows {config['training']['min_holdout_rows']}; "
        f"training.window_days {config['training']['window_days']}; gate metric {config['gate']['primary_metric']}",
    ]
    if facts.off_form:
        unsure.append(f"{stamp}: {facts.off_form:,} documents store it in another form or layout; no window finds them")
    if facts.earliest is None:
        unsure.append(f"no document has a {stamp_type} in {stamp}: start_date unknown")
    return Onboarding(config, inferred, unsure + label_unsure + feature_unsure)


def positive_class(classes: list[Any], counts: Counter) -> Any:
    """True of bools, 1 of 0/1, else the rarer class (what a binary task usually looks for). Membership by
    type (``is_one_of``): in Python ``True in [0, 1]`` holds."""
    for preferred in (True, 1):
        if is_one_of(preferred, classes):
            return preferred
    return min(classes, key=counts.get)


def training_section(objective: str, documents: int) -> dict[str, Any]:
    """The estimator for the objective; the out-of-time holdout's minimum lowered for small collections (a
    tenth of them), as contract.min_rows is; a sliding window of 90 days whose rows count by their age
    (half-life 7 days, the choice `make backtest` measured: README, "Which rows each model sees")."""
    estimator, extra, _ = TRAINING[objective]
    return {
        "estimator": estimator,
        "hyperparameters": BOOSTING | extra,
        "holdout_share": 0.2,
        "min_holdout_rows": min(MIN_HOLDOUT_ROWS, max(20, documents // 10)),
        "window_days": 90,
        "recency_half_life_days": 7,
        "seed": 42,
        "max_rows": 200000,
    }


def gate_section(objective: str, label: dict[str, Any], values: list[Any]) -> dict[str, Any]:
    """The primary metric per objective; the floor is what a useless model scores (chance, or predicting
    the mean: the label's standard deviation as RMSE)."""
    metric = TRAINING[objective][2]
    if objective == "regression":
        numbers = [float(value) for value in values if is_number(value)]
        mean = sum(numbers) / len(numbers)
        floor = round(math.sqrt(sum((value - mean) ** 2 for value in numbers) / len(numbers)), 6)
    elif objective == "multiclass":
        floor = round(min(0.9, 1.5 / len(label["classes"])), 3)
    else:
        floor = 0.6
    return {
        "primary_metric": metric,
        "min_improvement": 0.005,
        "floor": floor,
        "confidence": 0.9,
        "bootstrap_rounds": 300,
    }


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n:,} {kind}" for kind, n in counts.items())
