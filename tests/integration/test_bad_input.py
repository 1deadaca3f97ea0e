"""Bad input, each kind on a collection of its own behind a real champion: the run stops with a message
naming the field, the count and example ids (or, where nothing is wrong for training, says what it left
out), nothing is registered and the champion does not move."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from include.demo.sample_data import generate_documents
from include.retraining.adapters import mongo, registry
from include.retraining.core.config import PipelineConfig, with_overrides
from include.retraining.core.contract import DataContractError
from include.retraining.core.records import RunInfo
from include.retraining.stages import (
    decide,
    detect_drift,
    evaluate,
    extract,
    promote,
    refit,
    register,
    train,
    validate,
)

pytestmark = [pytest.mark.integration, pytest.mark.filterwarnings("ignore::UserWarning")]

NOW = datetime.now(UTC)
GOOD, BAD = 600, 100


def documents(count: int, seed: int) -> list[dict[str, Any]]:
    return generate_documents(count, start=NOW - timedelta(days=5), end=NOW - timedelta(hours=1), seed=seed)


def retrain(config: PipelineConfig) -> None:
    """The retrain DAG's stages, forced, as the DAG runs them."""
    run = RunInfo(
        dag_id="retrain_vehicle_insurance",
        run_id=f"bad__{uuid.uuid4().hex}",
        run_end=NOW.isoformat(),
        force_retrain=True,
    )
    validation = validate(config, run, extract(config, run))
    drift = detect_drift(config, run, validation)
    training = train(config, run, validation, drift)
    evaluation = evaluate(config, training)
    final = refit(config, run, training, evaluation)
    decision = decide(config, run, drift)
    promote(config, register(config, run, validation, drift, final, evaluation, decision), evaluation)


@pytest.fixture(scope="module")
def champion_config(config_factory) -> PipelineConfig:
    config = config_factory()
    # fitted on the days before the test windows (the refit reaches its newest row): every test row is new to it
    older = generate_documents(1_000, start=NOW - timedelta(days=10), end=NOW - timedelta(days=5), seed=1)
    mongo.insert_documents(older, database=config.source.database, collection=config.source.collection)
    retrain(config)
    assert registry.champion(config.mlflow, config.model_name).version == "1"
    return config


def with_field(field: str, value: Any) -> Callable[[dict], dict]:
    return lambda doc: {**doc, field: value}


def without(field: str) -> Callable[[dict], dict]:
    return lambda doc: {k: v for k, v in doc.items() if k != field}


CASES = {
    "wrong BSON type": (with_field("Age", "forty"), r"Age: 100 of 700 rows \(14\.3%\) missing or not a number"),
    "missing field": (without("Vehicle_Damage"), r"Vehicle_Damage: 100 of 700 rows .* missing or not a string"),
    "NaN": (with_field("Annual_Premium", float("nan")), r"Annual_Premium: 100 of 700 rows .* missing or not a number"),
    "infinity": (with_field("Vintage", float("inf")), r"Vintage: 100 of 700 rows .* not a finite number \(inf\)"),
    "huge string": (with_field("Gender", "M" * 100_000), r"Gender: 100 of 700 rows .* longer than 200 characters"),
    "label not a class": (with_field("Response", 7), r"Response: 100 of 700 rows .* label not one of \[0, 1\]"),
}


@pytest.mark.parametrize("case", CASES)
def test_a_bad_field_stops_the_run_naming_field_count_and_ids(champion_config, case):
    mutate, expected = CASES[case]
    bad = [mutate(doc) for doc in documents(BAD, seed=2)]
    message = failed_run(champion_config, documents(GOOD, seed=3) + bad)

    assert re.search(expected, message), message
    ids = re.search(r"e\.g\. _id ([0-9a-f]{24})", message)
    assert ids, message
    bad_ids = {str(doc["_id"]) for doc in bad}  # insert_many set them
    assert ids.group(1) in bad_ids
    assert "Nothing was trained or registered" in message


def test_duplicate_documents_are_named(champion_config):
    copies = [{k: v for k, v in doc.items() if k != "_id"} for doc in documents(BAD, seed=4)]
    message = failed_run(champion_config, documents(GOOD, seed=5) + documents(BAD, seed=4) + copies)

    assert re.search(r"\(document\): 100 of 800 rows \(12\.5%\) duplicate of an earlier document", message), message


def test_an_empty_window_says_so(champion_config):
    message = failed_run(champion_config, [])

    assert "the extract window holds no documents" in message


def test_one_class_labels_cannot_train(champion_config):
    docs = [{**doc, "Response": 0} for doc in documents(GOOD, seed=6)]

    message = failed_run(champion_config, docs)

    assert re.search(r"the training rows \([\d,]+ rows\) hold only class \['0'\] of Response: a model cannot", message)


