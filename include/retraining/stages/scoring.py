"""The score stage: the champion's predictions for the documents of its open window, served to MongoDB.

The open window is every document stamped after the champion's training data ended, up to the run's end:
the rows it never saw, which are the ones anybody asks it about. A new champion (``promote`` emits the
model's champion Asset) re-scores that window under its own version; a nightly run scores what arrived
since. Each batch is read, checked, scored and written before the next one is read, so memory holds one
batch (``scoring.batch_size``) however long the window. Each prediction is written once per (document,
version): a retried or repeated run skips what is there (``core.scoring``).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from include.retraining.adapters import mongo, registry
from include.retraining.core.config import PipelineConfig
from include.retraining.core.contract import scorable
from include.retraining.core.evaluation import predict
from include.retraining.core.records import RunInfo, Scoring
from include.retraining.core.scoring import prediction_documents, prediction_id

log = logging.getLogger(__name__)


def predictions_collection(config: PipelineConfig) -> tuple[str, str, str]:
    """(connection, database, collection) of the served predictions."""
    return config.source.conn_id, config.monitoring_database, config.scoring.collection


def score(config: PipelineConfig, run: RunInfo) -> Scoring:
    """Score every document of the champion's open window that has no prediction from it yet."""
    where = f"{config.monitoring_database}.{config.scoring.collection}"
    champion = registry.champion(config.mlflow, config.model_name)
    if champion is None:
        log.info("model %s has no champion yet: nothing to score", config.model_name)
        return Scoring(None, None, run.run_end, 0, 0, 0, 0, 0, where)
    start = datetime.fromisoformat(champion.training_end) if champion.training_end else None
    end = datetime.fromisoformat(run.run_end)
    model = registry.load_model(config.mlflow, champion.model_uri, champion.model_sha256)
    totals: Counter[str] = Counter()
    for number, stored_ids in enumerate(mongo.window_id_batches(config.source, start, end, config.scoring.batch_size)):
        counts = score_batch(config, model, champion.version, stored_ids)
        log.info("batch %d: %s", number + 1, ", ".join(f"{key} {value:,}" for key, value in counts.items()))
        totals += counts
        totals["batches"] += 1
    result = Scoring(
        model_version=champion.version,
        window_start=champion.training_end,
        window_end=run.run_end,
        documents=totals["documents"],
        scored=totals["scored"],
        already_scored=totals["already_scored"],
        unscorable=totals["unscorable"],
        batches=totals["batches"],
        collection=where,
    )
    log.info(scoring_sentence(config.model_name, result))
    return result


def score_batch(config: PipelineConfig, model: Any, version: str, stored_ids: Sequence[Any]) -> Counter[str]:
    """Read, check, score and write one batch of documents; the counts of what happened to them."""
    id_field, contract = config.source.id_field, config.contract
    frame = mongo.read_documents(config.source, contract, list(stored_ids))
    ids = {document_id: prediction_id(config.model_name, version, document_id) for document_id in frame[id_field]}
    done = mongo.present_ids(*predictions_collection(config), list(ids.values()))
    todo = frame[~frame[id_field].map(ids).isin(done)]
    ok = scorable(todo, contract)
    rows = todo[ok]
    written = 0
    if len(rows):
        scores = predict(model, rows[contract.feature_names], contract.label)
        docs = prediction_documents(rows[id_field], scores, contract.label, config.model_name, version, now())
        written = mongo.insert_new(*predictions_collection(config), docs)
    return Counter(
        documents=len(frame),
        scored=written,
        already_scored=len(frame) - len(todo) + len(rows) - written,  # a concurrent run's writes count here too
        unscorable=int((~ok).sum()),
    )


def now() -> datetime:
    return datetime.now(UTC)


def scoring_sentence(model_name: str, result: Scoring) -> str:
    since = f"after {result.window_start}" if result.window_start else "(no training end recorded: all of it)"
    return (
        f"{model_name} v{result.model_version} scored {result.scored:,} of the {result.documents:,} documents "
        f"stamped {since} up to {result.window_end} into {result.collection}: {result.already_scored:,} had a "
        f"prediction from this version already, {result.unscorable:,} break the contract's feature checks "
        f"(in {result.batches} batch{'es' if result.batches != 1 else ''})"
    )
