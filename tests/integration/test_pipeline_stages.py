"""The lifecycle stages, called like the DAG calls them, against MongoDB, S3, MLflow and Evidently.

One story on one collection, in four runs:
1. 3,000 documents (3% malformed): no champion yet, so the first model is trained, refit on training +
   holdout and promoted (v1).
2. 2,000 drifted documents arrive (covariate and concept drift); a 24 h lookback reads only them: drift
   is detected against the rows v1 was fitted on, the challenger trains on the older 80% of the drifted
   rows, beats v1 on the newest 20%, and its refit on all of them is promoted (v2).
3. The same data again, forced: v2 has seen every row, so nothing is left to judge a challenger on.
4. 1,000 more drifted documents, a forced retrain behind an impossible gate: the challenger as trained
   (no refit) is registered as v3, the champion stays v2.
And a window with too many broken documents stops at validation with nothing registered.
Each run is a module-scoped fixture; the tests assert on what the stages returned and left behind.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId

from include.demo.sample_data import generate_documents
from include.retraining import stages
from include.retraining.adapters import mongo, registry, storage
from include.retraining.airflow.task import call_stage
from include.retraining.core.config import PipelineConfig, with_overrides
from include.retraining.core.contract import QUARANTINE_REASON, DataContractError
from include.retraining.core.graph import RETRAIN
from include.retraining.core.records import (
    Decision,
    DriftResult,
    Evaluation,
    Promotion,
    Registration,
    RunInfo,
    Snapshot,
    TrainingResult,
    ValidationReport,
)
from include.retraining.stages import decide, detect_drift, promote, skip
from tests.integration.conftest import ADMIN_CONN_ID

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:invalid escape sequence:SyntaxWarning"),
    pytest.mark.filterwarnings("ignore:invalid value encountered in divide:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer:UserWarning"),
]

NOW = datetime.now(UTC)
FIRST_ROWS, MALFORMED_SHARE = 3_000, 0.03
DRIFTED_ROWS, MORE_DRIFTED_ROWS = 2_000, 1_000
CATEGORIES = {
    "Gender": {"Male", "Female"},
    "Vehicle_Age": {"< 1 Year", "1-2 Year", "> 2 Years"},
    "Vehicle_Damage": {"Yes", "No"},
}


@dataclass(frozen=True)
class Run:
    """Everything one retrain run returned, stage by stage (None where it stopped or skipped)."""

    run: RunInfo
    snapshot: Snapshot
    validation: ValidationReport
    drift: DriftResult
    decision: Decision
    training: TrainingResult | None = None
    evaluation: Evaluation | None = None
    final: TrainingResult | None = None  # what was registered: the refit, or the challenger as trained
    registration: Registration | None = None
    promotion: Promotion | None = None
    champion: registry.Champion | None = None  # behind the alias once the run is done


def new_run() -> RunInfo:
    return RunInfo(dag_id="test", run_id=f"test__{uuid.uuid4().hex}", run_end=datetime.now(UTC).isoformat())


def retrain(config: PipelineConfig, run: RunInfo, *, force: bool = False) -> Run:
    """The retrain DAG without the scheduler: its stage graph's stages, in its order, each handed the records
    its task is handed; the branch after decide either goes on to train or ends the run (skip only logs)."""
    run = replace(run, force_retrain=force)
    records: dict[str, Any] = {}
    for name in RETRAIN.lineage("promote"):
        if name == "train" and not records["decide"].retrain:
            break
        stage = getattr(stages, name)
        records[name] = call_stage(stage, RETRAIN.inputs(name, records), lambda: config, lambda: run)
    champion = registry.champion(config.mlflow, config.model_name)
    return Run(run, **{RETRAIN[name].gives: record for name, record in records.items()}, champion=champion)


def breaks_contract(doc: dict[str, Any]) -> bool:
    """The contract, restated independently of validation.py, for the generator's defects. A document
    without a label breaks nothing: its label has not arrived yet."""
    if not isinstance(doc.get("Age"), int | float):
        return True
    if any(doc.get(name) not in allowed for name, allowed in CATEGORIES.items()):
        return True
    label = doc.get("Response")
    return not 18 <= doc["Age"] <= 100 or doc["Annual_Premium"] < 0 or (label is not None and label not in (0, 1))


def unlabeled(docs: list[dict[str, Any]]) -> set[str]:
    return {str(doc["_id"]) for doc in docs if doc.get("Response") is None and not breaks_contract(doc)}


def insert(config: PipelineConfig, docs: list[dict]) -> None:
    source = config.source
    target = {"database": source.database, "collection": source.collection, "conn_id": ADMIN_CONN_ID}
    inserted = mongo.insert_documents(docs, **target)
    assert inserted == len(docs)


def drift_check(config: PipelineConfig, check_id: str) -> dict[str, Any]:
    monitoring = mongo.collection(config.source.conn_id, config.monitoring_database, config.monitoring.collection)
    return monitoring.find_one({"_id": ObjectId(check_id)})


def version_count(config: PipelineConfig) -> int:
    return len(registry.client(config.mlflow).search_model_versions(f"name='{config.model_name}'"))


# --- the story ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def config(config_factory: Callable[..., PipelineConfig]) -> PipelineConfig:
    return config_factory()


@pytest.fixture(scope="module")
def first_docs(config) -> list[dict]:
    docs = generate_documents(
        FIRST_ROWS,
        start=NOW - timedelta(days=30),
        end=NOW - timedelta(days=2),
        seed=101,
        malformed_share=MALFORMED_SHARE,
    )
    insert(config, docs)  # insert_many sets each document's _id
    return docs


@pytest.fixture(scope="module")
def first(config, first_docs) -> Run:
    return retrain(config, new_run())


@pytest.fixture(scope="module")
def recent(config) -> PipelineConfig:
    # The drifted day's holdout is 400 rows (about 20 buyers): there even a +0.19 ROC-AUC challenger
    # wins only ~93% of the resamples, below the calibrated 0.95 (tuned for holdouts of 1k rows and up,
    # `make calibrate`). This test is about the promotion path, so it keeps the pre-calibration 0.9.
    return with_overrides(config, source={"lookback_hours": 24}, gate={"confidence": 0.9})


@pytest.fixture(scope="module")
def second(recent, first) -> Run:
    docs = generate_documents(
        DRIFTED_ROWS,
        start=datetime.now(UTC) - timedelta(hours=12),
        end=datetime.now(UTC) - timedelta(minutes=1),
        seed=202,
        covariate_drift=1.0,
        concept_drift=1.0,
    )
    insert(recent, docs)
    return retrain(recent, new_run())


@pytest.fixture(scope="module")
def again(recent, second) -> Run:
    return retrain(recent, new_run(), force=True)


@pytest.fixture(scope="module")
def third(recent, again) -> Run:
    after_v2 = datetime.fromisoformat(again.champion.training_end) + timedelta(milliseconds=1)
    docs = generate_documents(
        MORE_DRIFTED_ROWS, start=after_v2, end=datetime.now(UTC), seed=404, covariate_drift=1.0, concept_drift=1.0
    )
    insert(recent, docs)
    # No floor: the challenger's ROC-AUC on the new rows' holdout can land under the model file's floor,
    # and this run is about the improvement the gate demands (test_evaluation covers the floor's refusal).
    impossible = with_overrides(recent, gate={"min_improvement": 1.0, "floor": None})
    return retrain(impossible, new_run(), force=True)


# --- run 1: the first model -------------------------------------------------------------------------


def test_extract_writes_the_whole_window_as_a_snapshot(config, first, first_docs):
    snapshot = first.snapshot

    assert snapshot.rows == FIRST_ROWS
    # no lookback: the sliding training window (training.window_days) up to the run's end, not all history
    end = datetime.fromisoformat(first.run.run_end)
    assert datetime.fromisoformat(snapshot.window_start) == end - timedelta(days=config.training.window_days)
    assert snapshot.window_end == first.run.run_end
    contract = config.contract
    assert snapshot.columns == ("_id", *contract.feature_names, contract.label.name, "ingested_at")
    frame = storage.read_parquet(config.storage, snapshot.uri)
    assert storage.content_hash(frame) == snapshot.content_hash
    assert snapshot.uri.startswith(f"s3://{config.storage.bucket}/{config.storage.prefix}/")
    assert snapshot.content_hash[:16] in snapshot.uri
    assert set(frame["_id"]) == {str(doc["_id"]) for doc in first_docs}
    assert frame["ingested_at"].is_monotonic_increasing


def test_validate_quarantines_the_broken_documents(config, first, first_docs):
    report = first.validation
    broken = {str(doc["_id"]) for doc in first_docs if breaks_contract(doc)}

    # the generator breaks one field per document; a missing label is no defect
    assert len(broken) + len(unlabeled(first_docs)) == round(MALFORMED_SHARE * FIRST_ROWS)
    assert report.rows_in == FIRST_ROWS
    assert report.rows_quarantined == len(broken)
    assert report.rows_unlabeled == len(unlabeled(first_docs)) > 0
    assert report.snapshot.rows + report.rows_quarantined == report.rows_in
    assert report.problems
    assert all(" of 3,000 rows (" in problem for problem in report.problems[:-1])
    assert report.problems[-1].endswith("valid rows have no label yet: drift only")
    quarantined = storage.read_parquet(config.storage, report.quarantine_uri)
    assert set(quarantined["_id"]) == broken
    assert quarantined[QUARANTINE_REASON].str.len().gt(0).all()
    valid = storage.read_parquet(config.storage, report.snapshot.uri)
    assert len(valid) == report.snapshot.rows
    assert set(valid["_id"]).isdisjoint(broken)
    assert valid["Response"].dtype == "Int64"  # nullable: a row may await its label
    assert valid[config.contract.feature_names].notna().all().all()
    assert storage.content_hash(valid) == report.snapshot.content_hash
    assert report.snapshot.uri != first.snapshot.uri


def test_first_drift_check_has_no_reference(config, first):
    drift = first.drift

    assert drift.status == "no_reference"
    assert drift.champion_version is None
    assert drift.reference_uri is None
    assert drift.report_uri is None
    assert drift.columns == ()
    assert drift.rows_current == first.validation.snapshot.rows
    assert drift.current_uri == first.validation.snapshot.uri
    assert drift.mlflow_run_id
    check = drift_check(config, drift.check_id)
    assert check["status"] == "no_reference"
    assert check["run_id"] == first.run.run_id
    assert check["model_name"] == config.model_name
    assert first.decision == Decision(retrain=True, reason="no champion yet: training the first model")


def test_first_challenger_is_trained_on_the_validated_rows(config, first):
    training = first.training

    assert training.mlflow_run_id == first.drift.mlflow_run_id  # one MLflow run per Airflow run
    labeled = first.validation.snapshot.rows - first.validation.rows_unlabeled
    assert training.rows_train + training.rows_holdout == labeled  # every labeled row, once
    assert training.rows_holdout == pytest.approx(config.training.holdout_share * labeled, abs=1)
    holdout = storage.read_parquet(config.storage, training.holdout_uri)
    fitted = storage.read_parquet(config.storage, training.training_uri)
    assert len(holdout) == training.rows_holdout
    assert len(fitted) == training.rows_train
    assert list(holdout.columns) == ["_id", "ingested_at", *config.contract.feature_names, "Response"]
    assert fitted["ingested_at"].max() < holdout["ingested_at"].min()  # out of time
    assert holdout["Response"].notna().all()
    assert fitted["Response"].notna().all()
    assert training.params["max_iter"] == 30
    assert training.params["snapshot_hash"] == first.validation.snapshot.content_hash
    assert training.metrics["positive_share"] == pytest.approx(0.12, abs=0.04)


def test_first_challenger_becomes_champion(config, first):
    evaluation, registration, promotion = first.evaluation, first.registration, first.promotion

    assert evaluation.passed
    assert evaluation.champion is None
    assert evaluation.challenger["roc_auc"] > 0.75
    assert evaluation.reason.startswith("no champion yet")
    assert registration.version == "1"
    assert registration.tags["snapshot_uri"] == first.validation.snapshot.uri
    assert registration.tags["drift_status"] == "no_reference"
    assert "previous_champion" not in registration.tags
    assert promotion == Promotion(promoted=True, champion_version="1", previous_champion=None, reason=promotion.reason)
    assert first.champion == registry.Champion(
        version="1",
        model_uri=f"models:/{config.model_name}/1",
        snapshot_uri=first.validation.snapshot.uri,
        model_sha256=first.final.model_sha256,  # the refit on training + holdout
        training_uri=first.final.training_uri,
        training_end=first.training.windows.holdout.end,
        holdout_metrics=evaluation.challenger,  # what performance drift compares later scores with
    )
    assert first.champion.reference_uri == first.final.training_uri  # the next drift check's reference
    tags = registry.version_tags(config.mlflow, config.model_name, "1")
    assert tags["snapshot_uri"] == first.validation.snapshot.uri
    assert tags["promotion_reason"] == promotion.reason


# --- run 2: drift, and a better model -----------------------------------------------------------------


def test_lookback_reads_only_the_new_documents(second):
    end = datetime.fromisoformat(second.run.run_end)

    assert second.snapshot.rows == DRIFTED_ROWS
    assert second.snapshot.window_start == (end - timedelta(hours=24)).isoformat()
    assert second.validation.rows_quarantined == 0
    assert second.validation.quarantine_uri is None
    assert second.validation.problems == ()


def test_drift_is_detected_against_the_champions_snapshot(recent, first, second):
    drift = second.drift

    assert drift.status == "drift"
    assert drift.champion_version == "1"
    assert drift.reference_uri == first.final.training_uri  # the rows v1 was fitted on: training + holdout
    assert drift.rows_reference == first.final.rows_train
    assert drift.rows_current == DRIFTED_ROWS
    assert {"Age", "Annual_Premium"} <= set(drift.drifted_column_names)
    assert drift.drift_share >= drift.threshold == 1 / len(recent.contract.features)  # any column drifted
    assert drift.drifted_columns == len(drift.drifted_column_names)
    assert [c.column for c in drift.columns] == recent.contract.feature_names
    assert drift.report_uri == f"runs:/{drift.mlflow_run_id}/drift/report.html"  # stored once, in the MLflow run
    html = registry.read_artifact(recent.mlflow, drift.report_uri).decode()
    assert "Annual_Premium" in html
    check = drift_check(recent, drift.check_id)
    assert check["status"] == "drift"
    assert check["run_id"] == second.run.run_id
    assert {c["column"] for c in check["columns"] if c["drifted"]} == set(drift.drifted_column_names)
    assert second.decision.retrain
    assert second.decision.reason.startswith("data drift: ")
    assert "Age" in second.decision.reason


def test_retrained_model_beats_the_stale_champion(recent, second):
    evaluation, promotion = second.evaluation, second.promotion

    assert evaluation.champion_version == "1"
    assert evaluation.champion is not None
    assert evaluation.improvement > 0.05  # v1 learned a relation that no longer holds
    assert evaluation.confidence >= recent.gate.confidence
    assert evaluation.passed
    assert second.registration.version == "2"
    tags = second.registration.tags
    assert tags["previous_champion"] == "1"
    assert tags["drift_status"] == "drift"
    assert "Age" in json.loads(tags["drifted_columns"])
    assert tags["drift_report_uri"] == second.drift.report_uri
    assert tags["gate_passed"] == "true"
    assert promotion.promoted
    assert (promotion.champion_version, promotion.previous_champion) == ("2", "1")
    assert second.champion.version == "2"
    assert second.champion.reference_uri == second.final.training_uri  # the next drift check's reference
    # v2's holdout lies strictly after v1's training data: v1 was never scored on a row it learned
    v1_rows = storage.read_parquet(recent.storage, second.drift.reference_uri)
    holdout = storage.read_parquet(recent.storage, second.training.holdout_uri)
    assert set(holdout["_id"]).isdisjoint(v1_rows["_id"])
    assert holdout["ingested_at"].min() > v1_rows["ingested_at"].max()


def test_a_passed_gate_registers_the_challenger_refit_on_its_training_rows_and_the_holdout(recent, second):
    """The version that becomes champion has seen every labeled row up to the run's end, the newest included."""
    training, final = second.training, second.final
    tags = registry.version_tags(recent.mlflow, recent.model_name, second.registration.version)

    assert tags["refit"] == "true"
    assert tags["window.fitted.start"] == training.windows.training.start
    assert tags["window.fitted.end"] == training.windows.holdout.end == second.champion.training_end
    assert int(tags["window.fitted.rows"]) == training.rows_train + training.rows_holdout == final.rows_train
    assert tags["training_uri"] == final.training_uri != training.training_uri
    assert tags["model_sha256"] == final.model_sha256 != training.model_sha256
    assert final.model_uri != training.model_uri
    fitted = storage.read_parquet(recent.storage, final.training_uri)
    trained = storage.read_parquet(recent.storage, training.training_uri)
    holdout = storage.read_parquet(recent.storage, training.holdout_uri)
    assert len(fitted) == len(trained) + len(holdout)
    assert set(fitted["_id"]) == set(trained["_id"]) | set(holdout["_id"])
    assert fitted["ingested_at"].is_monotonic_increasing
    # the gate judged the challenger as trained: its holdout score is what performance drift compares with
    assert second.champion.holdout_metrics == second.evaluation.challenger


