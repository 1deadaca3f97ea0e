"""The drift monitor's stages: the watermark, the window check, and handing over to the retrain.

The watermark is a state document in MongoDB. A window is ``(watermark, latest]`` where ``latest``
is the newest timestamp the sensor saw; the watermark moves to ``latest`` only after the window
was handled (recorded, alerted, retrain triggered), by compare-and-set, so a window is never
skipped or counted twice, and a restart picks up where the last handled window ended.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from include.retraining import mongo, pipeline, registry
from include.retraining.config import PipelineConfig
from include.retraining.records import DriftResult, RunInfo

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def watermark_key(config: PipelineConfig) -> str:
    source = config.source
    return f"{config.model_name}:{source.database}.{source.collection}.{source.timestamp_field}"


def open_window(config: PipelineConfig, run: RunInfo) -> dict[str, Any]:
    """The current watermark (initialised to the newest document on first use) and what the sensor needs."""
    key, state = watermark_key(config), config.monitoring.state_collection
    watermark = mongo.read_watermark(config.source, state, key)
    if watermark is None:
        start = mongo.latest_timestamp(config.source) or EPOCH
        mongo.advance_watermark(config.source, state, key, None, start, {"initialised_by": run.run_id})
        watermark = mongo.read_watermark(config.source, state, key)
    return {
        "watermark": watermark.isoformat(),
        "min_documents": config.monitoring.min_new_documents,
        "database": config.source.database,
        "collection": config.source.collection,
        "timestamp_field": config.source.timestamp_field,
    }


def window_run(run: RunInfo, watermark: str, latest: str) -> RunInfo:
    """The monitor run, seen as a pipeline run whose data ends at the newest new document."""
    return RunInfo(
        dag_id=run.dag_id,
        run_id=run.run_id,
        run_end=latest,
        reason=run.reason,
        trigger={"window_start": watermark, "window_end": latest},
    )


def check_window(config: PipelineConfig, run: RunInfo, watermark: str, latest: str) -> DriftResult:
    """Extract, validate and drift-check the new documents against the champion's training data."""
    window = window_run(run, watermark, latest)
    snapshot = pipeline.extract_window(config, window, start=datetime.fromisoformat(watermark))
    report = pipeline.validate_snapshot(config, window, snapshot)
    result = pipeline.detect_drift(config, window, report.snapshot)
    if result.mlflow_run_id:
        registry.finish_run(config.mlflow, result.mlflow_run_id)
    return result


def needs_retrain(result: DriftResult) -> bool:
    """Drift, or nothing to compare with (no champion yet): either way the retrain DAG decides the rest."""
    return result.status in ("drift", "no_reference")


def retrain_conf(run: RunInfo, watermark: str, latest: str, result: DriftResult) -> dict[str, Any]:
    """The conf ``retrain_model`` receives; it records every key in its MLflow and model-version tags."""
    return {
        "reason": pipeline.MONITOR_REASON,
        "monitor_run_id": run.run_id,
        "window_start": watermark,
        "window_end": latest,
        "drift_status": result.status,
        "drift_share": round(result.drift_share, 4),
        "check_id": result.check_id,
    }


def advance(config: PipelineConfig, run: RunInfo, watermark: str, latest: str, check_id: str | None) -> dict[str, Any]:
    note = {"advanced_by": run.run_id, "advanced_at": datetime.now(UTC), "last_check_id": check_id}
    mongo.advance_watermark(
        config.source,
        config.monitoring.state_collection,
        watermark_key(config),
        datetime.fromisoformat(watermark),
        datetime.fromisoformat(latest),
        note,
    )
    return {"from": watermark, "to": latest}
