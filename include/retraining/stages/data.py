"""The data stages: extract a window, apply the contract, check it for drift.

The retrain DAG runs them as three tasks (a Parquet snapshot between them, since frames never travel
through XCom); the drift monitor runs them in one task (``check_window``), passing the frame along
in memory and writing one snapshot.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from include.retraining.adapters import mongo, registry, storage
from include.retraining.core import drift as drift_lib
from include.retraining.core.config import PipelineConfig
from include.retraining.core.contract import validate_frame
from include.retraining.core.records import DriftResult, RunInfo, Snapshot, ValidationReport

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
    """``(start, run end]``; without ``start`` it reaches back ``source.lookback_hours``, or to the beginning."""
    end = datetime.fromisoformat(run.run_end)
    lookback = config.source.lookback_hours
    if start is None and lookback:
        start = end - timedelta(hours=lookback)
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
    """Read the run's window and park it as the extract snapshot; say what lies beyond its end."""
    window = read_window(config, run)
    later, examples = mongo.stamped_after(config.source, window.end)
    if later:
        log.warning(
            "%s: %d documents are stamped after this run's end %s (e.g. _id %s): not in this window; "
            "future-dated timestamps come from the writer's clock or a wrong field",
            config.source.timestamp_field,
            later,
            window.end.isoformat(),
            ", ".join(examples),
        )
    return park(config, run, window, window.frame, "extract")


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
        problems=tuple(outcome.problems),
    )
    return outcome.valid, report


def detect_drift(config: PipelineConfig, run: RunInfo, validation: ValidationReport) -> DriftResult:
    """The drift verdict for this run: drift_monitor's, when it handed over this window against the
    champion that is still current; otherwise computed on the validated snapshot."""
    mlflow_run_id = registry.pipeline_run(config, run)
    champion = registry.champion(config.mlflow, config.model_name)
    handed_over = run.monitor_check
    if handed_over and handed_over.champion_version == (champion.version if champion else None):
        log.info("reusing drift check %s of drift_monitor (%s)", handed_over.check_id, handed_over.status)
        result = replace(handed_over, mlflow_run_id=mlflow_run_id)
        registry.log_drift(config.mlflow, mlflow_run_id, result)
    else:
        if handed_over:
            log.info("the champion moved since drift_monitor's check %s: checking again", handed_over.check_id)
        current = storage.read_parquet(config.storage, validation.snapshot.uri)
        result = check_drift(config, run, current, validation.snapshot, mlflow_run_id)
    log_links(config, result)
    return result


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
    extra: dict[str, Any] | None = None,
) -> DriftResult:
    """Compare ``current`` with the champion's training snapshot; record the check in MLflow and MongoDB."""
    champion = registry.champion(config.mlflow, config.model_name)
    result = DriftResult(
        status="no_reference",
        drift_share=0.0,
        drifted_columns=0,
        columns=(),
        threshold=config.drift.drift_share_threshold,
        rows_current=len(current),
        rows_reference=0,
        current_uri=snapshot.uri,
        reference_uri=None,
        champion_version=champion.version if champion else None,
        report_uri=None,
        mlflow_run_id=mlflow_run_id,
    )
    if champion and champion.snapshot_uri:
        reference = storage.read_parquet(config.storage, champion.snapshot_uri)
        computed = drift_lib.compute_drift(current, reference, config.contract, config.drift)
        drifted = drift_lib.dataset_drifted(computed.drift_share, result.threshold)
        result = replace(
            result,
            status="drift" if drifted else "no_drift",
            drift_share=computed.drift_share,
            drifted_columns=computed.drifted_columns,
            columns=computed.columns,
            rows_reference=len(reference),
            reference_uri=champion.snapshot_uri,
            report_uri=registry.log_drift_report(config.mlflow, mlflow_run_id, computed.html),
        )
        registry.log_drift(config.mlflow, mlflow_run_id, result)
    key = {"model_name": config.model_name, "dag_id": run.dag_id, "run_id": run.run_id}  # one check per run
    document = drift_check_document(config, run, result) | (extra or {})
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