# --- run 3: the same data again -----------------------------------------------------------------------


def test_the_same_data_again_holds_nothing_new_to_the_refit_champion(second, again):
    """v2 was refit on every drifted row: none is new to it, so not even a forced run can judge a challenger."""
    assert again.drift.status == "no_new_data"
    assert again.drift.rows_current == 0
    assert again.drift.reference_uri == second.final.training_uri
    assert again.drift.drifted_columns == 0
    assert not again.decision.retrain
    assert again.decision.reason.startswith(
        "forced by the force_retrain Param, but no challenger can be judged: only 0 labeled rows newer than the "
        "champion's training data (which ends "
    )
    assert again.training is None
    assert again.champion == second.champion


# --- run 4: the gate refuses ------------------------------------------------------------------------


def test_the_rows_after_the_refit_champion_are_new_to_it(second, third):
    assert third.drift.rows_current == MORE_DRIFTED_ROWS
    assert third.drift.reference_uri == second.final.training_uri
    assert third.decision.reason == "forced by the force_retrain Param"


def test_impossible_gate_leaves_the_champion_untouched(recent, second, third):
    evaluation, promotion = third.evaluation, third.promotion

    assert evaluation.champion_version == "2"
    assert evaluation.passed is False
    assert "needs >= 1.0000" in evaluation.reason
    assert third.registration.version == "3"
    assert third.registration.tags["gate_passed"] == "false"
    assert promotion.promoted is False
    assert promotion.champion_version == "2"
    assert promotion.reason.startswith("champion v2 unchanged: ")
    assert third.champion == second.champion
    client = registry.client(recent.mlflow)
    assert client.get_model_version_by_alias(recent.model_name, registry.CHALLENGER).version == "3"