def test_documents_awaiting_their_label_are_checked_for_drift_and_skip_training_with_the_reason(champion_config):
    """Labels arrive days later: a window of mostly unlabeled documents is valid, drift-checked, and the
    retrain it would deserve is skipped with the reason, not failed and not trained on too few rows."""
    config = own_collection(champion_config)
    recent = {"start": NOW - timedelta(hours=1), "end": NOW - timedelta(minutes=1)}  # all new to the champion
    unlabeled = [without("Response")(doc) for doc in generate_documents(BAD * 5, seed=10, **recent)]
    labeled = generate_documents(20, seed=11, **recent)  # fewer than training.min_holdout_rows (100)
    docs = unlabeled + labeled
    mongo.insert_documents(docs, database=config.source.database, collection=config.source.collection)
    run = RunInfo(dag_id="retrain_vehicle_insurance", run_id=f"late__{uuid.uuid4().hex}", run_end=NOW.isoformat())

    validation = validate(config, run, extract(config, run))
    drift = detect_drift(config, run, validation)
    decision = decide(config, replace(run, force_retrain=True), drift)

    assert validation.rows_quarantined == 0
    assert validation.rows_unlabeled == 5 * BAD
    assert drift.status in ("drift", "no_drift")  # checked, labels or not
    assert drift.rows_current == len(docs)
    assert drift.windows.rows_unlabeled == 5 * BAD
    assert not decision.retrain
    assert decision.reason.startswith(
        "forced by the force_retrain Param, but no challenger can be judged: only 20 labeled rows newer than the "
        "champion's training data"
    )


def test_extra_fields_are_ignored_and_future_documents_named(champion_config, caplog):
    config = own_collection(champion_config)
    extra = [{**doc, "debug_blob": {"x": [1, 2, 3]}, "source_system": "crm"} for doc in documents(GOOD, seed=8)]
    future = generate_documents(5, start=NOW + timedelta(days=3650), end=NOW + timedelta(days=3651), seed=9)
    mongo.insert_documents(extra + future, database=config.source.database, collection=config.source.collection)
    run = RunInfo(dag_id="retrain_vehicle_insurance", run_id=f"extra__{uuid.uuid4().hex}", run_end=NOW.isoformat())

    with caplog.at_level(logging.WARNING):
        validation = validate(config, run, extract(config, run))

    assert validation.rows_in == GOOD  # the future-dated ones are outside the window
    assert validation.problems == ()
    assert "debug_blob" not in validation.snapshot.columns
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    warning = next(message for message in warnings if "stamped after now" in message)
    assert warning.startswith("ingested_at: 5 documents are stamped after now")
    assert str(future[0]["_id"]) in warning or "e.g. _id" in warning


def test_a_run_for_an_earlier_date_does_not_warn_about_the_later_documents(champion_config, caplog):
    config = own_collection(champion_config)
    earlier, later = NOW - timedelta(days=10), documents(GOOD, seed=10)  # documents() spans the days before NOW
    old = generate_documents(GOOD, start=earlier - timedelta(days=5), end=earlier, seed=11)
    mongo.insert_documents(old + later, database=config.source.database, collection=config.source.collection)
    run = RunInfo(
        dag_id="retrain_vehicle_insurance", run_id=f"backfill__{uuid.uuid4().hex}", run_end=earlier.isoformat()
    )

    with caplog.at_level(logging.INFO):
        extract(config, run)

    assert not [r for r in caplog.records if r.levelno >= logging.WARNING and "stamped after" in r.getMessage()]
    said = next(r.getMessage() for r in caplog.records if "stamped after this run's end" in r.getMessage())
    assert said.startswith(f"{len(later)} documents are stamped after this run's end")


def own_collection(config: PipelineConfig) -> PipelineConfig:
    return with_overrides(config, source={"collection": f"bad_{uuid.uuid4().hex[:8]}"})


def failed_run(champion_config: PipelineConfig, docs: list[dict]) -> str:
    """Run the forced retrain on ``docs`` in a collection of its own; return the error it stopped with."""
    config = own_collection(champion_config)
    if docs:
        mongo.insert_documents(docs, database=config.source.database, collection=config.source.collection)
    versions = registry.client(config.mlflow).search_model_versions(f"name = '{config.model_name}'")
    champion = registry.champion(config.mlflow, config.model_name)

    with pytest.raises(DataContractError) as raised:
        retrain(config)

    after = registry.client(config.mlflow).search_model_versions(f"name = '{config.model_name}'")
    assert len(after) == len(versions), "a failed run registered a version"
    assert registry.champion(config.mlflow, config.model_name) == champion is not None
    return str(raised.value)
