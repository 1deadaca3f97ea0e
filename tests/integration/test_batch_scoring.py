"""The score stage against MongoDB and MLflow, as the pipeline's least-privilege user: the champion's
predictions for the documents of its open window, in bounded batches, once per (document, version), and
performance drift computed from what was served.

The story: 1,500 documents and a first champion (v1); 600 documents arrive after it (4% malformed), of
which the labels of the first 400 have arrived; the score DAG's stage scores them, a second run finds
nothing left, a lost prediction is written again, and the monitor's performance check reads the served
scores, re-scoring only 200 documents that arrived after the scoring run.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from include.demo.sample_data import generate_documents
from include.retraining.adapters import mongo, registry
from include.retraining.core.config import PipelineConfig
from include.retraining.core.contract import scorable, validate_frame
from include.retraining.stages.data import champion_performance, read_window
from include.retraining.stages.scoring import predictions_collection, score
from tests.integration.conftest import ADMIN_CONN_ID
from tests.integration.test_pipeline_stages import insert, new_run, retrain

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:invalid escape sequence:SyntaxWarning"),
    pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer:UserWarning"),
]

NOW = datetime.now(UTC)
BATCH, NEW_ROWS, LATE_ROWS = 250, 600, 200


@pytest.fixture(scope="module")
def config(config_factory) -> PipelineConfig:
    return config_factory({"scoring": {"batch_size": BATCH}, "performance": {"min_labels": 200}})


@pytest.fixture(scope="module")
def champion(config) -> registry.Champion:
    insert(config, generate_documents(1_500, start=NOW - timedelta(days=30), end=NOW - timedelta(days=2), seed=5))
    run = retrain(config, new_run())
    assert run.promotion.promoted
    return run.champion


@pytest.fixture(scope="module")
def new_docs(config, champion) -> list[dict]:
    after = datetime.fromisoformat(champion.training_end) + timedelta(seconds=1)
    docs = generate_documents(NEW_ROWS, start=after, end=NOW - timedelta(minutes=5), seed=6, malformed_share=0.04)
    for doc in docs[400:]:  # the newest 200 await their label
        doc.pop("Response", None)
    insert(config, docs)
    return docs


@pytest.fixture(scope="module")
def first(config, champion, new_docs):
    return score(config, new_run())


@pytest.fixture(scope="module")
def second(config, first):
    return score(config, new_run())


def predictions(config: PipelineConfig) -> list[dict]:
    _, database, name = predictions_collection(config)
    return list(mongo.collection(ADMIN_CONN_ID, database, name).find({"model_name": config.model_name}))


def open_window(config: PipelineConfig, champion: registry.Champion):
    run = new_run()
    return read_window(config, run, datetime.fromisoformat(champion.training_end)).frame


def test_every_scorable_document_of_the_open_window_gets_one_prediction_from_the_champion(config, champion, first):
    window = open_window(config, champion)
    expected = set(window.loc[scorable(window, config.contract), "_id"])
    stored = predictions(config)

    assert first.model_version == champion.version
    assert first.window_start == champion.training_end
    assert first.documents == NEW_ROWS
    assert first.scored == len(expected) == len(stored)
    assert first.unscorable == NEW_ROWS - len(expected) > 0
    assert first.batches == math.ceil(NEW_ROWS / BATCH)
    assert {doc["document_id"] for doc in stored} == expected
    assert {doc["model_version"] for doc in stored} == {champion.version}
    assert all(doc["prediction"] == int(doc["score"] >= 0.5) for doc in stored)


def test_the_window_is_read_in_batches_of_the_configured_size(config, champion, first):
    end = datetime.now(UTC)
    start = datetime.fromisoformat(champion.training_end)

    sizes = [len(batch) for batch in mongo.window_id_batches(config.source, start, end, BATCH)]

    assert sizes == [BATCH, BATCH, NEW_ROWS - 2 * BATCH]


def test_a_second_run_writes_nothing_and_says_every_document_was_scored_already(first, second):
    assert second.scored == 0
    assert second.already_scored == first.scored
    assert second.unscorable == first.unscorable


def test_a_lost_prediction_is_written_again_and_only_it(config, champion, second):
    _, database, name = predictions_collection(config)
    lost = predictions(config)[0]
    mongo.collection(ADMIN_CONN_ID, database, name).delete_one({"_id": lost["_id"]})

    again = score(config, new_run())

    assert again.scored == 1
    assert again.already_scored == second.already_scored - 1
    restored = mongo.collection(ADMIN_CONN_ID, database, name).find_one({"_id": lost["_id"]})
    assert restored["score"] == pytest.approx(lost["score"])
    assert restored["scored_at"] > lost["scored_at"]


def test_performance_drift_reads_the_served_predictions_and_rescores_only_the_unserved(
    config, champion, new_docs, second
):
    late = generate_documents(LATE_ROWS, start=NOW - timedelta(minutes=4), end=NOW - timedelta(minutes=1), seed=7)
    insert(config, late)
    current = validate_frame(open_window(config, champion), config.contract, "_id", for_training=False).valid
    labeled = current[current["Response"].notna()]
    labeled_and_served = labeled["_id"].isin({str(doc["_id"]) for doc in new_docs[:400]}).sum()
    late_and_labeled = labeled["_id"].isin({str(doc["_id"]) for doc in late}).sum()

    verdict = champion_performance(config, champion, current)

    assert labeled_and_served > 0
    assert late_and_labeled > 0
    assert labeled_and_served + late_and_labeled == len(labeled)
    assert verdict.served_rows == labeled_and_served
    reason = f"({labeled_and_served:,} served predictions, {late_and_labeled:,} re-scored)"
    assert verdict.reason.endswith(reason)


def test_a_run_with_no_champion_scores_nothing(config_factory):
    empty = config_factory()

    result = score(empty, new_run())

    assert (result.model_version, result.documents, result.scored, result.batches) == (None, 0, 0, 0)
    assert predictions(empty) == []


def test_the_scoring_record_survives_its_xcom_form(first):
    assert type(first).from_dict(first.to_dict()) == first