def test_a_refused_gate_registers_the_challenger_as_trained(recent, third):
    training = third.training
    tags = registry.version_tags(recent.mlflow, recent.model_name, third.registration.version)

    assert third.final == replace(training, windows=replace(training.windows, fitted=training.windows.training))
    assert tags["refit"] == "false"
    assert tags["model_sha256"] == training.model_sha256
    assert tags["training_uri"] == training.training_uri
    assert tags["window.fitted.end"] == tags["window.training.end"] == training.windows.training.end
    assert tags["window.fitted.ids_hash"] == training.windows.training.ids_hash
    client = registry.client(recent.mlflow)
    experiment = client.get_experiment_by_name(recent.mlflow.experiment).experiment_id
    logged = client.search_logged_models([experiment], filter_string=f"source_run_id = '{training.mlflow_run_id}'")
    assert [model.model_uri for model in logged] == [training.model_uri]  # no refit was logged


def test_stale_evaluation_is_not_promoted(recent, third):
    """A gate passed against v1 must not promote while v2 is the champion."""
    stale = replace(third.evaluation, passed=True, champion_version="1")

    promotion = promote(recent, third.registration, stale)

    assert promotion.promoted is False
    assert "champion moved to v2 during this run (evaluated against v1)" in promotion.reason
    assert registry.champion(recent.mlflow, recent.model_name).version == "2"


