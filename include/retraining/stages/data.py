"""The data stages: extract a window, apply the contract, check it for drift.

The retrain DAG runs them as three tasks (a Parquet snapshot between them, since frames never travel
through XCom); the drift monitor runs them in one task (``check_window``), passing the frame along
in memory and writing one snapshot.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from include.retraining.adapters import mongo, registry, storage
from include.retraining.core import drift as drift_lib
from include.retraining.core import performance as performance_lib
from include.retraining.core import traps, windows
from include.retraining.core.config import PipelineConfig
from include.retraining.core.contract import DataContractError, labeled_rows, validate_frame
from include.retraining.core.records import (
    DriftResult,
    PerformanceDrift,
    RunInfo,
    Slice,
    Snapshot,
    ValidationReport,
    WindowPlan,
)
from include.retraining.core.scoring import prediction_id
from include.retraining.core.timestamps import BSON_TYPES
from include.retraining.stages.scoring import predictions_collection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Window:
    """An extracted window, in memory."""

    frame: pd.DataFrame
    start: datetime | None
    end: datetime


def run_prefix(config: PipelineConfig, run: RunInfo) -> str:
    return storage.run_prefix(config.storage, config.source.collection, run.run_id)


def read_window(config: PipelineConfig, run: RunInfo, start: datetime | None = None) -> Window:
    """``(start, run end]``; without ``start`` it reaches back ``source.lookback_hours`` when set, else
    ``training.window_days`` (a sliding window), else to the beginning (``window_days: null``, expanding)."""
    end = datetime.fromisoformat(run.run_end)
    lookback, days = config.source.lookback_hours, config.training.window_days
    if start is None and (lookback or days):
        start = end - (timedelta(hours=lookback) if lookback else timedelta(days=days))
    frame = mongo.read_window(config.source, config.contract, start, end)
    log.info("read %d rows (%s, %s] from %s", len(frame), start, end, config.source.collection)
    return Window(frame, start, end)


def park(config: PipelineConfig, run: RunInfo, window: Window, frame: pd.DataFrame, kind: str) -> Snapshot:
    """Write ``frame`` once as a run-scoped, content-hashed Parquet snapshot."""
    content_hash = storage.content_hash(frame)
    key = f"{run_prefix(config, run)}/{kind}/{content_hash[:16]}.parquet"
    return Snapshot(
        uri=storage.write_parquet(config.storage, key, frame),
        rows=len(frame),
        content_hash=content_hash,
        window_start=window.start.isoformat() if window.start else None,
        window_end=window.end.isoformat(),
        columns=tuple(frame.columns),
    )


def extract(config: PipelineConfig, run: RunInfo) -> Snapshot:
    """Read the run's window and park it as the extract snapshot; say what lies beyond its end, and which
    documents no window can find (a timestamp in another form). An empty window fails with the reason."""
    window = read_window(config, run)
    source = config.source
    misfits, misfit_ids, expected = mongo.off_form(source, window.start, window.end)
    if misfits:
        log.warning(
            "%s: %d documents store the timestamp in another form than %s (e.g. _id %s): they are in no "
            "window or in the wrong one; rewrite them, or fix source.timestamp_type",
            source.timestamp_field,
            misfits,
            expected,
            ", ".join(misfit_ids),
        )
    if window.frame.empty:
        raise DataContractError(empty_window(config, window))
    say_what_lies_beyond(config, window.end)
    return park(config, run, window, window.frame, "extract")


def say_what_lies_beyond(config: PipelineConfig, end: datetime) -> None:
    """Documents after the window: later runs' (a backfill or a historical date: said, no warning), and
    those stamped after now, which no window holds yet (a warning: the writer's clock or a wrong field)."""
    source, now = config.source, datetime.now(UTC)
    future, examples = mongo.stamped_after(source, max(end, now))
    if future:
        log.warning(
            "%s: %d documents are stamped after now, %s (e.g. _id %s): in no window until then; timestamps in "
            "the future come from the writer's clock or a wrong field",
            source.timestamp_field,
            future,
            now.isoformat(timespec="seconds"),
            ", ".join(examples),
        )
    later = mongo.stamped_after(source, end)[0] - future if end < now else 0
    if later:
        log.info("%d documents are stamped after this run's end %s: later runs read them", later, end.isoformat())


def empty_window(config: PipelineConfig, window: Window) -> str:
    """Why a window holds nothing: its bounds, the field and its declared form, and what the collection holds."""
    source = config.source
    where = f"{source.database}.{source.collection}"
    start = window.start.isoformat() if window.start else "the beginning"
    message = (
        f"the extract window holds no documents: {where} has none with {source.timestamp_field!r} "
        f"(declared source.timestamp_type {source.timestamp_type!r}) in ({start}, {window.end.isoformat()}]"
    )
    held = mongo.stored_types(source)
    others = {bson: count for bson, count in held.items() if bson != BSON_TYPES[source.timestamp_type]}
    if others:
        found = ", ".join(f"{count:,} as a {bson}" for bson, count in others.items())
        forms = [form for form, bson in BSON_TYPES.items() if bson in others]
        return (
            f"{message}; the collection stores that field {found}: set source.timestamp_type to "
            f"{' or '.join(map(repr, forms))} (`make onboard` infers it)"
        )
    if held:
        return f"{message}; its documents are stamped outside the window: pick a logical date inside the data"
    return f"{message}; no document has that field: check source.collection and source.timestamp_field, or load data"


def validate(config: PipelineConfig, run: RunInfo, snapshot: Snapshot) -> ValidationReport:
    frame = storage.read_parquet(config.storage, snapshot.uri)
    start = datetime.fromisoformat(snapshot.window_start) if snapshot.window_start else None
    _, report = validated(config, run, Window(frame, start, datetime.fromisoformat(snapshot.window_end)))
    return report


def validated(
    config: PipelineConfig, run: RunInfo, window: Window, for_training: bool = True
) -> tuple[pd.DataFrame, ValidationReport]:
    """Apply the contract; quarantined rows are written next to the snapshot, never dropped silently."""
    outcome = validate_frame(window.frame, config.contract, config.source.id_field, for_training)
    traps_found = traps.dataset_warnings(outcome.valid, config.contract, config.source.timestamp_field)
    for warning in traps_found:
        log.warning(warning)
    quarantine_uri = None
    if len(outcome.quarantined):
        key = f"{run_prefix(config, run)}/quarantine/rows.parquet"
        quarantine_uri = storage.write_parquet(config.storage, key, outcome.quarantined)
        problems = "\n".join(outcome.problems)
        log.warning("quarantined %d rows to %s:\n%s", len(outcome.quarantined), quarantine_uri, problems)
    report = ValidationReport(
        snapshot=park(config, run, window, outcome.valid, "validated"),
        rows_in=len(window.frame),
        rows_quarantined=len(outcome.quarantined),
        quarantine_uri=quarantine_uri,
        problems=(*outcome.problems, *traps_found),
        rows_unlabeled=outcome.unlabeled,
    )
    return outcome.valid, report


def detect_drift(config: PipelineConfig, run: RunInfo, validation: ValidationReport) -> DriftResult:
    """The drift verdict for this run: drift_monitor's, when this run's trigger was verified (the check read
    from MongoDB, ``stages.monitor.honoured_trigger``) and its champion is still current; otherwise computed
    on the validated snapshot."""
    mlflow_run_id = registry.pipeline_run(config, run)
    champion = registry.champion(config.mlflow, config.model_name)
    handed_over = run.monitor_check
    frame = storage.read_parquet(config.storage, validation.snapshot.uri)
    if handed_over and handed_over.champion_version == (champion.version if champion else None):
        log.info("reusing drift check %s of drift_monitor (%s)", handed_over.check_id, handed_over.status)
        plan = plan_windows(config, frame, champion, handed_over.performance)
        result = replace(handed_over, mlflow_run_id=mlflow_run_id, windows=plan)
        registry.log_drift(config.mlflow, mlflow_run_id, result)
        registry.log_windows(config.mlflow, mlflow_run_id, plan)
    else:
        if handed_over:
            log.info("the champion moved since drift_monitor's check %s: checking again", handed_over.check_id)
        result = check_drift(config, run, frame, validation.snapshot, mlflow_run_id, champion)
    if result.windows:
        log.info(window_sentence(result.windows))
    log_links(config, result)
    return result


def plan_windows(
    config: PipelineConfig,
    frame: pd.DataFrame,
    champion: registry.Champion | None,
    performance: PerformanceDrift | None = None,
) -> WindowPlan:
    """Which rows of the validated window are new to the champion, held out, and trained on (only the new
    ones after performance drift: ``windows.forgets``)."""
    end = datetime.fromisoformat(champion.training_end) if champion and champion.training_end else None
    source, training = config.source, config.training
    forget = windows.forgets(training, performance)
    return windows.plan(frame, config.contract, training, source.id_field, source.timestamp_field, end, forget)


def champion_performance(
    config: PipelineConfig, champion: registry.Champion, current: pd.DataFrame
) -> PerformanceDrift:
    """Concept drift: the champion scored on the current rows whose label arrived, against its own holdout
    score at registration (``core.performance``); the model is loaded only when there is enough to score."""
    metric = config.gate.primary_metric
    labeled = labeled_rows(current, config.contract)
    verdict = performance_lib.assess_champion(
        lambda: registry.load_model(config.mlflow, champion.model_uri, champion.model_sha256),
        labeled,
        config.contract,
        champion.holdout_metrics.get(metric),
        metric,
        config.performance,
        served_by(config, champion.version, labeled[config.source.id_field]),
        config.source.id_field,
    )
    log.info("performance drift check: %s", verdict.reason)
    return verdict


def served_by(config: PipelineConfig, version: str, document_ids: pd.Series) -> dict[str, Any]:
    """document id -> the score version ``version`` served for it (the score DAG's predictions)."""
    ids = [prediction_id(config.model_name, version, document_id) for document_id in document_ids]
    return mongo.scores_by_document(*predictions_collection(config), ids)


def window_sentence(plan: WindowPlan) -> str:
    def part(name: str, window: Slice) -> str:
        return f"{name} {window.rows:,} rows ({window.start} .. {window.end})"

    since = (
        f"after the champion's training data (ends {plan.champion_training_end})"
        if (plan.champion_training_end)
        else "no champion yet"
    )
    parts = [part("current", plan.current), part("training", plan.training), part("holdout", plan.holdout)]
    unlabeled = f"; {plan.rows_unlabeled:,} current rows await their label" if plan.rows_unlabeled else ""
    return f"windows ({since}): " + ", ".join(parts) + unlabeled


def new_to_champion(config: PipelineConfig, frame: pd.DataFrame, champion: registry.Champion | None) -> pd.DataFrame:
    """The current slice: the rows stamped after the champion's fitted rows (all rows when there is none), so
    the champion's own rows never dilute a drift check or flatter its score."""
    end = champion.training_end if champion else None
    return windows.after(frame, config.source.timestamp_field, datetime.fromisoformat(end) if end else None)


def log_links(config: PipelineConfig, result: DriftResult) -> None:
    """Where a person reads the check: the MLflow run and the Evidently report, as http links."""
    if result.mlflow_run_id:
        log.info("MLflow run: %s", registry.run_url(config.mlflow, result.mlflow_run_id))
    if result.report_uri:
        log.info("drift report: %s", registry.artifact_url(config.mlflow, result.report_uri))


def check_drift(
    config: PipelineConfig,
    run: RunInfo,
    current: pd.DataFrame,
    snapshot: Snapshot,
    mlflow_run_id: str,
    champion: registry.Champion | None,
    extra: dict[str, Any] | None = None,
    planned: bool = True,
) -> DriftResult:
    """Compare the rows of ``current`` that are new to the champion with the champion's fitted rows; record
    the check in MLflow and MongoDB.

    ``planned`` (the retrain DAG): ``current`` is the whole validated window, also planned into slices
    (``plan_windows``); otherwise it is the monitor's window. Either way only the rows stamped after the
    champion's fitted slice are compared and scored: a monitor whose watermark lags the champion (first
    arm, a pause, a retrain since) never compares the champion's own rows with themselves."""
    frame, current = current, new_to_champion(config, current, champion)
    performance = champion_performance(config, champion, current) if champion else None
    plan = plan_windows(config, frame, champion, performance) if planned else None
    result = DriftResult(
        status="no_reference",
        drift_share=0.0,
        drifted_columns=0,
        columns=(),
        threshold=drift_lib.dataset_threshold(config.drift, len(config.contract.features)),
        rows_current=len(current),
        rows_reference=0,
        current_uri=snapshot.uri,
        reference_uri=champion.reference_uri if champion else None,
        champion_version=champion.version if champion else None,
        report_uri=None,
        mlflow_run_id=mlflow_run_id,
        windows=plan,
        performance=performance,
    )
    if plan:
        registry.log_windows(config.mlflow, mlflow_run_id, plan)
    reference = champion.reference_uri if champion else None
    read_reference = (lambda: storage.read_parquet(config.storage, reference)) if reference else None
    result, html = drift_lib.judge(
        result, current, read_reference, config.contract, config.drift, config.contract.min_rows
    )
    if html:
        result = replace(result, report_uri=registry.log_drift_report(config.mlflow, mlflow_run_id, html))
    if result.status in ("drift", "no_drift"):
        registry.log_drift(config.mlflow, mlflow_run_id, result)
    key = {"model_name": config.model_name, "dag_id": run.dag_id, "run_id": run.run_id}  # one check per run
    current_slice = windows.slice_of(current, config.source.id_field, config.source.timestamp_field)
    document = drift_check_document(config, run, result) | {"current": current_slice.to_dict()} | (extra or {})
    checks = (config.source.conn_id, config.monitoring_database, config.monitoring.collection)
    check_id = mongo.record_once(*checks, key, document)
    return replace(result, check_id=check_id)


def drift_check_document(config: PipelineConfig, run: RunInfo, result: DriftResult) -> dict[str, Any]:
    return {
        "checked_at": datetime.now(UTC),
        "model_name": config.model_name,
        "collection": config.source.collection,
        "dag_id": run.dag_id,
        "run_id": run.run_id,
        "window_end": run.run_end,
        **{k: v for k, v in result.to_dict().items() if k != "check_id"},
    }


def stored_check(document: dict[str, Any]) -> DriftResult:
    """The DriftResult a drift-check document records (the inverse of ``drift_check_document``)."""
    names = {field.name for field in fields(DriftResult)}
    return DriftResult.from_dict({k: v for k, v in document.items() if k in names} | {"check_id": str(document["_id"])})
