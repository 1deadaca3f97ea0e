"""The drift monitor's stages: the watermark, the window check, and handing over to the retrain.

The watermark is a state document in MongoDB. A window is ``(watermark, latest]`` where ``latest``
is the newest timestamp the sensor saw; the watermark moves to ``latest`` only after the window
was handled (recorded, alerted, retrain triggered), by compare-and-set, so a window is never
skipped or counted twice, and a restart picks up where the last handled window ended.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from include.retraining.adapters import mongo, registry
from include.retraining.core.config import PipelineConfig
from include.retraining.core.decision import MONITOR_REASON
from include.retraining.core.records import DriftResult, NewData, RunInfo
from include.retraining.stages.data import check_drift as drift_check
from include.retraining.stages.data import log_links, read_window, validated
from include.retraining.stages.outcome import mail_drift_alert

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
log = logging.getLogger(__name__)


def watermark_key(config: PipelineConfig) -> str:
    source = config.source
    return f"{config.model_name}:{source.database}.{source.collection}.{source.timestamp_field}"


def open_window(config: PipelineConfig, run: RunInfo) -> dict[str, Any]:
    """The current watermark (initialised to the newest document on first use) and what the sensor needs."""
    key, state, database = watermark_key(config), config.monitoring.state_collection, config.monitoring_database
    watermark = mongo.read_watermark(config.source, state, key, database)
    if watermark is None:  # start at the newest document, but never past what has settled
        settled = datetime.now(UTC) - timedelta(seconds=config.monitoring.grace_seconds)
        start = min(mongo.latest_timestamp(config.source) or EPOCH, settled)
        note = {"initialised_by": run.run_id}
        mongo.advance_watermark(config.source, state, key, None, start, note, database)
        watermark = mongo.read_watermark(config.source, state, key, database)
    return {
        "watermark": watermark.isoformat(),
        "min_documents": config.monitoring.min_new_documents,
        "grace_seconds": config.monitoring.grace_seconds,
        "database": config.source.database,
        "collection": config.source.collection,
        "timestamp_field": config.source.timestamp_field,
        "timestamp_type": config.source.timestamp_type,
    }


def window_run(run: RunInfo, new_data: NewData) -> RunInfo:
    """The monitor run, seen as a pipeline run whose data ends at the newest new document."""
    trigger = {"window_start": new_data.watermark, "window_end": new_data.latest}
    return replace(run, run_end=new_data.latest, trigger=trigger)


def check_drift(config: PipelineConfig, run: RunInfo, new_data: NewData) -> DriftResult:
    """Extract, validate and drift-check the new documents against the champion's training data, in memory:
    one validated snapshot is written, nothing is read back."""
    window_of = window_run(run, new_data)
    window = read_window(config, window_of, start=datetime.fromisoformat(new_data.watermark))
    frame, report = validated(config, window_of, window, for_training=False)  # a drift check, not a training set
    if new_data.future:
        log.warning("%d documents are stamped beyond now + grace: left for a later window", new_data.future)
    mlflow_run_id = registry.pipeline_run(config, window_of)
    extra = {"future_documents": new_data.future}
    champion = registry.champion(config.mlflow, config.model_name)
    result = drift_check(config, window_of, frame, report.snapshot, mlflow_run_id, champion, extra, planned=False)
    registry.finish_run(config.mlflow, mlflow_run_id)
    log_links(config, result)
    return result


def send_drift_alert(config: PipelineConfig, run: RunInfo, new_data: NewData, drift: DriftResult) -> dict:
    return mail_drift_alert(config, window_run(run, new_data), drift, new_data.watermark)


# what the monitor does with a check -> the tasks that do it; no champion yet: the retrain trains the first one
ROUTES = {"alarm": ["send_drift_alert", "retrain_conf"], "no_reference": ["retrain_conf"]}


def route(drift: DriftResult) -> list[str]:
    """Data drift or performance drift: alert and retrain; no champion: retrain; otherwise record."""
    key = "alarm" if drift.alarm else drift.status
    return ROUTES.get(key, ["record_no_drift"])


def retrain_conf(run: RunInfo, new_data: NewData, drift: DriftResult) -> dict[str, Any]:
    """The conf the model's ``retrain_<model>`` receives: its window and this check, which it reuses instead of
    checking again; it records every flat key in its MLflow and model-version tags."""
    return {
        "reason": MONITOR_REASON,
        "monitor_run_id": run.run_id,
        "window_start": new_data.watermark,
        "window_end": new_data.latest,
        "drift_status": drift.status,
        "drift_share": round(drift.drift_share, 4),
        "performance_status": drift.performance.status if drift.performance else None,
        "check_id": drift.check_id,
        "drift": drift.to_dict(),
    }


def record_no_drift(drift: DriftResult) -> str:
    performance = f"; performance {drift.performance.status}" if drift.performance else ""
    return f"no drift: share {drift.drift_share:.2f} < {drift.threshold}{performance}; check {drift.check_id}"


def advance_watermark(config: PipelineConfig, run: RunInfo, new_data: NewData, drift: DriftResult) -> dict[str, Any]:
    note = {"advanced_by": run.run_id, "advanced_at": datetime.now(UTC), "last_check_id": drift.check_id}
    mongo.advance_watermark(
        config.source,
        config.monitoring.state_collection,
        watermark_key(config),
        datetime.fromisoformat(new_data.watermark),
        datetime.fromisoformat(new_data.latest),
        note,
        config.monitoring_database,
    )
    return {"from": new_data.watermark, "to": new_data.latest}