def test_a_skipped_run_says_why_on_its_mlflow_run(config):
    run = new_run()
    mlflow_run_id = registry.pipeline_run(config, run)
    drift = DriftResult(
        status="no_drift",
        drift_share=0.0,
        drifted_columns=0,
        columns=(),
        threshold=0.3,
        rows_current=1,
        rows_reference=1,
        current_uri="s3://b/c",
        reference_uri="s3://b/r",
        champion_version="1",
        report_uri=None,
        mlflow_run_id=mlflow_run_id,
    )
    decision = decide(config, run, drift)

    assert skip(config, drift, decision) == decision
    tags = registry.client(config.mlflow).get_run(mlflow_run_id).data.tags
    assert tags["outcome"] == f"skipped: {decision.reason}"
    assert decision.retrain is False


# --- a window drift_monitor handed over ---------------------------------------------------------------


def test_a_monitor_check_against_the_current_champion_is_reused_not_recomputed(recent, third):
    checks = mongo.collection(recent.source.conn_id, recent.monitoring_database, recent.monitoring.collection)
    before = checks.count_documents({})
    run = replace(new_run(), reason="drift_monitor", monitor_check=third.drift)

    drift = detect_drift(recent, run, third.validation)

    assert third.drift.champion_version == registry.champion(recent.mlflow, recent.model_name).version
    assert drift == replace(third.drift, mlflow_run_id=drift.mlflow_run_id)
    assert drift.mlflow_run_id == registry.pipeline_run(recent, run) != third.drift.mlflow_run_id
    assert checks.count_documents({}) == before  # the monitor already recorded this check


def test_a_monitor_check_against_an_older_champion_is_checked_again(recent, second, third):
    run = replace(new_run(), reason="drift_monitor", monitor_check=second.drift)  # checked against v1

    drift = detect_drift(recent, run, third.validation)

    assert drift.champion_version == "2"
    assert drift.check_id != second.drift.check_id
    assert drift.rows_current == MORE_DRIFTED_ROWS  # checked again, against v2: only the rows after its fitted slice
    assert drift.status == third.drift.status


# --- a broken window ----------------------------------------------------------------------------------


def test_too_many_broken_documents_stop_before_anything_is_registered(config, first):
    broken_config = with_overrides(config, source={"collection": f"broken_{uuid.uuid4().hex[:8]}"})
    docs = generate_documents(
        1_000, start=NOW - timedelta(days=3), end=NOW - timedelta(days=1), seed=303, malformed_share=0.2
    )
    bad = sum(map(breaks_contract, docs))
    insert(broken_config, docs)
    versions = version_count(config)
    champion = registry.champion(config.mlflow, config.model_name)
    run = new_run()

    with pytest.raises(DataContractError) as raised:
        retrain(broken_config, run, force=True)

    message = str(raised.value)
    assert f"{bad} of 1,000 rows ({bad / 10:.1f}%) break the data contract" in message
    assert "e.g. _id " in message
    assert "raise contract.max_quarantine_share" in message
    assert version_count(config) == versions > 0
    assert registry.champion(config.mlflow, config.model_name) == champion
    experiment = registry.client(config.mlflow).get_experiment_by_name(config.mlflow.experiment)
    runs = registry.client(config.mlflow).search_runs(
        [experiment.experiment_id], filter_string=f"tags.airflow_run_id = '{run.run_id}'"
    )
    assert runs == []  # stopped before drift detection opened an MLflow run
